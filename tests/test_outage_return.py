"""Seeing the API's return soon: while it cannot be reached, a plain TCP connect every
``breaker.CHECK_EVERY`` seconds lets the probe go as soon as the way is open (instead of at
its schedule, which grows to a minute); while it answers unwell, the probe itself goes every
1.5 s. The pure rule with a clock passed in, the guard with a fake clock, the connect check on
real loopback sockets, and one outage over real HTTP against the mock with a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import make_campaign
from tests.faults import running_mock, status_counts
from tests.test_breaker import (
    ACCEPTED,
    KEEP_EVERY,
    REFUSED,
    FakeClock,
    claimed,
    guard_with,
    nothing_to_keep,
)
from tests.test_breaker_outage import PHASE_TIMEOUT, until
from tests.test_client_mock import closed_port, make_client, message
from tests.test_decisions import NOW, api
from tests.test_engine_http import TOKEN, settings_for
from watui.engine import breaker as breaker_module
from watui.engine.breaker import (
    ANSWERING_FAST_FOR,
    ANSWERING_MAX_WAIT,
    CHECK_EVERY,
    FIRST_WAIT,
    MAX_WAIT,
    TRIP_AFTER,
    BreakerState,
    Cause,
    Change,
    CircuitBreaker,
)
from watui.engine.metrics import EngineMetrics
from watui.engine.outage import OutageGuard
from watui.engine.sender import CampaignSender, RunStatus
from watui.rules import outage_line
from watui.service.models import ApiOutage
from watui.storage.database import Database
from watui.storage.schema import recipients
from watui.whatsapp.client import WhatsAppClient
from watui.whatsapp.reachability import ApiReachability
from watui.whatsapp.results import Accepted, TransportFailure, TransportReason

UNWELL = api(None, status=503)


def tripped(*, answered: bool) -> CircuitBreaker[str]:
    breaker: CircuitBreaker[str] = CircuitBreaker()
    for number in range(TRIP_AFTER):
        breaker.judge(f"r{number}", unwell=True, evidence=True, probe=False, sent_at=NOW,
                      now=NOW, answered=answered)
    assert breaker.state is BreakerState.OPEN
    return breaker


def fail_probe(breaker: CircuitBreaker[str], *, answered: bool) -> float:
    """The probe goes at its time and meets the API still unwell; the next wait."""
    now = breaker.probe_at
    assert breaker.start_probe(now)
    judged = breaker.judge("probe", unwell=True, evidence=True, probe=True, sent_at=now,
                           now=now, answered=answered)
    assert judged.change is Change.PROBE_FAILED
    return breaker.probe_at - now


# ----- the rule (breaker.py), pure -----


def test_an_unreachable_api_is_checked_and_a_connect_brings_the_probe_on() -> None:
    breaker = tripped(answered=False)
    assert breaker.cause is Cause.UNREACHABLE and breaker.checking
    waits = [fail_probe(breaker, answered=False) for _ in range(3)]
    assert waits == [2, 4, 8], "the real probe keeps its growing waits"
    scheduled = breaker.probe_at
    breaker.reachable(scheduled - 7.5)
    assert breaker.probe_at == scheduled - 7.5
    assert breaker.start_probe(scheduled - 7.5), "the probe goes at once"
    assert not breaker.checking, "one probe at a time: no check while it is out"
    breaker.reachable(scheduled - 7)
    assert breaker.state is BreakerState.PROBING


def test_an_api_that_answers_unwell_is_probed_often_for_ten_minutes_then_less() -> None:
    breaker = tripped(answered=True)
    assert breaker.cause is Cause.ANSWERING and not breaker.checking
    breaker.reachable(NOW + 0.1)
    assert breaker.probe_at == NOW + FIRST_WAIT, "a connect says nothing of an API that answers"
    waits = []
    while breaker.probe_at < NOW + ANSWERING_FAST_FOR:
        waits.append(fail_probe(breaker, answered=True))
    assert set(waits) == {ANSWERING_MAX_WAIT} and ANSWERING_MAX_WAIT < 2
    later = [fail_probe(breaker, answered=True) for _ in range(6)]
    assert later == [3, 6, 12, 24, 48, MAX_WAIT], "an outage of hours: the growing waits"


def test_the_last_probes_answer_says_how_the_next_is_found() -> None:
    breaker = tripped(answered=False)
    for _ in range(4):
        fail_probe(breaker, answered=False)
    assert fail_probe(breaker, answered=True) == ANSWERING_MAX_WAIT
    assert not breaker.checking
    assert fail_probe(breaker, answered=False) == 2 * ANSWERING_MAX_WAIT
    assert breaker.checking


def test_the_line_says_checking_while_checks_bring_the_probe_on() -> None:
    """The monitor, the campaigns list (``ApiOutage.line``) and `watui run` (``outage_line``)."""
    checking = ApiOutage(since=NOW, retry_at=NOW + 32, checking_every=CHECK_EVERY)
    assert checking.line(NOW + 2).endswith(", checking every 0.5 s")
    assert ApiOutage(NOW, NOW + 1.5).line(NOW).endswith(", trying again in 2 s")
    assert ApiOutage(NOW, None, CHECK_EVERY).line(NOW).endswith(", trying again now")
    assert outage_line(NOW, NOW + 8, NOW, CHECK_EVERY) == checking.line(NOW)


# ----- the guard (outage.py), fake clock -----


def checking_guard(clock: FakeClock, can_connect: Callable[[], Awaitable[bool]]) -> OutageGuard:
    return OutageGuard(
        EngineMetrics(wall_clock=clock), max_outage_s=None, give_up=lambda _reason: None,
        more_coming=lambda: True, keep_claims=nothing_to_keep, keep_every=KEEP_EVERY,
        clock=clock, wall_clock=clock, can_connect=can_connect,
    )


async def test_the_guard_probes_as_soon_as_a_connect_goes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(breaker_module, "FIRST_WAIT", 8.0)
    clock = FakeClock()
    checks: list[float] = []

    async def can_connect() -> bool:
        checks.append(clock.now)
        clock.now += CHECK_EVERY  # each check takes the time to the next
        return len(checks) == 4

    guard = checking_guard(clock, can_connect)
    for row_id in range(TRIP_AFTER):
        guard.record(claimed(0, row_id), REFUSED)
    outage = guard.metrics.outage
    assert outage is not None and outage.checking_every == CHECK_EVERY
    assert outage.retry_at == NOW + 8
    opened = [event.text for event in guard.metrics.events_since(0)][-1]
    assert "checking every 0.5 s" in opened and "trying again" not in opened
    clock.now = NOW + CHECK_EVERY
    await asyncio.wait_for(guard.wait_closed(100), 1)
    assert checks == [NOW + CHECK_EVERY * n for n in (1, 2, 3, 4)]
    assert guard.state is BreakerState.PROBING and clock.now < NOW + 8, "before its schedule"
    assert guard.metrics.outage is not None and guard.metrics.outage.retry_at is None
    assert guard.record(claimed(0, 100), ACCEPTED).change is Change.CLOSED
    assert guard.metrics.outage is None


async def test_the_guard_never_checks_an_api_that_answers() -> None:
    clock = FakeClock()

    async def can_connect() -> bool:
        raise AssertionError("a connect tells nothing of an API that answers 503")

    guard = checking_guard(clock, can_connect)
    for row_id in range(TRIP_AFTER):
        guard.record(claimed(0, row_id), UNWELL)
    outage = guard.metrics.outage
    assert outage is not None and outage.checking_every is None
    clock.now = NOW + FIRST_WAIT
    await asyncio.wait_for(guard.wait_closed(100), 1)
    assert guard.state is BreakerState.PROBING


async def test_failed_probes_are_told_when_something_changes_not_each_time() -> None:
    clock = FakeClock()
    guard = guard_with(clock, [])
    for row_id in range(TRIP_AFTER):
        guard.record(claimed(0, row_id), UNWELL)
    for row_id in range(100, 110):
        clock.now += 2
        await asyncio.wait_for(guard.wait_closed(row_id), 1)
        guard.record(claimed(0, row_id), UNWELL)
    texts = [event.text for event in guard.metrics.events_since(0)]
    still = [text for text in texts if text.startswith("API still unreachable")]
    assert len(still) == 1 and still[0].endswith(", trying again in 2 s")
    assert guard.metrics.outage_probes == 10
    guard.record(claimed(0, 110), REFUSED)  # not a probe's answer: nothing changes
    clock.now += 2
    await asyncio.wait_for(guard.wait_closed(111), 1)
    guard.record(claimed(0, 111), REFUSED)
    assert [event.text for event in guard.metrics.events_since(0)][-1] == (
        "API still unreachable (connect: connection refused), trying again in 3 s"
    ), "a new cause is told; without a connect check (none given here), the schedule"


# ----- the connect check (whatsapp/reachability.py), real sockets -----


async def test_a_listening_port_connects_and_is_left_at_once_with_nothing_sent() -> None:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())  # up to the end: the check closes at once
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await ApiReachability(f"http://127.0.0.1:{port}").can_connect()
        await until(lambda: bool(received), "the check's connection to close")
    assert received == [b""], "no request, not a byte"


@pytest.mark.parametrize("url", [
    f"http://127.0.0.1:{closed_port()}",
    "https://watui-test.invalid",  # a name no resolver knows
])
async def test_a_closed_port_or_an_unknown_name_does_not_connect(url: str) -> None:
    assert not await ApiReachability(url, timeout=0.5).can_connect()


def test_the_address_is_the_api_base_urls_host_and_port() -> None:
    assert (ApiReachability("https://graph.facebook.com").host,
            ApiReachability("https://graph.facebook.com").port) == ("graph.facebook.com", 443)
    assert ApiReachability("http://127.0.0.1:8787").port == 8787


async def test_a_hanging_name_lookup_is_waited_for_never_started_twice() -> None:
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    address = server.sockets[0].getsockname()
    answer = asyncio.Event()
    lookups: list[str] = []

    async def lookup(host: str, port: int) -> list[tuple[Any, ...]]:
        lookups.append(host)
        await answer.wait()  # DNS down: the lookup hangs
        return [(server.sockets[0].family, 1, 6, "", address)]

    async with server:
        check = ApiReachability("https://graph.example", timeout=0.05, lookup=lookup)
        assert not await check.can_connect()
        assert not await check.can_connect()
        assert lookups == ["graph.example"], "the same lookup, waited for again"
        answer.set()
        assert await check.can_connect()
        assert await check.can_connect()
    assert lookups == ["graph.example"] * 2


# ----- the mock's outage: its port refuses connections for a while -----


async def test_the_mock_goes_away_for_the_seconds_asked_then_listens_as_it_was() -> None:
    """`POST /_mock/outage`: a person trying the breaker on `watui mock-api` by hand."""
    async with running_mock(access_token=TOKEN, latency=(0.001, 0.002)) as mock, \
            make_client(mock.base_url, "aiohttp") as client, httpx.AsyncClient() as http:
        check = ApiReachability(mock.base_url, timeout=0.5)
        bad = await http.post(f"{mock.base_url}/_mock/outage", json={"seconds": -1})
        assert bad.status_code == 400 and "seconds" in bad.json()["error"]
        assert isinstance(await client.send(message("+15550000001")), Accepted)
        answer = await http.post(f"{mock.base_url}/_mock/outage", json={"seconds": 0.5})
        assert answer.json() == {"away_for": 0.5}
        assert not await check.can_connect(), "refused while away"
        refused = await client.send(message("+15550000002"))
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not await check.can_connect():
            assert time.monotonic() < deadline, "the mock never listened again"
            await asyncio.sleep(0.05)
        assert isinstance(await client.send(message("+15550000003")), Accepted)
    assert isinstance(refused, TransportFailure) and refused.reason is TransportReason.CONNECT
    assert [entry.to for entry in mock.ledger] == ["+15550000001", "+15550000003"], "as it was"


# ----- over real HTTP against the mock, a real SQLite file -----

TOTAL = 36
RATE = 24


async def test_the_apis_return_is_seen_long_before_the_scheduled_probe(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mock's port refuses connections, the probe's schedule would wait 8 s, the mock comes
    back: sending resumes well before the scheduled probe, nobody failed, nobody twice.

    The mock stops between two requests (24 msg/s, answers in 5-20 ms): a server that dies
    under a request leaves it in doubt (maybe accepted), which is right but not the point."""
    monkeypatch.setattr(breaker_module, "FIRST_WAIT", 8.0)
    async with Database(sqlite_url) as db, running_mock(latency=(0.005, 0.02), seed=7) as mock:
        campaign_id = await make_campaign(db, "comeback", recipients_per_step=TOTAL)
        settings = settings_for(sqlite_url, mock, rate=RATE)
        port = int(mock.base_url.rsplit(":", 1)[1])
        async with WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = CampaignSender(db, client, settings, campaign_id)
            run = asyncio.create_task(sender.run())
            await until(lambda: len(mock.ledger) >= 8 and sender.metrics.in_flight == 0,
                        "the first sends, and a moment with none out")
            await mock.stop()
            await until(lambda: sender.metrics.outage is not None, "the breaker to open")
            outage = sender.metrics.outage
            assert outage is not None and outage.checking_every == CHECK_EVERY
            assert outage.retry_at is not None and outage.retry_at - outage.since >= 8
            await asyncio.sleep(1.5 * CHECK_EVERY)  # refused by a check or two
            before_return = len(mock.ledger)
            await mock.start(port=port)
            back_at = time.time()
            await until(lambda: sender.metrics.outage is None, "sending to resume")
            resumed_at = time.time()
            result = await asyncio.wait_for(run, 30)
        ledger = Counter(entry.to for entry in mock.ledger)
        by_status = await status_counts(db, campaign_id)
        async with db.engine.connect() as conn:
            charged = (await conn.execute(select(func.max(recipients.c.attempts)))).scalar_one()
    assert back_at < resumed_at < outage.retry_at - 4, "well before the scheduled probe"
    assert before_return < TOTAL, "the outage came before the end"
    assert result.status is RunStatus.COMPLETED, result
    assert by_status == {"sent": TOTAL}, "nobody failed, nobody in doubt"
    assert len(ledger) == TOTAL and max(ledger.values()) == 1, "nobody twice"
    assert charged == 1, "nobody charged a retry"
    assert sender.metrics.outage_probes == 0, "the first probe, sent once the way was open, went well"
