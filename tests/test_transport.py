"""The send path's transport against httpx-aiohttp's own, through httpx, on the real mock: the
same answers and the same errors, so that nothing downstream can tell them apart."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import httpx
import orjson
import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from tests.factories import running_mock, serving
from watui.mockapi.server import MockCloudApi
from watui.whatsapp.payload import build_template_message
from watui.whatsapp.transport import LeanAiohttpTransport

TOKEN = "transport-test-token"


@pytest.fixture
async def mock() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.0), seed=11) as api:
        yield api


async def post(transport: httpx.AsyncBaseTransport, url: str, token: str, body: bytes
               ) -> tuple[int, dict[str, object], str]:
    async with httpx.AsyncClient(transport=transport) as client:
        answer = await client.post(url, content=body, headers={"Authorization": f"Bearer {token}",
                                                               "Content-Type": "application/json"})
        return answer.status_code, orjson.loads(answer.content), answer.headers["content-type"]


@pytest.mark.parametrize("token", [TOKEN, "a-wrong-token"])
async def test_answers_are_those_of_httpx_aiohttps_transport(mock: MockCloudApi, token: str) -> None:
    url = f"{mock.base_url}/v23.0/1000001/messages"
    body = orjson.dumps(build_template_message(
        "+15551230000", "order_update", "en_US", {"body": ["Ana"]}, None))
    theirs = await post(AiohttpTransport(), url, token, body)
    ours = await post(LeanAiohttpTransport(), url, token, body)
    status, answer, content_type = ours
    assert (status, content_type) == theirs[::2] == ((200, "application/json") if token == TOKEN
                                                     else (401, "application/json"))
    assert answer.keys() == theirs[1].keys()
    assert len(mock.ledger) == (2 if token == TOKEN else 0)


async def test_errors_are_those_of_httpx_aiohttps_transport() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}/v23.0/1000001/messages"
    raised = []
    for transport in (AiohttpTransport(), LeanAiohttpTransport()):
        with pytest.raises(httpx.HTTPError) as error:
            await post(transport, url, TOKEN, b"{}")
        raised.append(error.value)
    # (httpx-aiohttp's table makes a refused connection a ConnectTimeout: the same for both.)
    assert type(raised[1]) is type(raised[0])
    assert isinstance(raised[1].__cause__, aiohttp.ClientConnectorError)


async def test_a_streamed_body_goes_the_general_way(mock: MockCloudApi) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield orjson.dumps(build_template_message(
            "+15551230001", "order_update", "en_US", {"body": ["Ana"]}, None))

    async with httpx.AsyncClient(transport=LeanAiohttpTransport()) as client:
        answer = await client.post(f"{mock.base_url}/v23.0/1000001/messages", content=chunks(),
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and [e.to for e in mock.ledger] == ["+15551230001"]


async def test_the_send_path_answers_and_fails_as_the_httpx_interface(mock: MockCloudApi) -> None:
    """``post`` (no httpx Request or Response) against ``handle_async_request`` on one transport."""
    body = orjson.dumps(build_template_message(
        "+15551230002", "order_update", "en_US", {"body": ["Ana"]}, None))
    headers = (("Authorization", f"Bearer {TOKEN}"), ("Content-Type", "application/json"))
    timeout = httpx.Timeout(5.0).as_dict()
    transport = LeanAiohttpTransport()
    try:
        url = httpx.URL(f"{mock.base_url}/v23.0/1000001/messages")
        status, content = await transport.post(url, headers, body, timeout)
        again = await transport.post(url, (headers[1],), body, timeout)  # no token: refused
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            closed = httpx.URL(f"http://127.0.0.1:{free.getsockname()[1]}/v23.0/1000001/messages")
        with pytest.raises(httpx.HTTPError) as error:
            await transport.post(closed, headers, body, timeout)
    finally:
        await transport.aclose()
    theirs = await post(LeanAiohttpTransport(), str(url), TOKEN, body)
    assert (status, orjson.loads(content).keys()) == (theirs[0], theirs[1].keys())
    assert again[0] == 401 and [e.to for e in mock.ledger] == ["+15551230002"] * 2
    assert isinstance(error.value.__cause__, aiohttp.ClientConnectorError)


async def _odd_server_answer(request: web.Request) -> web.StreamResponse:
    """Answers the send path rarely meets from the API, each named by the URL's last part."""
    kind = request.match_info["kind"]
    await request.read()
    if kind == "chunked":  # a body in pieces, some time apart
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in (b'{"messages": [', b'{"id": "wamid.1"}', b"]}"):
            await response.write(piece)
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response
    if kind == "close":  # the server will not keep the connection
        return web.json_response({"n": request.transport.get_extra_info("peername")[1]},
                                 headers={"Connection": "close"})
    if kind == "cut":  # the connection dropped in the middle of the body
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"messages"')
        request.transport.close()
        return response
    await asyncio.sleep(1.0)  # "slow": no answer within the read timeout (0.5 s)
    return web.json_response({})


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    async with serving("/v23.0/{kind}", _odd_server_answer) as base_url:
        yield f"{base_url}/v23.0"


async def test_odd_answers_come_back_as_through_httpx(odd_server: str) -> None:
    """A chunked body in pieces, a server closing each connection, a connection cut mid-body and
    no answer in time: ``post`` returns or raises what httpx over httpx-aiohttp does."""
    headers = (("Content-Type", "application/json"),)
    timeout = httpx.Timeout(5.0, read=0.5).as_dict()
    transport = LeanAiohttpTransport()
    try:
        status, content = await transport.post(httpx.URL(f"{odd_server}/chunked"), headers, b"{}", timeout)
        close_url = httpx.URL(f"{odd_server}/close")
        ports = [orjson.loads((await transport.post(close_url, headers, b"{}", timeout))[1])["n"]
                 for _ in range(2)]
        raised = []
        for kind in ("cut", "slow"):
            with pytest.raises(httpx.HTTPError) as error:
                await transport.post(httpx.URL(f"{odd_server}/{kind}"), headers, b"{}", timeout)
            raised.append(error.value)
    finally:
        await transport.aclose()
    assert (status, orjson.loads(content)) == (200, {"messages": [{"id": "wamid.1"}]})
    assert ports[0] != ports[1]  # a new connection after "Connection: close"
    httpx_timeout = httpx.Timeout(5.0, read=0.5)
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx_timeout) as client:
        for kind, ours in zip(("cut", "slow"), raised, strict=True):
            with pytest.raises(httpx.HTTPError) as theirs:
                await client.post(f"{odd_server}/{kind}", content=b"{}")
            assert type(ours) is type(theirs.value)
            assert type(ours.__cause__) is type(theirs.value.__cause__)
