"""A campaign sent from several numbers: real HTTP to the mock on loopback, real databases.

Each number has its own pacer at the campaign's rate (judged by the mock's per-number limit and
its ledger, which records the number that sent each message), a recipient hears from one number
in every step, a number paused by an account-level error stops alone (its recipients wait, or
move to the others), and on PostgreSQL two `watui run` processes share the numbers, each number
paced by one process at a time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import OperationalError
from textual.widgets import Static

from tests.factories import make_campaign
from tests.faults import assert_clean, audit, running_mock, spawn_run
from tests.test_engine_http import PHONE_ID, TOKEN, env_for, most_in_one_second, settings_for
from watui.cli.main import main
from watui.cli.run import _numbers_part as numbers_part
from watui.engine.decisions import (
    KeepSending,
    PauseAll,
    Problem,
    Reassign,
    after_number_pauses,
    pauses_whole_campaign,
)
from watui.engine.metrics import NumberFigures, NumberState
from watui.engine.numbers import NumbersSender, campaign_sender
from watui.engine.runner import CampaignNotRunnable, run_campaign
from watui.engine.sender import RunOutcome, RunStatus
from watui.mockapi.process import MockProcess
from watui.mockapi.server import MockCloudApi
from watui.rules import sender_for
from watui.service.open import open_live_backend
from watui.storage import campaigns as campaign_store
from watui.storage import claims, number_leases
from watui.storage.campaigns import counters_match_rows
from watui.storage.database import SCHEMA_VERSION, Database
from watui.storage.schema import campaigns, recipients, schema_info, sender_leases
from watui.storage.sending import sqlite_batches
from watui.tui.app import WatuiApp
from watui.tui.screens.monitor import MonitorScreen
from watui.whatsapp.client import WhatsAppClient
from watui.whatsapp.results import ErrorKind

NUMBERS = (PHONE_ID, "1000002")
OTHER = NUMBERS[1]


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(latency=(0.0, 0.002), seed=17) as mock:
        yield mock


async def pin_to_numbers(db: Database, campaign_id: int, numbers: Sequence[str]) -> dict[str, int]:
    """What campaign creation does for `--senders`: the campaign's numbers, and each recipient
    pinned by rules.sender_for. Returns how many recipients each number got."""
    async with db.engine.begin() as conn:
        await conn.execute(
            update(campaigns).where(campaigns.c.id == campaign_id).values(senders=json.dumps(numbers))
        )
        rows = (await conn.execute(
            select(recipients.c.id, recipients.c.phone).where(recipients.c.campaign_id == campaign_id)
        )).all()
        pinned = {row.id: sender_for(row.phone, numbers) for row in rows}
        for number in numbers:
            ids = [rid for rid, to in pinned.items() if to == number]
            if ids:
                await conn.execute(
                    update(recipients).where(recipients.c.id.in_(ids)).values(sender=number)
                )
    return dict(Counter(pinned.values()))


async def senders_of(db: Database, campaign_id: int) -> dict[str, str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(recipients.c.phone, recipients.c.sender).where(recipients.c.campaign_id == campaign_id)
        )
        return {phone: sender for phone, sender in rows}


async def statuses_by_sender(db: Database, campaign_id: int) -> dict[tuple[str, str], int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(recipients.c.sender, recipients.c.status).where(recipients.c.campaign_id == campaign_id)
        )
        return dict(Counter((sender, status) for sender, status in rows))


async def run_in_process(db: Database, mock: MockCloudApi | MockProcess, campaign_id: int, **send: object):  # type: ignore[no-untyped-def]
    settings = settings_for(db.url, mock, **send)
    campaign = await campaign_store.campaign_row(db, campaign_id)
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = campaign_sender(db, client, settings, campaign)
        assert isinstance(sender, NumbersSender)
        outcome = await asyncio.wait_for(sender.run(), 60)
    return outcome, sender.metrics.snapshot()


async def test_a_version_3_database_gains_the_sender_columns_index_and_leases(database_url: str) -> None:
    async with Database(database_url) as db, db.engine.begin() as conn:  # back to v3
        await conn.execute(text("DROP INDEX ix_recipients_claim_sender"))
        await conn.execute(text("DROP TABLE sender_leases"))
        await conn.execute(text("ALTER TABLE recipients DROP COLUMN sender"))
        await conn.execute(text("ALTER TABLE campaigns DROP COLUMN senders"))
        await conn.execute(update(schema_info).values(version=3))
    async with Database(database_url) as db, db.engine.connect() as conn:
        found = await conn.run_sync(lambda sync: (
            {c["name"] for c in inspect(sync).get_columns("recipients")},
            {c["name"] for c in inspect(sync).get_columns("campaigns")},
            {i["name"] for i in inspect(sync).get_indexes("recipients")},
            inspect(sync).has_table("sender_leases"),
        ))
        version = (await conn.execute(select(schema_info.c.version))).scalar_one()
    recipient_columns, campaign_columns, indexes, has_leases = found
    assert "sender" in recipient_columns and "senders" in campaign_columns
    assert "ix_recipients_claim_sender" in indexes and has_leases
    assert version == SCHEMA_VERSION
    await (await Database(database_url).open()).close()  # a second open has nothing to add


async def test_a_claim_for_a_number_takes_only_its_recipients(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id = await make_campaign(database, recipients_per_step=40)
    pinned = await pin_to_numbers(database, campaign_id, NUMBERS)
    step = await claims.current_step(database, campaign_id, OTHER)
    assert step is not None
    mine = await claims.claim(database, step.id, "me", 100, lease_seconds=60, now=time.time(),
                              sender=OTHER)
    if database.dialect == "sqlite":  # and the plain statements an older SQLite gets
        monkeypatch.setattr(sqlite_batches, "AVAILABLE", False)
    rest = await claims.claim(database, step.id, "me", 100, lease_seconds=60, now=time.time())
    assert len(mine) == pinned[OTHER] and 0 < len(mine) < 40
    assert {sender_for(row.phone, NUMBERS) for row in mine} == {OTHER}
    assert len(rest) == 40 - len(mine)  # a campaign's claim without a number takes any row
    assert await claims.current_step(database, campaign_id, OTHER) is not None  # still sending


async def test_two_numbers_each_at_the_rate_and_one_number_per_person_in_every_step(
    sqlite_url: str,
) -> None:
    """40 msg/s per number, the mock (in its own process, counting arrivals on its own loop
    as the API would) allowing 50 per number: the two together send about 80 a second, none a
    130429, and each person's two steps come from the same number. (One pacer for both would
    send 40 in all; one number paced twice, 80 on it.) The room between 40 and 50 is for
    arrivals that bunch when this shared machine is busy; exact pacing has its own tests."""
    mock = MockProcess(["--token", TOKEN, "--rate-limit", "50", "--latency", "0,0.002",
                        "--no-pair-limit"])
    await mock.start()
    try:
        async with Database(sqlite_url) as db:
            campaign_id = await make_campaign(db, recipients_per_step=60, steps_count=2)
            await pin_to_numbers(db, campaign_id, NUMBERS)
            outcome, figures = await run_in_process(db, mock, campaign_id, rate=40)
            assert outcome.status is RunStatus.COMPLETED
            assert await counters_match_rows(db, campaign_id) == {}
        async with httpx.AsyncClient(base_url=mock.base_url) as http:
            stats = (await http.get("/_mock/stats")).json()
            ledger = (await http.get("/_mock/ledger")).json()
    finally:
        await mock.stop()
    assert stats["errors"].get("130429", 0) == 0 and stats["accepted"] == 120
    arrivals: dict[str, list[float]] = defaultdict(list)
    numbers_per_person: dict[str, set[str]] = defaultdict(set)
    for entry in ledger:
        arrivals[entry["phone_number_id"]].append(entry["at"])
        numbers_per_person[entry["to"]].add(entry["phone_number_id"])
    assert set(arrivals) == set(NUMBERS)
    assert all(most_in_one_second(times) <= 50 for times in arrivals.values())
    assert most_in_one_second([entry["at"] for entry in ledger]) >= 60  # two pacers
    assert all(numbers == {sender_for(to, NUMBERS)} for to, numbers in numbers_per_person.items())
    assert {f.phone_number_id for f in figures.numbers} == set(NUMBERS)
    assert figures.target_rate == 80 and figures.accepted_total == 120


async def test_a_number_paused_by_spam_stops_alone_and_its_recipients_wait(
    database: Database, mock_api: MockCloudApi
) -> None:
    mock_api.config.number_faults = {OTHER: 131048}
    campaign_id = await make_campaign(database, recipients_per_step=60)
    pinned = await pin_to_numbers(database, campaign_id, NUMBERS)
    outcome, figures = await run_in_process(database, mock_api, campaign_id)
    assert outcome.status is RunStatus.PAUSED
    assert outcome.reason == ("no number can send: number 1000002: 131048: spam rate limit hit: "
                              "the number is restricted")
    assert {entry.phone_number_id for entry in mock_api.ledger} == {PHONE_ID}
    assert await statuses_by_sender(database, campaign_id) == {
        (PHONE_ID, "sent"): pinned[PHONE_ID], (OTHER, "queued"): pinned[OTHER],
    }
    assert await counters_match_rows(database, campaign_id) == {}
    row = await campaign_store.campaign_row(database, campaign_id)
    assert row.status == "paused" and row.pause_reason == outcome.reason
    states = {f.phone_number_id: (f.state, f.reason) for f in figures.numbers}
    assert states[OTHER][0] == "paused" and "131048" in (states[OTHER][1] or "")


async def test_a_database_hiccup_between_ticks_is_a_warning_and_sending_goes_on(
    sqlite_url: str, mock_api: MockCloudApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second and third looks at the leases fail (the database restarting): the numbers
    already sending carry on, within their leases, and the campaign completes."""
    calls = 0
    hold = number_leases.hold_numbers

    async def flaky_hold(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            raise OperationalError("UPDATE sender_leases", None, ConnectionError("restarting"))
        return await hold(*args, **kwargs)

    monkeypatch.setattr(number_leases, "hold_numbers", flaky_hold)
    async with Database(sqlite_url) as db:
        campaign_id = await make_campaign(db, recipients_per_step=200)
        await pin_to_numbers(db, campaign_id, NUMBERS)
        outcome, _ = await run_in_process(db, mock_api, campaign_id, rate=50)
        assert await counters_match_rows(db, campaign_id) == {}
    assert outcome.status is RunStatus.COMPLETED and calls > 3
    assert len({entry.to for entry in mock_api.ledger}) == 200 == len(mock_api.ledger)


async def test_a_number_whose_lease_another_process_took_stops_sending_here(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    """A number is paced by one process at a time: when its lease is found taken (it lapsed,
    another process took it), its sender here stops until the number can be held again."""
    async with Database(sqlite_url) as db:
        campaign_id = await make_campaign(db, recipients_per_step=120)
        await pin_to_numbers(db, campaign_id, NUMBERS)
        settings = settings_for(db.url, mock_api, rate=20)
        campaign = await campaign_store.campaign_row(db, campaign_id)
        async with WhatsAppClient(settings.whatsapp, settings.http) as client:
            sender = campaign_sender(db, client, settings, campaign)
            run = asyncio.create_task(sender.run())
            while not any(entry.phone_number_id == OTHER for entry in mock_api.ledger):
                await asyncio.sleep(0.05)
            await set_holder(db, campaign_id, OTHER, "thief:1:x", time.time() + 60)
            await asyncio.sleep(1.2)  # a tick sees it and the sender stops
            stolen_at = time.monotonic()
            await asyncio.sleep(1.2)
            during = [e for e in mock_api.ledger if e.phone_number_id == OTHER and e.at > stolen_at]
            await set_holder(db, campaign_id, OTHER, None, None)  # the thief lets it go
            outcome = await asyncio.wait_for(run, 60)
    assert during == []
    assert outcome.status is RunStatus.COMPLETED and len(mock_api.ledger) == 120


async def set_holder(
    db: Database, campaign_id: int, number: str, holder: str | None, expires_at: float | None
) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            update(sender_leases)
            .where(sender_leases.c.campaign_id == campaign_id,
                   sender_leases.c.phone_number_id == number)
            .values(holder=holder, expires_at=expires_at)
        )


async def run_with_the_other_number_refused(
    url: str, mock: MockCloudApi, code: int, recipients: int, **send: object
) -> tuple[RunOutcome, dict[tuple[str, str], int]]:
    """A campaign of two numbers whose second gets ``code`` for every message, run with
    reassign_on_pause; how it ended and its recipients by (number, status) after."""
    mock.config.number_faults = {OTHER: code}
    async with Database(url) as db:
        campaign_id = await make_campaign(db, recipients_per_step=recipients)
        await pin_to_numbers(db, campaign_id, NUMBERS)
        outcome, _ = await run_in_process(db, mock, campaign_id, reassign_on_pause=True, **send)
        assert await counters_match_rows(db, campaign_id) == {}
        return outcome, await statuses_by_sender(db, campaign_id)


async def test_reassign_on_pause_moves_a_paused_numbers_recipients_to_the_others(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    outcome, left = await run_with_the_other_number_refused(sqlite_url, mock_api, 131031, 60)
    assert outcome.status is RunStatus.COMPLETED
    assert left == {(PHONE_ID, "sent"): 60}
    per_phone = Counter(entry.to for entry in mock_api.ledger)
    assert len(per_phone) == 60 and set(per_phone.values()) == {1}
    assert mock_api.counters["error_131031"] >= 1


async def test_a_template_pause_still_pauses_the_whole_campaign(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    outcome, left = await run_with_the_other_number_refused(
        sqlite_url, mock_api, 132015, 400, rate=200)
    assert outcome.status is RunStatus.PAUSED and outcome.reason is not None
    assert outcome.reason.startswith("132015")
    assert left.get((PHONE_ID, "queued"), 0) > 0  # the other number stopped too


async def test_unpinned_and_stray_recipients_are_pinned_before_sending(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    """NULL (an older watui's rows) means the first number; a number the campaign no longer
    has hands its recipients to the campaign's numbers by sender_for."""
    async with Database(sqlite_url) as db:
        campaign_id = await make_campaign(db, recipients_per_step=40)
        await pin_to_numbers(db, campaign_id, ("999", *NUMBERS))  # 999: since dropped
        async with db.engine.begin() as conn:
            await conn.execute(update(campaigns).values(senders=json.dumps(NUMBERS)))
            await conn.execute(update(recipients).where(recipients.c.sender == OTHER)
                               .values(sender=None))
        before = await senders_of(db, campaign_id)
        outcome, _ = await run_in_process(db, mock_api, campaign_id)
        after = await senders_of(db, campaign_id)
    assert outcome.status is RunStatus.COMPLETED
    assert {entry.to: entry.phone_number_id for entry in mock_api.ledger} == after
    unpinned = [phone for phone, number in before.items() if number is None]
    strays = [phone for phone, number in before.items() if number == "999"]
    assert unpinned and strays  # the arrangement has both
    assert {after[phone] for phone in unpinned} == {PHONE_ID}
    assert all(after[phone] == sender_for(phone, NUMBERS) for phone in strays)


@pytest.mark.postgres
async def test_two_processes_share_two_numbers_one_process_per_number(
    postgres_server, mock_api: MockCloudApi
) -> None:
    """Two `watui run` of one campaign of two numbers on PostgreSQL: each number paced by one
    process at a time (two pacers on a number would send it 80 a second, far over the mock's
    limit), the numbers spread over both, and a killed process's number taken over by the other."""
    mock_api.config.rate_limit = 60  # 40 per number, room for the shared loop's jitter; 80 fails
    total = 320
    async with Database(postgres_server.new_database()) as db:
        campaign_id = await make_campaign(db, "shared", recipients_per_step=total)
        await pin_to_numbers(db, campaign_id, NUMBERS)
        env = env_for(settings_for(db.url, mock_api))
        processes = [await spawn_run("shared", env, rate=40) for _ in range(2)]
        spread = await holders(db, campaign_id, lambda held: len(set(held.values())) == 2, processes)
        victim_number, victim = next(iter(spread.items()))
        killed = next(p for p in processes if f":{p.pid}:" in victim)
        survivor = next(p for p in processes if p is not killed)
        killed.send_signal(signal.SIGKILL)
        await killed.wait()
        killed_at = time.monotonic()
        assert await asyncio.wait_for(survivor.wait(), 60) == 0
        result = await audit(db, campaign_id, mock_api, total)
    assert_clean(result)
    assert mock_api.counters["error_130429"] == 0
    taken_over = [e for e in mock_api.ledger if e.phone_number_id == victim_number and e.at > killed_at]
    assert taken_over, "nobody sent from the killed process's number afterwards"
    assert result.by_status.get("sent", 0) + result.by_status.get("in_doubt", 0) == total


async def holders(db: Database, campaign_id: int, wanted, processes, timeout: float = 60):  # type: ignore[no-untyped-def]
    """Wait until the numbers' holders satisfy ``wanted``; returns {number: holder}."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                select(sender_leases.c.phone_number_id, sender_leases.c.holder).where(
                    sender_leases.c.campaign_id == campaign_id, sender_leases.c.holder.isnot(None))
            )
            held = {number: holder for number, holder in rows}
        if wanted(held):
            return held
        assert all(p.returncode is None for p in processes), "watui run ended too soon"
        assert time.monotonic() < deadline, f"numbers never held as wanted: {held}"
        await asyncio.sleep(0.05)



def test_a_number_pause_is_the_numbers_and_a_template_pause_the_campaigns() -> None:
    problem = Problem(ErrorKind.PAUSE, 131048, "131048", "spam")
    assert not pauses_whole_campaign(problem)
    assert pauses_whole_campaign(Problem(ErrorKind.PAUSE, 132015, "132015", "template paused"))
    spam = {"B": "131048: spam"}
    assert after_number_pauses(("A", "B"), spam, reassign=False) == KeepSending()
    assert after_number_pauses(("A", "B", "C"), spam, reassign=True) == Reassign(("B",), ("A", "C"))
    assert after_number_pauses(("A", "B"), {**spam, "A": "131031: locked"}, reassign=True) == PauseAll(
        "no number can send: number B: 131048: spam; number A: 131031: locked")


def test_sender_for_moves_only_a_dropped_numbers_recipients() -> None:
    phones = [f"+1555{index:07d}" for index in range(3000)]
    before = {phone: sender_for(phone, ("A", "B", "C")) for phone in phones}
    after = {phone: sender_for(phone, ("A", "C")) for phone in phones}
    assert all(after[phone] == number for phone, number in before.items() if number != "B")
    assert 800 < Counter(before.values())["B"] < 1200  # about a third each


def test_status_json_lists_each_number_with_its_recipients_and_pause(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def arrange() -> dict[str, int]:
        async with Database(sqlite_url) as db:
            campaign_id = await make_campaign(db, "two", recipients_per_step=30)
            pinned = await pin_to_numbers(db, campaign_id, NUMBERS)
            await number_leases.hold_numbers(db, campaign_id, "elsewhere:1:x", NUMBERS, want=1)
            await number_leases.pause_number(db, campaign_id, OTHER, "131048: spam")
            return pinned

    pinned = asyncio.run(arrange())
    assert main(["--database-url", sqlite_url, "status", "two", "--json"]) == 0
    senders = json.loads(capsys.readouterr().out)["senders"]
    assert senders == [
        {"phone_number_id": PHONE_ID, "by_status": {"queued": pinned[PHONE_ID]},
         "paused_reason": None, "held_by": "elsewhere:1:x"},
        {"phone_number_id": OTHER, "by_status": {"queued": pinned[OTHER]},
         "paused_reason": "131048: spam", "held_by": None},
    ]


async def test_the_monitor_shows_each_numbers_rate_and_state(
    sqlite_url: str, mock_api: MockCloudApi, tmp_path: Path, tui_deterministic: None
) -> None:
    """The real backend, engine and mock under Pilot: one number sending, one paused by 131048."""
    mock_api.config.number_faults = {OTHER: 131048}
    settings = settings_for(sqlite_url, mock_api, rate=40)
    backend = await open_live_backend(settings, lambda: WhatsAppClient(settings.whatsapp, settings.http))
    try:
        campaign_id = await make_campaign(backend.db, "duo", recipients_per_step=300)
        await pin_to_numbers(backend.db, campaign_id, NUMBERS)
        await backend.start("duo")
        app = WatuiApp(backend, refresh_interval=0.1, start_dir=tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("enter")
            line = app.screen.query_one("#numbers", Static)
            for _ in range(200):
                shown = str(line.render())
                if f"{PHONE_ID} ▶" in shown and f"{OTHER} ‖ 131048" in shown:
                    break
                await pilot.pause(0.05)
            else:
                raise AssertionError(f"numbers line never showed both: {shown!r}")
            assert line.display and isinstance(app.screen, MonitorScreen)
            snapshot = await backend.metrics("duo")
            assert snapshot is not None and [n.state for n in snapshot.numbers] == ["sending", "paused"]
    finally:
        await backend.shutdown()


def test_the_run_line_shows_each_numbers_rate_compactly() -> None:
    numbers = (
        NumberFigures(PHONE_ID, NumberState.SENDING, None, 40.0, 39.6),
        NumberFigures(OTHER, NumberState.PAUSED, "131048: spam", 40.0, 0.0),
        NumberFigures("1000003", NumberState.ELSEWHERE, None, 40.0, 0.0),
    )
    assert numbers_part(numbers) == " | 1000001 40/s, 1000002 paused, 1000003 elsewhere"
    assert numbers_part(numbers[:1]) == ""  # one number: the line as it always was


async def test_a_campaign_with_its_own_numbers_runs_without_a_configured_number(
    database: Database, mock_api: MockCloudApi
) -> None:
    """`watui run` of a campaign with `--senders` needs no whatsapp.phone_number_id; one
    without its own numbers still gets the one-line error naming the setting."""
    settings = settings_for(database.url, mock_api, rate=200).model_copy(deep=True)
    settings.whatsapp.phone_number_id = ""
    own = await make_campaign(database, recipients_per_step=20, name="own")
    await pin_to_numbers(database, own, ["1000001", "1000002"])
    await make_campaign(database, recipients_per_step=5, name="plain")

    outcome, _ = await asyncio.wait_for(run_campaign(settings, "own"), 30)
    assert outcome.status is RunStatus.COMPLETED
    assert {entry.phone_number_id for entry in mock_api.ledger} == {"1000001", "1000002"}
    assert len(mock_api.ledger) == 20
    with pytest.raises(CampaignNotRunnable, match=r"whatsapp\.phone_number_id is not set"):
        await run_campaign(settings, "plain")
