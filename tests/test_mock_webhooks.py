"""The mock posts webhooks as Meta does: signed, batched, late, twice, and again until taken.

A real aiohttp receiver on 127.0.0.1 checks every POST's signature and reads it with the
product's parse_notification; sends go to the real mock over HTTP. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.factories import running_mock
from tests.spec import spec_errors
from watui.mockapi.process import MockProcess
from watui.mockapi.server import MockCloudApi
from watui.mockapi.webhooks import FAILURE_TEXTS
from watui.whatsapp.payload import build_template_message
from watui.whatsapp.webhooks import (
    SIGNATURE_HEADER,
    Notification,
    StatusUpdate,
    parse_notification,
    verify_signature,
)

SECRET = "test-app-secret-not-real"
PHONE_ID = "1000001"
FAST = {  # every delay short, so that a test's messages settle within a second or two
    "webhook_delivered_delay": (0.02, 0.1), "webhook_read_delay": (0.02, 0.1),
    "webhook_late_delay": (0.05, 0.2), "webhook_flush_ms": 10.0,
    "webhook_retry_delay": (0.05, 0.2), "webhook_read_share": 1.0,
}


class Receiver:
    """A webhook endpoint that checks and records every POST; it can refuse, stop and restart."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []  # those answered 200, in arrival order
        self.notifications: list[Notification] = []
        self.refused: list[bytes] = []
        self.bad_signatures = 0
        self.refuse_next = 0  # answer 500 to this many POSTs
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not verify_signature(raw, request.headers.get(SIGNATURE_HEADER), SECRET):
            self.bad_signatures += 1
            return web.Response(status=403)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            self.refused.append(raw)
            return web.Response(status=500)
        self.notifications.append(parse_notification(raw))
        self.bodies.append(raw)
        return web.Response(text="ok")

    @property
    def statuses(self) -> list[StatusUpdate]:
        return [status for notification in self.notifications for status in notification.statuses]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()


def webhook_config(receiver: Receiver, **config: Any) -> dict[str, Any]:
    return {"webhook_url": receiver.url, "app_secret": SECRET, "latency": (0.0, 0.0), "seed": 16,
            **FAST, **config}


async def send(mock: MockCloudApi, count: int, template: str = "welcome",
               concurrency: int = 20) -> dict[str, str]:
    """Send ``count`` messages over HTTP, each with its callback; wamid -> callback."""
    accepted: dict[str, str] = {}
    limit = asyncio.Semaphore(concurrency)
    url = f"{mock.base_url}/v23.0/{PHONE_ID}/messages"
    headers = {"Authorization": f"Bearer {mock.config.access_token}"}

    async def one(session: aiohttp.ClientSession, index: int) -> None:
        callback = f"r:{index}"
        body = build_template_message(f"+3460{index:07d}", template, "en_US", {"body": ["Ana"]},
                                      None, callback=callback)
        async with limit, session.post(url, data=orjson.dumps(body), headers=headers) as answer:
            assert answer.status == 200, await answer.text()
            accepted[(await answer.json())["messages"][0]["id"]] = callback

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, index) for index in range(count)))
    return accepted


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait for ``condition``, polling; fail the test if it does not hold within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def by_wamid(statuses: list[StatusUpdate]) -> dict[str, list[StatusUpdate]]:
    grouped: defaultdict[str, list[StatusUpdate]] = defaultdict(list)
    for status in statuses:
        grouped[status.wamid].append(status)
    return grouped


async def test_every_post_is_signed_and_each_message_goes_sent_delivered_read(
    receiver: Receiver,
) -> None:
    async with running_mock(**webhook_config(receiver, webhook_concurrency=1)) as mock:
        welcome = await send(mock, 20, "welcome")
        utility = await send(mock, 10, "order_update")
        await until(lambda: len(receiver.statuses) == 90)
        await asyncio.sleep(0.3)  # nothing more may come
        stats = mock.stats()["webhooks"]
    assert len(receiver.statuses) == 90 and receiver.bad_signatures == 0
    assert stats | {"waiting": 0} == {"posted": len(receiver.bodies), "updates": 90, "retried": 0,
                                      "failed_posts": 0, "dropped": 0, "duplicates": 0,
                                      "held_back": 0, "waiting": 0}
    sent = welcome | utility
    for wamid, statuses in by_wamid(receiver.statuses).items():
        assert [status.status for status in statuses] == ["sent", "delivered", "read"]
        assert {status.callback for status in statuses} == {sent[wamid]}
        index = int(sent[wamid].removeprefix("r:"))
        assert {status.recipient_id for status in statuses} == {f"3460{index:07d}"}
        assert {status.phone_number_id for status in statuses} == {PHONE_ID}
        assert {status.pricing_category for status in statuses} == {
            "marketing" if wamid in welcome else "utility"}
        assert [status.timestamp for status in statuses] == sorted(s.timestamp for s in statuses)
    assert set(by_wamid(receiver.statuses)) == set(sent)
    for raw in receiver.bodies[:5]:
        assert spec_errors("WebhookPayload", orjson.loads(raw)) == []


async def test_shares_of_read_and_of_failures_after_acceptance(receiver: Receiver) -> None:
    failures = {131026: 0.10, 131049: 0.05, 131050: 0.05}
    config = webhook_config(receiver, webhook_failures=failures, webhook_read_share=0.5)
    async with running_mock(**config) as mock:
        sent = await send(mock, 800)
        await until(lambda: mock.stats()["webhooks"]["waiting"] == 0)
    messages = by_wamid(receiver.statuses)
    assert set(messages) == set(sent)
    finals = Counter[Any]()
    for statuses in messages.values():
        # A POST the busy receiver answered too late is posted again, as Meta would: its
        # statuses come twice, and only their order is on trial here.
        kinds = list(dict.fromkeys(status.status for status in statuses))
        assert kinds[0] == "sent"
        if "failed" in kinds:
            assert kinds == ["sent", "failed"]  # a failed message is never delivered
            failed = next(status for status in statuses if status.status == "failed")
            title, details = FAILURE_TEXTS[failed.error_code or 0]
            assert (failed.error_title, failed.error_message, failed.error_details) == (
                title, title, details)
            assert failed.pricing_category is None
            finals[failed.error_code] += 1
        else:
            assert kinds in (["sent", "delivered"], ["sent", "delivered", "read"])
            finals[kinds[-1]] += 1
    for code, share in failures.items():
        assert abs(finals[code] / len(sent) - share) < 0.035, (code, finals)
    delivered = finals["delivered"] + finals["read"]
    assert abs(finals["read"] / delivered - 0.5) < 0.07


async def test_duplicates_and_late_posts_reorder_but_lose_nothing(receiver: Receiver) -> None:
    config = webhook_config(receiver, webhook_duplicate_share=0.2, webhook_late_share=0.3,
                            webhook_delivered_delay=(0.0, 0.05), webhook_read_delay=(0.0, 0.05))
    async with running_mock(**config) as mock:
        sent = await send(mock, 300)
        await until(lambda: mock.stats()["webhooks"]["waiting"] == 0)
        stats = mock.stats()["webhooks"]
    received = Counter((status.wamid, status.status) for status in receiver.statuses)
    assert set(received) == {(wamid, kind) for wamid in sent for kind in ("sent", "delivered", "read")}
    assert sum(received.values()) == 900 + stats["duplicates"] == stats["updates"]
    assert sum(count - 1 for count in received.values()) == stats["duplicates"]
    copies = defaultdict(set)
    for status in receiver.statuses:
        copies[status.wamid, status.status].add(status)
    assert all(len(same) == 1 for same in copies.values())  # a copy is the same update
    assert 0.12 < stats["duplicates"] / 900 < 0.28 and stats["held_back"] > 0
    rank = {"sent": 0, "delivered": 1, "read": 2}
    backwards = [wamid for wamid, statuses in by_wamid(receiver.statuses).items()
                 if [rank[s.status] for s in statuses] != sorted(rank[s.status] for s in statuses)]
    assert len(backwards) > 10  # a later state arrived before an earlier one


async def test_posts_refused_with_500_are_sent_again_with_the_same_bytes(receiver: Receiver) -> None:
    receiver.refuse_next = 4
    async with running_mock(**webhook_config(receiver, webhook_read_share=0.0)) as mock:
        sent = await send(mock, 30)
        await until(lambda: mock.stats()["webhooks"]["waiting"] == 0)
        stats = mock.stats()["webhooks"]
    assert Counter(status.status for status in receiver.statuses) == {"sent": 30, "delivered": 30}
    assert {status.wamid for status in receiver.statuses} == set(sent)
    assert len(receiver.refused) == 4 and set(receiver.refused) <= set(receiver.bodies)
    assert (stats["failed_posts"], stats["retried"], stats["dropped"]) == (4, 4, 0)


async def test_a_receiver_that_is_down_gets_everything_once_it_is_back(receiver: Receiver) -> None:
    await receiver.stop()
    async with running_mock(**webhook_config(receiver, webhook_read_share=0.0)) as mock:
        sent = await send(mock, 25)
        await until(lambda: mock.stats()["webhooks"]["failed_posts"] >= 3)
        await receiver.start()  # the same port
        await until(lambda: mock.stats()["webhooks"]["waiting"] == 0)
        stats = mock.stats()["webhooks"]
    assert Counter((s.wamid, s.status) for s in receiver.statuses) == {
        (wamid, kind): 1 for wamid in sent for kind in ("sent", "delivered")}
    assert stats["retried"] >= 3 and stats["dropped"] == 0


async def test_gives_up_after_the_configured_time_and_counts_what_it_dropped(
    receiver: Receiver,
) -> None:
    await receiver.stop()
    config = webhook_config(receiver, webhook_read_share=0.0, webhook_give_up_s=0.4)
    async with running_mock(**config) as mock:
        await send(mock, 10)
        await until(lambda: mock.stats()["webhooks"]["waiting"] == 0, seconds=10)
        stats = mock.stats()["webhooks"]
    assert stats["dropped"] == 20 and stats["updates"] == 0 and stats["failed_posts"] >= 2


async def test_the_queue_is_bounded_and_what_does_not_fit_is_dropped(receiver: Receiver) -> None:
    # Nothing is posted while the test runs (a post would free room), however slow the machine.
    config = webhook_config(receiver, webhook_queue_max=7, webhook_delivered_delay=(5.0, 5.0),
                            webhook_flush_ms=60_000.0)
    async with running_mock(**config) as mock:
        await send(mock, 4, concurrency=1)
        stats = mock.stats()["webhooks"]
    assert (stats["waiting"], stats["dropped"]) == (6, 6)  # two messages of three updates fit


async def test_updates_due_together_are_batched_up_to_the_limit(receiver: Receiver) -> None:
    config = webhook_config(receiver, webhook_batch_max=40, webhook_flush_ms=150.0,
                            webhook_read_share=0.0, webhook_delivered_delay=(0.0, 0.0))
    async with running_mock(**config) as mock:
        await send(mock, 120, concurrency=60)
        await until(lambda: len(receiver.statuses) == 240)
    sizes = [len(notification.statuses) for notification in receiver.notifications]
    assert max(sizes) == 40 and len(sizes) < 30


async def test_stopping_the_mock_ends_its_webhook_tasks(receiver: Receiver) -> None:
    before = asyncio.all_tasks()
    config = webhook_config(receiver, webhook_delivered_delay=(30.0, 30.0))
    async with running_mock(**config) as mock:
        await send(mock, 5)
        await until(lambda: len(receiver.statuses) == 5)
        assert len(asyncio.all_tasks() - before) >= 1  # the webhook timer runs
    await asyncio.sleep(0.05)
    assert asyncio.all_tasks() - before == set()
    assert len(receiver.statuses) == 5


async def test_changed_while_running_through_the_config_endpoint(receiver: Receiver) -> None:
    async with running_mock(**webhook_config(receiver)) as mock, aiohttp.ClientSession() as http:
        answer = await http.post(f"{mock.base_url}/_mock/config",
                                 json={"webhook_failures": {"131050": 1.0},
                                       "webhook_delivered_delay": [0.0, 0.01]})
        assert answer.status == 200
        refused = await http.post(f"{mock.base_url}/_mock/config",
                                  json={"webhook_failures": [131050]})
        assert refused.status == 400
        await send(mock, 10)
        await until(lambda: mock.stats()["webhooks"]["waiting"] == 0)
    assert Counter((s.status, s.error_code) for s in receiver.statuses) == {
        ("sent", None): 10, ("failed", 131050): 10}


async def test_inbound_messages_and_preferences_are_injected_and_posted(receiver: Receiver) -> None:
    async with running_mock(**webhook_config(receiver)) as mock, aiohttp.ClientSession() as http:
        inbound = await http.post(f"{mock.base_url}/_mock/inbound",
                                  json={"from": "+34600000001", "text": "STOP"})
        stop = await http.post(f"{mock.base_url}/_mock/preferences",
                               json={"wa_id": "34600000002", "value": "stop",
                                     "phone_number_id": "777"})
        resume = await http.post(f"{mock.base_url}/_mock/preferences",
                                 json={"wa_id": "34600000002", "value": "resume"})
        bad = [await http.post(f"{mock.base_url}/_mock/{path}", data=body) for path, body in (
            ("inbound", b"{}"), ("inbound", b"not json"), ("preferences", b'{"wa_id": "1"}'),
            ("preferences", b'{"wa_id": "1", "value": "maybe"}'), ("inbound", b"[1]"))]
        errors = [(await answer.json())["error"] for answer in bad]
        await until(lambda: len(receiver.notifications) == 3)
        mock.config.webhook_url = None
        unset = await http.post(f"{mock.base_url}/_mock/inbound", json={"from": "1", "text": "x"})
    assert (inbound.status, stop.status, resume.status, unset.status) == (200, 200, 200, 409)
    assert [answer.status for answer in bad] == [400] * 5
    assert all(error and "\n" not in error for error in errors)
    assert "from, text must be a non-empty string" in errors[0]
    messages = [m for n in receiver.notifications for m in n.messages]
    preferences = [p for n in receiver.notifications for p in n.preferences]
    assert [(m.sender, m.text, m.type, m.phone_number_id) for m in messages] == [
        ("34600000001", "STOP", "text", "PHONE_ID")]
    assert sorted((p.wa_id, p.value, p.category, p.phone_number_id) for p in preferences) == [
        ("34600000002", "resume", "marketing_messages", "PHONE_ID"),
        ("34600000002", "stop", "marketing_messages", "777")]
    inbound_body = next(raw for raw in receiver.bodies if b'"messages":[' in raw)
    assert spec_errors("WebhookPayload", orjson.loads(inbound_body)) == []


async def test_the_mock_api_command_posts_webhooks_with_its_options(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATUI_MOCK_APP_SECRET", SECRET)
    process = MockProcess([
        "--latency", "0,0", "--token", "t", "--webhook-url", receiver.url,
        "--webhook-delivered-delay", "0,0.05", "--webhook-failure", "131026=1",
        "--webhook-duplicate-share", "0", "--webhook-give-up", "5"])
    await process.start()
    try:
        mock = MockCloudApi()  # only its address and token are used by send()
        mock.base_url, mock.config.access_token = process.base_url, "t"
        sent = await send(mock, 3)
        await until(lambda: len(receiver.statuses) == 6)
    finally:
        await process.stop()
    assert receiver.bad_signatures == 0
    expected = [(wamid, "sent", None) for wamid in sent] + [(w, "failed", 131026) for w in sent]
    assert Counter((s.wamid, s.status, s.error_code) for s in receiver.statuses) == Counter(expected)


@pytest.mark.parametrize(("option", "words"), [
    (["--webhook-failure", "131026:0.1"], "CODE=SHARE"),
    (["--webhook-failure", "131026=0.7", "--webhook-failure", "131049=0.7"], "more than 1"),
    (["--webhook-read-share", "1.5"], "between 0 and 1"),
    (["--webhook-read-delay", "5,1"], "at most MAX"),
    (["--webhook-give-up", "0"], "above 0"),
    (["--webhook-url", "127.0.0.1:8788/webhook"], "http:// or https://"),
])
def test_bad_webhook_options_are_one_line_with_exit_2(option: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "watui", "mock-api", "--port", "0", *option],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and words in done.stderr
