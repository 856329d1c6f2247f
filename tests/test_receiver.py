"""The webhook receiver, for real: aiohttp on 127.0.0.1 (port 0), a real SQLite file and a real
PostgreSQL server, signed POSTs shaped like Meta's (checked against its OpenAPI schema)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import event, func, select, update

from tests import test_fault_outages
from tests.pgserver import PostgresServer
from tests.spec import spec_errors
from watui.errors import ReceiverError
from watui.receiver import WebhookReceiver, quiet_garbage_collector
from watui.receiver.garbage import YOUNG_THRESHOLD
from watui.service.settings_view import SECRET_MASK, settings_rows
from watui.settings import WebhookSettings, load_settings
from watui.storage import SCHEMA_VERSION, Database
from watui.storage.schema import (
    WEBHOOK_TABLES,
    delivery_events,
    inbound_messages,
    preference_updates,
    schema_info,
)
from watui.storage.webhook_events import unapplied_delivery_events

APP_SECRET = "app-secret-for-webhook-tests"
VERIFY_TOKEN = "verify-token-for-webhook-tests"
PHONE_NUMBER_ID = "106540352242922"

#: A PostgreSQL server of the test's own, to stop and start again (the fault tests' fixture).
own_postgres = test_fault_outages.own_postgres


# ----- payloads as Meta sends them -----


def status_payload(wamids: list[str], status: str = "delivered", **extra: Any) -> dict[str, Any]:
    statuses = [
        {"id": wamid, "status": status, "timestamp": "1767225600", "recipient_id": "34600000001",
         "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing"}, **extra}
        for wamid in wamids
    ]  # fmt: skip
    return _envelope({"statuses": statuses})


def _envelope(value: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "419561257915477", "changes": [{
        "field": field,
        "value": {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID}, **value},
    }]}]}  # fmt: skip


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def wamids(count: int, prefix: str = "wamid.T") -> list[str]:
    return [f"{prefix}{index:06d}" for index in range(count)]


# ----- fixtures -----


def webhook_settings(**changes: Any) -> WebhookSettings:
    return WebhookSettings(verify_token=SecretStr(VERIFY_TOKEN), **changes)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def started(db: Database, **changes: Any) -> WebhookReceiver:
    receiver = WebhookReceiver(db, webhook_settings(**changes), SecretStr(APP_SECRET))
    await receiver.start("127.0.0.1", 0)
    return receiver


@pytest.fixture
async def receiver(database: Database) -> AsyncIterator[WebhookReceiver]:
    running = await started(database)
    try:
        yield running
    finally:
        await running.stop()


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any] | bytes, signature: str | None = None
) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature-256": signature if signature is not None else sign(raw)}
    async with http.post(url, data=raw, headers=headers) as response:
        return response.status, await response.text()


async def count(db: Database, table: Any) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# ----- the handshake -----


@pytest.mark.parametrize(
    ("query", "status"),
    [({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}, 200),
     ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}, 403),
     ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, 403),
     ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 403),
     ({}, 403)],
)  # fmt: skip
async def test_handshake_answers_the_challenge_only_to_our_token(
    sqlite_url: str, http: aiohttp.ClientSession, query: dict[str, str], status: int
) -> None:
    async with Database(sqlite_url) as db:
        receiver = await started(db)
        try:
            async with http.get(receiver.url, params=query) as response:
                answer = await response.text()
                kind = response.content_type
        finally:
            await receiver.stop()
    assert response.status == status
    if status == 200:
        assert (answer, kind) == ("1158201444", "text/plain")
    else:
        assert "1158201444" not in answer and VERIFY_TOKEN not in answer


async def test_without_a_verify_token_every_handshake_is_refused(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    async with Database(sqlite_url) as db:
        receiver = WebhookReceiver(db, WebhookSettings(), SecretStr(APP_SECRET))
        await receiver.start("127.0.0.1", 0)
        try:
            query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "7"}
            async with http.get(receiver.url, params=query) as response:
                assert response.status == 403
        finally:
            await receiver.stop()


# ----- what a POST must pass before it is stored -----


async def test_forged_missing_and_tampered_signatures_are_refused_and_counted(
    database: Database, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    raw = orjson.dumps(status_payload(wamids(3)))
    tampered = raw.replace(b"delivered", b"read00000")
    good = sign(raw)
    attempts = [
        (raw, ""),  # missing (an empty header)
        (raw, sign(raw, "not-the-app-secret")),  # forged with another secret
        (tampered, sign(raw)),  # body changed after signing
        (raw, "sha1=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha1).hexdigest()),
        (raw, good[:-1] + ("1" if good.endswith("0") else "0")),  # one hex digit off
    ]
    for body, signature in attempts:
        assert (await post(http, receiver.url, body, signature))[0] == 403
    async with http.post(receiver.url, data=raw) as response:  # no header at all
        assert response.status == 403
    assert await count(database, delivery_events) == 0
    assert receiver.stats().refused_signatures == 6
    assert (await post(http, receiver.url, raw))[0] == 200  # the genuine one
    assert await count(database, delivery_events) == 3


async def test_oversized_bodies_are_refused_with_413_before_anything_is_stored(
    database: Database, http: aiohttp.ClientSession
) -> None:
    receiver = await started(database, max_body_bytes=4096)
    try:
        small = orjson.dumps(status_payload(wamids(5)))
        large = orjson.dumps(status_payload(wamids(60)))
        assert len(small) < 4096 < len(large)
        assert (await post(http, receiver.url, large))[0] == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for start in range(0, len(large), 1000):
                yield large[start:start + 1000]

        headers = {"X-Hub-Signature-256": sign(large)}
        async with http.post(receiver.url, data=chunks(), headers=headers) as response:
            assert response.status == 413
        assert await count(database, delivery_events) == 0
        assert (await post(http, receiver.url, small))[0] == 200
        assert receiver.stats().too_large == 2
    finally:
        await receiver.stop()


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2]", b'{"entry": {"changes": []}}',
     orjson.dumps(status_payload(["wamid.X"], timestamp="yesterday")),
     orjson.dumps(_envelope({"statuses": [{"status": "sent", "timestamp": "1"}]}))],
)  # fmt: skip
async def test_malformed_bodies_get_400_and_one_line(
    sqlite_url: str, http: aiohttp.ClientSession, body: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    async with Database(sqlite_url) as db:
        receiver = await started(db)
        try:
            status, answer = await post(http, receiver.url, body)
            assert receiver.stats().malformed == 1
            assert await count(db, delivery_events) == 0
        finally:
            await receiver.stop()
    assert status == 400
    assert answer.count("\n") == 1 and "Traceback" not in answer
    assert "Traceback" not in capfd.readouterr().err


async def test_other_paths_are_404(receiver: WebhookReceiver, http: aiohttp.ClientSession) -> None:
    raw = orjson.dumps(status_payload(wamids(1)))
    base = receiver.url.removesuffix("/webhook")
    for path in ("/", "/webhooks", "/webhook/x"):
        async with http.post(base + path, data=raw, headers={"X-Hub-Signature-256": sign(raw)}) as response:
            assert response.status == 404
    async with http.put(receiver.url, data=raw, headers={"X-Hub-Signature-256": sign(raw)}) as response:
        assert response.status == 405 and response.headers["Allow"] == "GET, HEAD, POST"
        assert (await response.text()).count("\n") == 1


async def test_a_client_waiting_for_100_continue_gets_it_and_its_body_is_stored(
    database: Database, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    raw = orjson.dumps(status_payload(wamids(50)))  # curl asks first for bodies over 1 KiB
    headers = {"X-Hub-Signature-256": sign(raw)}
    async with asyncio.timeout(10), http.post(receiver.url, data=raw, headers=headers,
                                              expect100=True) as response:  # fmt: skip
        assert response.status == 200
    assert await count(database, delivery_events) == 50


async def test_a_post_cut_short_stores_nothing_and_the_receiver_carries_on(
    database: Database, receiver: WebhookReceiver, http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    raw = orjson.dumps(status_payload(wamids(3)))
    port = int(receiver.url.rsplit(":", 1)[1].split("/", 1)[0])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: " + sign(raw).encode()
                 + f"\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw[:40])  # fmt: skip
    await writer.drain()
    writer.close()  # the sender hangs up with most of the body unsent
    await writer.wait_closed()
    assert (await post(http, receiver.url, status_payload(["wamid.after"])))[0] == 200
    assert await count(database, delivery_events) == 1
    assert receiver.stats().posts == 2 and receiver.stats().malformed == 1
    assert "unexpected" not in caplog.text


# ----- what is stored -----


async def test_statuses_messages_and_opt_outs_are_stored_with_every_field(
    database: Database, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    failed = status_payload(["wamid.F1"], status="failed", biz_opaque_callback_data="r:42")
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = [{
        "code": 131049, "title": "This message was not delivered to maintain healthy ecosystem "
        "engagement.", "message": "per-user marketing limit",
        "error_data": {"details": "In order to maintain a healthy ecosystem engagement..."},
    }]  # fmt: skip
    inbound = _envelope({
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600000001"}],
        "messages": [{"from": "34600000001", "id": "wamid.IN1", "timestamp": "1767225700",
                      "type": "text", "text": {"body": "STOP"}}],
    })  # fmt: skip
    preference = _envelope({"user_preferences": [{
        "wa_id": "34600000001", "detail": "User requested to stop marketing messages",
        "category": "marketing_messages", "value": "stop", "timestamp": 1767225800,
    }]}, field="user_preferences")  # fmt: skip
    # Only the statuses: the spec describes inbound messages with the send schemas (it wants
    # "to" and rejects "from"), and has no user_preferences field.
    assert spec_errors("WebhookPayload", failed) == []
    for body in (failed, inbound, preference):
        assert (await post(http, receiver.url, body))[0] == 200
    async with database.engine.connect() as conn:
        event_row = (await conn.execute(select(delivery_events))).one()
        message = (await conn.execute(select(inbound_messages))).one()
        opt_out = (await conn.execute(select(preference_updates))).one()
    assert (event_row.wamid, event_row.status, event_row.timestamp, event_row.callback) == (
        "wamid.F1", "failed", 1767225600.0, "r:42")
    assert (event_row.error_code, event_row.error_message, event_row.pricing_category) == (
        131049, "per-user marketing limit", "marketing")
    assert event_row.error_details.startswith("In order to maintain")
    assert (event_row.recipient_id, event_row.phone_number_id, event_row.applied) == (
        "34600000001", PHONE_NUMBER_ID, None)
    assert (message.message_id, message.sender, message.type, message.text) == (
        "wamid.IN1", "34600000001", "text", "STOP")
    assert (opt_out.wa_id, opt_out.user_id, opt_out.category, opt_out.value, opt_out.timestamp) == (
        "34600000001", "", "marketing_messages", "stop", 1767225800.0)


async def test_duplicates_and_redeliveries_are_stored_once(
    database: Database, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    first = status_payload(wamids(10))
    repeated_inside = status_payload(wamids(3) + wamids(3))  # the same statuses twice in one POST
    read = status_payload(wamids(10), status="read")  # another status of the same messages
    for body in (first, first, repeated_inside, read, first, read):
        assert (await post(http, receiver.url, body))[0] == 200
    async with database.engine.connect() as conn:
        by_status = dict((await conn.execute(
            select(delivery_events.c.status, func.count()).group_by(delivery_events.c.status)
        )).all())  # fmt: skip
    assert by_status == {"delivered": 10, "read": 10}
    stats = receiver.stats()
    assert (stats.updates_stored, stats.duplicates) == (20, 10 + 6 + 10 + 10)


async def test_concurrent_posts_share_one_transaction(
    database: Database, http: aiohttp.ClientSession
) -> None:
    writes: list[str] = []  # each a transaction: statuses alone are one atomic statement

    def count_writes(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO delivery_events"):
            writes.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count_writes)
    receiver = await started(database, commit_interval_ms=250)
    try:
        posts = [post(http, receiver.url, status_payload(wamids(20, f"wamid.C{n}-"))) for n in range(40)]
        answers = await asyncio.gather(*posts)
    finally:
        await receiver.stop()
    assert [status for status, _ in answers] == [200] * 40
    assert await count(database, delivery_events) == 800
    stats = receiver.stats()
    assert stats.posts == 40 and stats.updates_stored == 800
    assert 1 <= stats.commits <= 4, "40 POSTs arriving together are written in a few transactions"
    assert len(writes) == stats.commits
    assert stats.commit_p50_ms is not None and stats.commit_p99_ms is not None


async def test_enough_waiting_updates_commit_without_waiting_for_the_interval(
    database: Database, http: aiohttp.ClientSession
) -> None:
    receiver = await started(database, commit_interval_ms=5_000)
    try:
        full_posts = [status_payload(wamids(1_000, f"wamid.M{n}-")) for n in range(2)]
        started_at = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(post(http, receiver.url, body) for body in full_posts))
        waited = asyncio.get_running_loop().time() - started_at
    finally:
        await receiver.stop()
    assert [status for status, _ in answers] == [200, 200]
    assert waited < 4.0, "2,000 waiting updates are written at once, not after 5 s"
    assert receiver.stats().commits == 1 and await count(database, delivery_events) == 2_000


async def test_a_stop_lets_posts_waiting_for_their_commit_finish(
    database: Database, http: aiohttp.ClientSession
) -> None:
    receiver = await started(database, commit_interval_ms=500)
    posts = [asyncio.create_task(post(http, receiver.url, status_payload(wamids(5, f"wamid.S{n}-"))))
             for n in range(10)]  # fmt: skip
    for _ in range(200):  # all ten handed over, none committed yet (the interval is 500 ms)
        if receiver.stats().posts == 10:
            break
        await asyncio.sleep(0.01)
    assert receiver.stats().commits == 0
    await receiver.stop()
    answers = await asyncio.gather(*posts)
    assert [status for status, _ in answers] == [200] * 10
    assert await count(database, delivery_events) == 50


async def test_unapplied_events_are_listed_in_arrival_order(
    database: Database, receiver: WebhookReceiver, http: aiohttp.ClientSession
) -> None:
    for status in ("sent", "delivered", "read"):
        assert (await post(http, receiver.url, status_payload(["wamid.O1"], status=status)))[0] == 200
    listed = await unapplied_delivery_events(database)
    assert [row.status for row in listed] == ["sent", "delivered", "read"]
    async with database.begin() as conn:
        await conn.execute(update(delivery_events).where(delivery_events.c.id == listed[0].id)
                           .values(applied=True))  # fmt: skip
    after = await unapplied_delivery_events(database, after_id=listed[1].id)
    assert [row.status for row in await unapplied_delivery_events(database)] == ["delivered", "read"]
    assert [row.status for row in after] == ["read"]


# ----- the database unavailable -----


async def deliver_until_stored(
    http: aiohttp.ClientSession, url: str, bodies: list[dict[str, Any]], *, tries: int = 60
) -> list[int]:
    """Redeliver like Meta does: each body again until it is answered 200 (bounded)."""
    seen: list[int] = []
    waiting = list(bodies)
    for _ in range(tries):
        answers = await asyncio.gather(*(post(http, url, body) for body in waiting))
        seen.extend(status for status, _ in answers)
        waiting = [body for body, (status, _) in zip(waiting, answers, strict=True) if status != 200]
        if not waiting:
            return seen
        await asyncio.sleep(0.25)
    raise AssertionError(f"{len(waiting)} bodies never stored; answers {seen[-10:]}")


async def test_sqlite_full_answers_503_then_stores_everything_once_space_returns(
    sqlite_url: str, http: aiohttp.ClientSession
) -> None:
    """A full disk, by SQLite's max_page_count: each write needing a page fails (SQLITE_FULL)."""
    limit = {"pages": 2_147_483_646}
    db = Database(sqlite_url)
    event.listen(db.engine.sync_engine, "begin",
                 lambda conn: conn.exec_driver_sql(f"PRAGMA max_page_count = {limit['pages']}"))
    async with db:
        receiver = await started(db)
        try:
            bodies = [status_payload(wamids(200, f"wamid.D{n}-")) for n in range(4)]
            limit["pages"] = 1  # SQLite keeps it at the pages in use: nothing more fits
            refused = await asyncio.gather(*(post(http, receiver.url, body) for body in bodies))
            assert [status for status, _ in refused] == [503] * 4
            assert await count(db, delivery_events) == 0, "nothing half-written"
            limit["pages"] = 2_147_483_646
            await deliver_until_stored(http, receiver.url, bodies + bodies[:1])
            assert await count(db, delivery_events) == 800
            assert receiver.stats().unavailable == 4
        finally:
            await receiver.stop()


@pytest.mark.postgres
async def test_postgres_stopped_answers_503_then_stores_everything_once_back(
    own_postgres: PostgresServer, http: aiohttp.ClientSession
) -> None:
    async with Database(own_postgres.new_database()) as db:
        receiver = await started(db)
        try:
            before = [status_payload(wamids(100, "wamid.B-"))]
            assert await deliver_until_stored(http, receiver.url, before) == [200]
            await asyncio.to_thread(own_postgres.stop, "immediate")
            bodies = [status_payload(wamids(100, f"wamid.P{n}-")) for n in range(3)]
            refused = await asyncio.gather(*(post(http, receiver.url, body) for body in bodies))
            assert [status for status, _ in refused] == [503] * 3
            await asyncio.to_thread(own_postgres.start_again)
            await deliver_until_stored(http, receiver.url, bodies + before)
            assert await count(db, delivery_events) == 400
            assert receiver.stats().unavailable >= 3
        finally:
            await receiver.stop()


# ----- starting -----


def test_the_receivers_process_collects_garbage_rarely_and_skips_what_lives_forever() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        quiet_garbage_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
        assert gc.get_freeze_count() > frozen  # this test's modules, at least
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_no_app_secret_is_refused_in_one_line_naming_the_variable(database: Database) -> None:
    with pytest.raises(ReceiverError) as refused:
        WebhookReceiver(database, webhook_settings(), SecretStr(""))
    message = str(refused.value)
    assert "WATUI_WHATSAPP__APP_SECRET" in message and "whatsapp.app_secret" in message
    assert "\n" not in message


def _cli_env(tmp_path: Any, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
    env["WATUI_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'watui.db'}"
    return {**env, **extra}


async def test_cli_refuses_to_start_without_the_app_secret(tmp_path: Any) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "webhook", "--port", "0", env=_cli_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert stderr.decode().count("\n") == 1 and "WATUI_WHATSAPP__APP_SECRET" in stderr.decode()
    assert stdout == b"" and not (tmp_path / "watui.db").exists()


async def test_cli_serves_the_handshake_and_stores_then_stops_on_sigterm(
    tmp_path: Any, http: aiohttp.ClientSession
) -> None:
    env = _cli_env(tmp_path, WATUI_WHATSAPP__APP_SECRET=APP_SECRET,
                   WATUI_WEBHOOK__VERIFY_TOKEN=VERIFY_TOKEN)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", "webhook", "--host", "127.0.0.1", "--port", "0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert first.startswith("listening on http://127.0.0.1:") and "/webhook" in first
        url = first.split()[2].rstrip(";")
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
        async with http.get(url, params=query) as response:
            assert (response.status, await response.text()) == (200, "42")
        assert (await post(http, url, status_payload(wamids(7))))[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert "7 stored" in stderr.decode()
    for secret in (APP_SECRET, VERIFY_TOKEN):
        assert secret not in first + stdout.decode() + stderr.decode()
    async with Database(env["WATUI_DATABASE_URL"]) as db:
        assert await count(db, delivery_events) == 7


# ----- settings, schema, parser -----


def test_webhook_settings_come_from_the_environment_and_the_token_is_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATUI_WEBHOOK__PORT", "9443")
    monkeypatch.setenv("WATUI_WEBHOOK__VERIFY_TOKEN", VERIFY_TOKEN)
    settings = load_settings()
    assert (settings.webhook.port, settings.webhook.path, settings.webhook.enabled) == (
        9443, "/webhook", False)
    shown = {row.name: row.value for row in settings_rows(settings)}
    assert shown["webhook.verify_token"] == SECRET_MASK
    assert VERIFY_TOKEN not in repr(settings)


async def test_a_version_2_database_gains_the_webhook_tables(database_url: str) -> None:
    async with Database(database_url) as db, db.begin() as conn:
        for table in reversed(WEBHOOK_TABLES):
            await conn.run_sync(table.drop)
        await conn.execute(update(schema_info).values(version=2))
    async with Database(database_url) as db:
        async with db.engine.connect() as conn:
            version = (await conn.execute(select(schema_info.c.version))).scalar_one()
        assert version == SCHEMA_VERSION
        assert [await count(db, table) for table in WEBHOOK_TABLES] == [0] * len(WEBHOOK_TABLES)


