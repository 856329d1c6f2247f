"""The send queue's claim and flush on a real SQLite file and a real PostgreSQL server: one JSON
parameter per batch (storage/sending/sqlite_batches.py) and one array per column (postgres_batches.py)
must leave exactly the rows the plain statements leave, rows another owner took over must be
left alone, and a claim that races another process must lease nothing."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.factories import make_campaign
from tests.pgserver import PostgresServer
from watui.storage import claims, dialects
from watui.storage.database import Database
from watui.storage.schema import attempts, campaigns, recipients
from watui.storage.sending import postgres_batches, sqlite_batches
from watui.storage.sending.outcomes import ClaimedRecipient, Outcome, outcome_values

NOW = 1_800_000_000.25


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    async with Database(sqlite_url) as db:
        yield db


async def _campaign_with_a_due_retry(db: Database) -> int:
    """Ten queued rows, of which the last is a retry that is due: claims take it first."""
    campaign_id = await make_campaign(db, recipients_per_step=10)
    async with db.engine.begin() as conn:
        last = (await conn.execute(select(recipients.c.id).order_by(recipients.c.id.desc()))).first()
        assert last is not None
        await conn.execute(
            update(recipients).where(recipients.c.id == last.id)
            .values(status="retry", attempts=1, next_attempt_at=NOW - 5)
        )
    return campaign_id


def _outcomes(claimed: list[ClaimedRecipient]) -> list[Outcome]:
    """One outcome of each kind, with an attempt row each (None and unicode included)."""
    kinds: list[dict[str, Any]] = [
        {"status": "sent", "wamid": "wamid.A1", "sent_at": NOW},
        {"status": "retry", "next_attempt_at": NOW + 5.5, "error_code": 131000,
         "error_title": "Something went wrong — ünïcode"},
        {"status": "failed", "error_code": 131026, "error_title": "Message undeliverable"},
        {"status": "in_doubt", "possibly_sent": True, "error_title": "read_timeout: slow"},
    ]
    outcomes = []
    for index, row in enumerate(claimed):
        fields = kinds[index % len(kinds)]
        attempt = {
            "recipient_id": row.id, "campaign_id": 1, "attempt_no": row.attempts + 1,
            "at": NOW + index / 8, "latency_ms": 123.456, "outcome": fields["status"],
            "http_status": 200 if fields["status"] == "sent" else None,
            "error_code": fields.get("error_code"), "error_title": fields.get("error_title"),
            "wamid": fields.get("wamid"), "worker": "me",
        }
        outcomes.append(Outcome(row.id, attempts=row.attempts + 1, attempt=attempt, **fields))
    return outcomes


async def _claim_and_record(db: Database) -> tuple[list[Any], list[Any], list[Any]]:
    campaign_id = await _campaign_with_a_due_retry(db)
    step = await claims.current_step(db, campaign_id)
    assert step is not None
    claimed = await claims.claim(db, step.id, "me", 7, lease_seconds=60, now=NOW)
    assert claimed[0].attempts == 1  # the due retry first
    assert [row.params for row in claimed[1:3]] == [{"body": ["N0"]}, {"body": ["N1"]}]
    result = await claims.record_outcomes(db, campaign_id, "me", _outcomes(claimed[:6]))
    assert result.written == 6
    async with db.engine.connect() as conn:
        rows = (await conn.execute(
            select(*(c for c in recipients.c if c.name != "updated_at")).order_by(recipients.c.id)
        )).all()
        logged = (await conn.execute(select(attempts).order_by(attempts.c.id))).all()
        counters = (await conn.execute(
            select(campaigns.c.sent, campaigns.c.failed, campaigns.c.in_doubt)
        )).all()
    return rows, logged, counters


async def test_json_batches_leave_the_rows_the_plain_statements_leave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sqlite_batches.AVAILABLE, "this Python's SQLite lacks UPDATE FROM or JSON"
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'json.db'}") as db:
        in_json = await _claim_and_record(db)
    monkeypatch.setattr(sqlite_batches, "AVAILABLE", False)
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}") as db:
        plain = await _claim_and_record(db)
    assert in_json == plain
    rows, logged, counters = in_json
    assert [row.status for row in rows].count("sending") == 1  # claimed, no outcome yet
    assert len(logged) == 6 and counters == [(2, 1, 1)]
    sent = next(row for row in rows if row.status == "sent")
    assert sent.wamid == "wamid.A1" and sent.lease_owner is None and sent.sent_at == NOW
    assert {type(row.next_attempt_at) for row in rows} == {float}


@pytest.mark.postgres
async def test_postgres_batches_leave_the_rows_the_plain_statements_leave(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Database(postgres_server.new_database()) as db:
        in_arrays = await _claim_and_record(db)
    for portable in ("claim_transaction", "claim_rows", "flush_transaction", "write_outcomes"):
        monkeypatch.setattr(dialects.PostgresDialect, portable, getattr(dialects.Dialect, portable))
    async with Database(postgres_server.new_database()) as db:
        plain = await _claim_and_record(db)
    assert in_arrays == plain
    rows, logged, counters = in_arrays
    assert len(logged) == 6 and counters == [(2, 1, 1)]
    assert [row.status for row in rows].count("sending") == 1
    assert logged[1].error_title == "Something went wrong — ünïcode" and logged[1].http_status is None


async def test_a_flush_leaves_rows_another_owner_took_over(database: Database) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=4)
    step = await claims.current_step(database, campaign_id)
    assert step is not None
    claimed = await claims.claim(database, step.id, "me", 4, lease_seconds=60, now=NOW)
    async with database.engine.begin() as conn:
        await conn.execute(
            update(recipients).where(recipients.c.id == claimed[0].id).values(lease_owner="other")
        )
    result = await claims.record_outcomes(database, campaign_id, "me", _outcomes(claimed))
    assert (result.written, result.stale) == (3, 1)
    assert result.counts == {"failed": 1, "in_doubt": 1}  # the first (sent) was taken
    async with database.engine.connect() as conn:
        taken = (await conn.execute(select(recipients).where(recipients.c.id == claimed[0].id))).one()
        logged = (await conn.execute(select(attempts.c.recipient_id))).scalars().all()
        counters = (await conn.execute(select(campaigns.c.sent, campaigns.c.failed))).one()
    assert (taken.status, taken.lease_owner) == ("sending", "other")
    assert sorted(logged) == sorted(row.id for row in claimed)  # every request that went is logged
    assert tuple(counters) == (0, 1)


async def test_a_flush_of_outcomes_without_requests_logs_no_attempt(database: Database) -> None:
    """A pause sends claimed rows back without a request: nothing to log, nothing counted."""
    campaign_id = await make_campaign(database, recipients_per_step=2)
    step = await claims.current_step(database, campaign_id)
    assert step is not None
    claimed = await claims.claim(database, step.id, "me", 2, lease_seconds=60, now=NOW)
    back = [Outcome(row.id, "queued", row.attempts) for row in claimed]
    result = await claims.record_outcomes(database, campaign_id, "me", back)
    assert (result.written, result.counts) == (2, {})
    async with database.engine.connect() as conn:
        statuses = (await conn.execute(select(recipients.c.status))).scalars().all()
        logged = (await conn.execute(select(attempts.c.id))).scalars().all()
    assert statuses == ["queued", "queued"] and logged == []


async def test_a_claim_raced_by_another_process_leases_nothing(
    sqlite_db: Database, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (a plain sqlite3 connection) takes a row between the claim's read and
    its write: the claim fails as a database error would, and leases none of its rows."""
    campaign_id = await make_campaign(sqlite_db, recipients_per_step=5)
    step = await claims.current_step(sqlite_db, campaign_id)
    assert step is not None
    path = make_url(sqlite_url).database
    assert path is not None
    read = sqlite_batches.read_due

    def read_then_let_another_process_write(
        db: sqlite3.Connection, step_id: int, status: str, *args: Any
    ) -> str:
        found = read(db, step_id, status, *args)
        if status != "queued":
            return found
        with sqlite3.connect(path) as other:
            other.execute("UPDATE recipients SET status = 'skipped' WHERE id = "
                          "(SELECT max(id) FROM recipients)")
        return found

    with monkeypatch.context() as patched:
        patched.setattr(sqlite_batches, "read_due", read_then_let_another_process_write)
        with pytest.raises(OperationalError):
            await claims.claim(sqlite_db, step.id, "me", 5, lease_seconds=60, now=NOW)
    async with sqlite_db.engine.connect() as conn:
        statuses = sorted((await conn.execute(select(recipients.c.status))).scalars())
    assert statuses == ["queued"] * 4 + ["skipped"]
    claimed = await claims.claim(sqlite_db, step.id, "me", 5, lease_seconds=60, now=NOW)
    assert len(claimed) == 4


@pytest.mark.postgres
async def test_a_postgres_flush_finds_its_rows_by_key_in_a_big_campaign(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """The planner must look each outcome up by primary key, once. With statistics taken when
    no row was 'sending', it once joined every 'sending' row against every outcome (the outcome
    list scanned once per row: 700 ms a flush), and before the import's ANALYZE it scanned the
    whole table."""
    from watui.demo_data import write_demo_contacts
    from watui.storage.contacts import ContactsSource
    from watui.storage.creation import NewStep, create_campaign

    contacts = ContactsSource(write_demo_contacts(tmp_path / "big.csv", 30_000),
                              body_params=("first_name", "order"))
    async with Database(postgres_server.new_database()) as db:
        created = await create_campaign(db, "big", [NewStep("order_update", "en_US", contacts)])
        step = await claims.current_step(db, created.campaign_id)
        assert step is not None
        claimed = await claims.claim(db, step.id, "me", 5_000, lease_seconds=60, now=NOW)
        outcomes = _outcomes(claimed[:500])
        async with db.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            parameters = postgres_batches.FlushStatement.parameters(
                now=NOW, owner="me", campaign_id=created.campaign_id,
                outcomes=[outcome_values(o) for o in outcomes],
                attempt_rows=[o.attempt for o in outcomes if o.attempt is not None],
            )
            plan = "\n".join(row[0] for row in await driver.fetch(
                "EXPLAIN (ANALYZE) " + dialects.PostgresDialect.flush.sql, *parameters
            ))
    assert "Seq Scan on recipients" not in plan, plan
    assert "recipients_pkey" in plan, plan
    scans_of_outcomes = re.findall(r"Function Scan on json_populate_recordset .*loops=(\d+)", plan)
    assert scans_of_outcomes and set(scans_of_outcomes) == {"1"}, plan
