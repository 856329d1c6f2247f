"""The real client against the real mock on loopback: every answer kind, classified as it must be.

Both transports run the same tests; answers of the mock are validated against Meta's schemas.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.factories import running_mock, serving
from tests.spec import spec_errors
from watui.mockapi.server import MockCloudApi
from watui.settings import HttpSettings, WhatsAppSettings
from watui.whatsapp.client import ApiUnavailable, TokenRefused, WhatsAppClient
from watui.whatsapp.errors import classify
from watui.whatsapp.payload import build_template_message
from watui.whatsapp.results import Accepted, ApiError, ErrorKind, TransportFailure, TransportReason

TOKEN = "test-token-not-a-secret"
TRANSPORTS = ["aiohttp", "httpx"]


@pytest.fixture
async def mock() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.0), rate_limit=100_000, seed=7) as api:
        yield api


def make_client(base_url: str, transport: str, token: str = TOKEN, **http: Any) -> WhatsAppClient:
    whatsapp = WhatsAppSettings(access_token=token, phone_number_id="1000001", waba_id="2000002",
                                api_base_url=base_url)
    return WhatsAppClient(whatsapp, HttpSettings(transport=transport, **http))


def message(to: str = "+15551230000", **params: Any) -> dict[str, Any]:
    return build_template_message(to, "order_update", "en_US", params or {"body": ["Ana"]}, None)


async def send_one(mock: MockCloudApi, transport: str, to: str = "+15551230000", **http: Any):
    async with make_client(mock.base_url, transport, **http) as client:
        return await client.send(message(to))


async def raw_post(mock: MockCloudApi, body: bytes, token: str = TOKEN) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{mock.base_url}/v23.0/1000001/messages", content=body,
                               headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_accepted_message_lands_in_the_ledger(mock: MockCloudApi, transport: str) -> None:
    result = await send_one(mock, transport, "+15557654321")
    assert isinstance(result, Accepted) and result.wamid.startswith("wamid.")
    assert result.wa_id == "15557654321" and result.latency > 0
    assert classify(result) is None
    assert [(e.wamid, e.to, e.template) for e in mock.ledger] == [
        (result.wamid, "+15557654321", "order_update")]


async def test_on_written_tells_when_the_body_leaves_even_when_the_loop_is_busy(
    mock: MockCloudApi,
) -> None:
    """A callback when the send is released would not do: the body is written later, when a
    busy loop lets the sending task (or, before Python 3.12, aiohttp's writer task) run."""
    written: list[float] = []
    async with make_client(mock.base_url, "aiohttp") as client:
        await client.send(message(), written.append)  # connect first: not timed below

        async def busy_loop() -> None:  # queued before the send's task: runs first
            time.sleep(0.05)  # a 50 ms redraw in the same loop

        started = time.monotonic()
        busy = asyncio.create_task(busy_loop())
        # A task of its own, as the engine's dispatcher sends.
        result = await asyncio.create_task(client.send(message(), written.append))
        await busy
    assert isinstance(result, Accepted)
    assert len(written) == 2
    assert written[1] - started >= 0.05
    assert mock.ledger[-1].at >= written[1]


async def test_arrival_is_stamped_when_the_bytes_arrive_not_when_handled(
    mock: MockCloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-second limit counts a request when it arrives. Here the mock's loop is held up
    50 ms right after the request's bytes come in (as a busy mock is): the ledger's arrival
    time must be from before the hold-up, not from when the handler got to run."""
    from aiohttp.web_protocol import RequestHandler

    received = RequestHandler.data_received
    bytes_in_at: list[float] = []

    def receive_then_stall(self: RequestHandler, data: bytes) -> None:
        if data:
            bytes_in_at.append(time.monotonic())
        received(self, data)
        time.sleep(0.05)

    monkeypatch.setattr(RequestHandler, "data_received", receive_then_stall)
    body = json.dumps(message()).encode()
    request = (  # in one write, so that it arrives in one piece
        f"POST /v23.0/1000001/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    host, port = mock.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert b" 200 " in status_line and len(bytes_in_at) == 1
    assert mock.ledger[0].at - bytes_in_at[0] < 0.04


@pytest.mark.parametrize(
    ("change", "code", "kind"),
    [({"permanent_rate": 1.0}, 131026, ErrorKind.PERMANENT),
     ({"transient_rate": 1.0}, 131000, ErrorKind.RETRY),
     ({"spam_after": 0}, 131048, ErrorKind.PAUSE),
     ({"fail_suffixes": {"0000": 131050}}, 131050, ErrorKind.PERMANENT)],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_injected_api_errors_are_classified(
    mock: MockCloudApi, transport: str, change: dict[str, Any], code: int, kind: ErrorKind
) -> None:
    mock.update_config(change)
    result = await send_one(mock, transport)
    assert isinstance(result, ApiError) and result.code == code and result.fbtrace_id
    classification = classify(result)
    assert classification is not None and classification.kind is kind
    assert mock.ledger == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_http_500_without_an_error_object_is_retried(mock: MockCloudApi, transport: str) -> None:
    mock.update_config({"http500_rate": 1.0})
    result = await send_one(mock, transport)
    assert isinstance(result, ApiError) and result.http_status == 500 and result.code is None
    classification = classify(result)
    assert classification is not None and classification.kind is ErrorKind.RETRY


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_wrong_token_pauses(mock: MockCloudApi, transport: str) -> None:
    async with make_client(mock.base_url, transport, token="wrong") as client:
        result = await client.send(message())
    assert isinstance(result, ApiError) and result.code == 190 and result.http_status == 401
    classification = classify(result)
    assert classification is not None and classification.kind is ErrorKind.PAUSE


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reset_is_retried_as_possibly_sent(mock: MockCloudApi, transport: str) -> None:
    mock.update_config({"reset_rate": 1.0})
    result = await send_one(mock, transport)
    assert isinstance(result, TransportFailure) and result.reason is TransportReason.RESET
    classification = classify(result)
    assert classification is not None and classification.kind is ErrorKind.RETRY
    assert classification.possibly_sent
    assert len(mock.ledger) == 1  # the mock accepted it: exactly why a reset is "possibly sent"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_slow_answer_is_a_read_timeout_possibly_sent(mock: MockCloudApi, transport: str) -> None:
    mock.update_config({"slow_rate": 1.0, "slow_seconds": 30.0})
    result = await send_one(mock, transport, timeout=0.3)
    assert isinstance(result, TransportFailure) and result.reason is TransportReason.READ_TIMEOUT
    assert 0.25 < result.latency < 3
    classification = classify(result)
    assert classification is not None and classification.possibly_sent
    stopping = time.perf_counter()
    await mock.stop()  # must not wait out the answer it is holding back
    assert time.perf_counter() - stopping < 5


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_error_is_certainly_not_sent(transport: str) -> None:
    async with make_client(f"http://127.0.0.1:{closed_port()}", transport) as client:
        result = await client.send(message())
    assert isinstance(result, TransportFailure) and result.reason is TransportReason.CONNECT
    classification = classify(result)
    assert classification is not None and not classification.possibly_sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_garbled_answer_is_a_result_not_an_exception(transport: str) -> None:
    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 abc garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with make_client(f"http://127.0.0.1:{port}", transport) as client:
            result = await client.send(message())
    finally:
        server.close()
    assert isinstance(result, TransportFailure)
    assert result.reason in (TransportReason.PROTOCOL, TransportReason.RESET)
    classification = classify(result)
    assert classification is not None and classification.possibly_sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_rate_limit_answers_130429_beyond_the_window(mock: MockCloudApi, transport: str) -> None:
    mock.update_config({"rate_limit": 5})
    async with make_client(mock.base_url, transport) as client:
        results = await asyncio.gather(*(client.send(message(f"+1555000{i:04d}")) for i in range(8)))
    codes = sorted(r.code for r in results if isinstance(r, ApiError))
    assert codes == [130429] * 3 and len(mock.ledger) == 5
    classification = classify(next(r for r in results if isinstance(r, ApiError)))
    assert classification is not None and classification.kind is ErrorKind.THROTTLE


async def test_pair_limit_answers_131056_for_the_same_recipient_only(mock: MockCloudApi) -> None:
    mock.update_config({"pair_limit_seconds": 6.0})
    async with make_client(mock.base_url, "aiohttp") as client:
        same = [await client.send(message("+15550000001")) for _ in range(mock.config.pair_burst + 1)]
        other = await client.send(message("+15550000002"))
    assert all(isinstance(r, Accepted) for r in same[:-1]) and isinstance(other, Accepted)
    assert isinstance(same[-1], ApiError) and same[-1].code == 131056
    classification = classify(same[-1])
    assert classification is not None and classification.kind is ErrorKind.PAIR_LIMIT
    assert classification.wait >= 6


async def test_spam_switch_starts_and_stops_at_runtime(mock: MockCloudApi) -> None:
    async with make_client(mock.base_url, "aiohttp") as client:
        assert isinstance(await client.send(message("+15550000001")), Accepted)
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"{mock.base_url}/_mock/config", json={"spam_after": 1})
            assert answer.status_code == 200
        storm = await client.send(message("+15550000002"))
        mock.update_config({"spam_after": None})
        after = await client.send(message("+15550000003"))
    assert isinstance(storm, ApiError) and storm.code == 131048
    assert isinstance(after, Accepted)


async def send_through_window(client: WhatsAppClient, count: int, window_size: int) -> list[Any]:
    window = asyncio.Semaphore(window_size)

    async def one(i: int) -> Any:
        async with window:
            return await client.send(message(f"+1555{i:07d}"))

    return await asyncio.gather(*(one(i) for i in range(count)))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connections_are_reused_over_1000_requests(mock: MockCloudApi, transport: str) -> None:
    async with make_client(mock.base_url, transport) as client:
        results = await send_through_window(client, 1000, 8)
        stats = client.connection_stats()
    assert all(isinstance(r, Accepted) for r in results)
    assert stats.requests == 1000 and 1 <= stats.new_connections <= 8
    assert stats.reuse is not None and stats.reuse >= 0.95


async def test_connections_opened_first_serve_the_sends_that_follow(mock: MockCloudApi) -> None:
    """``open_connections`` leaves them idle in the pool: 20 sends at once open no other, and
    a second call finds them there. On a closed port it opens none, and raises nothing."""
    mock.update_config({"latency": (0.02, 0.03)})
    async with make_client(mock.base_url, "aiohttp") as client:
        opened = await client.open_connections(20)
        again = await client.open_connections(20)
        results = await send_through_window(client, 20, 20)
        stats = client.connection_stats()
    assert (opened, again) == (20, 20)
    # ... and count as reused: the requests found them open.
    assert all(isinstance(r, Accepted) for r in results) and stats.new_connections == 0
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{free.getsockname()[1]}"
    async with make_client(closed_url, "aiohttp") as client, make_client(closed_url, "httpx") as other:
        assert await client.open_connections(5) == 0 == await other.open_connections(5)


async def test_native_pool_keeps_a_deep_window_alive_by_default(mock: MockCloudApi) -> None:
    """httpx closes released connections while more than max_keepalive are open."""
    mock.update_config({"latency": (0.001, 0.003)})
    async with make_client(mock.base_url, "httpx") as client:
        results = await send_through_window(client, 300, 32)
        stats = client.connection_stats()
    assert all(isinstance(r, Accepted) for r in results)
    assert stats.new_connections <= 32


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_list_templates_follows_every_page(mock: MockCloudApi, transport: str) -> None:
    async with make_client(mock.base_url, transport) as client:
        templates = await client.list_templates()
    names = [t["name"] for t in templates]
    assert len(names) == len(set(names)) >= 6
    assert {"order_update", "welcome", "appointment_reminder"} <= set(names)
    assert mock.config.page_size < len(names)  # more than one page was needed


async def test_list_templates_with_a_wrong_token_raises_token_refused(mock: MockCloudApi) -> None:
    async with make_client(mock.base_url, "aiohttp", token="wrong-secret-value") as client:
        with pytest.raises(TokenRefused) as caught:
            await client.list_templates()
    assert "wrong-secret-value" not in str(caught.value)


async def test_list_templates_unreachable_raises_api_unavailable() -> None:
    async with make_client(f"http://127.0.0.1:{closed_port()}", "aiohttp") as client:
        with pytest.raises(ApiUnavailable):
            await client.list_templates()


def test_the_token_never_shows_in_repr() -> None:
    client = make_client("http://127.0.0.1:9", "aiohttp", token="s3cr3t-token")
    assert "s3cr3t-token" not in repr(client)


# ----- the mock's answers against Meta's schemas -----


async def test_success_answer_conforms_to_the_spec(mock: MockCloudApi) -> None:
    answer = await raw_post(mock, json.dumps(message()).encode())
    body = answer.json()
    assert answer.status_code == 200 and spec_errors("MessageResponsePayload", body) == []
    assert body["messages"][0]["id"].startswith("wamid.")


@pytest.mark.parametrize(
    ("change", "body", "token", "code"),
    [({}, b"{not json", TOKEN, 100),
     ({}, b'{"messaging_product": "whatsapp", "type": "template"}', TOKEN, 100),
     ({}, None, "wrong", 190),
     ({"permanent_rate": 1.0}, None, TOKEN, 131026),
     ({"transient_rate": 1.0}, None, TOKEN, 131000),
     ({"rate_limit": 0}, None, TOKEN, 130429),
     ({"spam_after": 0}, None, TOKEN, 131048)],
)
async def test_error_answers_conform_to_the_spec(
    mock: MockCloudApi, change: dict[str, Any], body: bytes | None, token: str, code: int
) -> None:
    mock.update_config(change)
    answer = await raw_post(mock, body or json.dumps(message()).encode(), token=token)
    assert answer.status_code >= 400
    assert spec_errors("GraphAPIError", answer.json()) == []
    assert answer.json()["error"]["code"] == code


async def test_templates_listing_conforms_to_the_spec(mock: MockCloudApi) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{mock.base_url}/v23.0/2000002/message_templates",
                                headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert spec_errors("MessageTemplatesListing", answer.json()) == []


async def test_stats_and_ledger_are_readable_over_http(mock: MockCloudApi) -> None:
    await send_one(mock, "aiohttp")
    mock.update_config({"permanent_rate": 1.0})
    await send_one(mock, "aiohttp")
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{mock.base_url}/_mock/stats")).json()
        ledger = (await http.get(f"{mock.base_url}/_mock/ledger")).json()
        refused = await http.post(f"{mock.base_url}/_mock/config", json={"no_such_knob": 1})
    assert stats["requests"] == 2 and stats["accepted"] == 1
    assert stats["errors"] == {"131026": 1}
    assert [entry["to"] for entry in ledger] == ["+15551230000"]
    assert refused.status_code == 400


async def test_status_webhooks_are_signed_with_the_app_secret(mock: MockCloudApi) -> None:
    received: list[tuple[bytes, str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers["X-Hub-Signature-256"]))
        return web.Response()

    async with serving("/hook", hook) as base_url:
        mock.update_config({"webhook_url": f"{base_url}/hook", "webhook_read_share": 1,
                            "webhook_delivered_delay": (0.02, 0.05), "webhook_read_delay": (0.02, 0.05),
                            "webhook_concurrency": 1})
        accepted = await send_one(mock, "aiohttp")
        for _ in range(100):
            if sum(raw.count(b'"status"') for raw, _ in received) == 3:
                break
            await asyncio.sleep(0.02)
    statuses = []
    for raw, signature in received:
        expected = "sha256=" + hmac.new(b"mock-app-secret", raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        for value in json.loads(raw)["entry"][0]["changes"][0]["value"]["statuses"]:
            assert isinstance(accepted, Accepted) and value["id"] == accepted.wamid
            statuses.append(value["status"])
    assert statuses == ["sent", "delivered", "read"]


def test_rate_limit_counts_by_arrival_when_handled_out_of_order() -> None:
    """A request that arrived earlier but is handled later counts in its own second only: it
    must neither be refused for later arrivals nor keep counting once its second is over."""
    api = MockCloudApi()
    api.config.rate_limit = 2
    assert api._within_rate("1", 10.6)
    assert api._within_rate("1", 10.1)  # arrived before 10.6, handled after it
    assert api._within_rate("1", 11.3)  # (10.3, 11.3] holds only 10.6
    assert not api._within_rate("1", 11.5)  # (10.5, 11.5] holds 10.6 and 11.3
    assert api.counters["error_130429"] == 1
