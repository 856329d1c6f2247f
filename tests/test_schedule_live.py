"""When to send, for real: the importer gives each recipient its zone key, the sender claims
only the recipients whose window is open (real HTTP to the mock, real databases), waits for a
start time, pauses at a deadline with nothing sent after it, and `watui run --due` runs what is
due. The mock's ledger is the judge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from tests.factories import make_campaign, running_mock
from tests.test_engine_http import TOKEN, accepted_per_phone, env_for, run_cli, settings_for
from watui.cli.main import main
from watui.cli.run import ProgressLine
from watui.engine.runner import run_campaign
from watui.engine.sender import CampaignSender, RunOutcome, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.rules import WINDOW_WAIT_REASON
from watui.storage import claims, dialects
from watui.storage.campaigns import campaign_row, counters_match_rows, list_rejects
from watui.storage.contacts import ContactsSource
from watui.storage.creation import NewStep, create_campaign
from watui.storage.database import Database
from watui.storage.schema import recipients
from watui.storage.timing import due_campaigns
from watui.whatsapp.client import WhatsAppClient

#: Numbers whose zones phonenumbers knows, and the tz column's override.
MADRID = "+34912345678"  # Europe/Madrid
MADRID_TOO = "+34912345679"
CANARIES = "+34928123456"  # Atlantic/Canary: an hour behind Madrid
SPANISH_MOBILE = "+34612345678"  # Atlantic/Canary|Europe/Madrid: open only when both are
CHICAGO = "+13125550100"  # America/Chicago
TOKYO = "+81312345678"  # Asia/Tokyo
CHICAGO_IN_PARIS = "+13125550101"  # tz column: Europe/Paris (Madrid's hours)


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=1) as mock:
        yield mock


def contacts_file(tmp_path: Path, rows: list[tuple[str, str]]) -> ContactsSource:
    path = tmp_path / "contacts.csv"
    path.write_text("phone,name,tz\n" + "".join(f"{phone},N,{tz}\n" for phone, tz in rows))
    return ContactsSource(path, body_params=("name",))


def numbers(count: int, first: int = 34912340000) -> list[tuple[str, str]]:
    return [(f"+{first + index}", "") for index in range(count)]


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def madrid_window_around_now(minutes: int = 30) -> str:
    """A window open now in Madrid (and Paris), closed an hour behind or further away."""
    local = datetime.now(ZoneInfo("Europe/Madrid"))
    now = local.hour * 60 + local.minute
    opens, closes = (now - minutes) % 1440, (now + minutes) % 1440
    return f"{opens // 60:02d}:{opens % 60:02d}-{closes // 60:02d}:{closes % 60:02d}"


async def until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def stopped_once_waiting(
    database: Database, mock_api: MockCloudApi, campaign_id: int
) -> tuple[CampaignSender, RunOutcome]:
    """Run the campaign until its sender waits (for its start or a window), then stop it as
    Ctrl-C would."""
    settings = settings_for(database.url, mock_api)
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(database, client, settings, campaign_id)
        running = asyncio.create_task(sender.run())
        await until(lambda: sender.waiting is not None)
        sender.request_stop()
        return sender, await asyncio.wait_for(running, 10)


async def test_only_recipients_whose_window_is_open_are_sent_across_zones(
    database: Database, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    rows = [(MADRID, ""), (MADRID_TOO, ""), (CANARIES, ""), (SPANISH_MOBILE, ""), (CHICAGO, ""),
            (TOKYO, ""), (CHICAGO_IN_PARIS, "Europe/Paris"), ("+13125550102", "Europe/Atlantis")]
    created = await create_campaign(
        database, "zones", [NewStep("welcome", "en_US", contacts_file(tmp_path, rows))],
        send_window=madrid_window_around_now(),
    )
    [reject] = await list_rejects(database, "zones")
    assert "unknown time zone 'Europe/Atlantis'" in reject.reason
    async with database.engine.connect() as conn:
        keys = dict((await conn.execute(select(recipients.c.phone, recipients.c.tz))).all())
    assert keys[SPANISH_MOBILE] == "Atlantic/Canary|Europe/Madrid"
    assert keys[CHICAGO_IN_PARIS] == "Europe/Paris"
    sender, outcome = await stopped_once_waiting(database, mock_api, created.campaign_id)
    assert outcome.status is RunStatus.STOPPED
    assert sender.waiting is not None
    assert sender.waiting.reason.startswith("outside every recipient's window until ")
    assert set(accepted_per_phone(mock_api)) == {MADRID, MADRID_TOO, CHICAGO_IN_PARIS}
    async with database.engine.connect() as conn:
        left = (await conn.execute(
            select(recipients.c.phone).where(recipients.c.status == "queued")
        )).scalars()
        assert set(left) == {CANARIES, SPANISH_MOBILE, CHICAGO, TOKYO}
    assert await counters_match_rows(database, created.campaign_id) == {}


async def test_a_run_says_it_waits_for_the_start_and_pauses_at_the_deadline_sending_nothing_after(
    database: Database, mock_api: MockCloudApi, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`watui run`'s own run and progress display, in this process (a new process takes a
    second or more to start on a busy machine, longer than the test may wait)."""
    start = time.time() + 0.6
    deadline = start + 1.0
    created = await create_campaign(
        database, "timed", [NewStep("welcome", "en_US", contacts_file(tmp_path, numbers(100)))],
        rate=20, start_at=iso(start), deadline=iso(deadline),
    )
    wall_minus_monotonic = time.time() - time.monotonic()
    display = ProgressLine(enabled=False)
    try:
        outcome, _ = await run_campaign(
            settings_for(database.url, mock_api), "timed", on_start=display.start
        )
    finally:
        display.stop()
    assert outcome.status is RunStatus.PAUSED and outcome.by_safety_rule  # exit code 3
    assert outcome.reason is not None and "paused rather than send late" in outcome.reason
    assert "watui: waiting: starts at " in capsys.readouterr().err
    arrivals = [entry.at + wall_minus_monotonic for entry in mock_api.ledger]
    assert 12 <= len(arrivals) <= 25  # 20 msg/s for a second
    assert min(arrivals) >= start - 0.01  # the clocks are read apart: a hair of slack
    assert max(arrivals) <= deadline + 0.01
    campaign = await campaign_row(database, created.campaign_id)
    assert campaign.status == "paused" and campaign.pause_reason == outcome.reason
    assert campaign.in_doubt == 0 and campaign.sent == len(arrivals)
    assert await counters_match_rows(database, created.campaign_id) == {}


async def test_run_due_runs_what_is_due_and_leaves_the_rest(
    database: Database, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    """Due: a draft whose start has passed. Not due: a future start, or no start at all (a
    person starts those). A due campaign outside every window is left paused for the next
    --due; the command returns at once either way."""
    def step(name: str, first: int) -> list[NewStep]:
        folder = tmp_path / name
        folder.mkdir()
        return [NewStep("welcome", "en_US", contacts_file(folder, numbers(5, first)))]

    now = time.time()
    await create_campaign(database, "due", step("due", 34912340000), start_at=iso(now - 60))
    await create_campaign(database, "later", step("later", 34912341000), start_at=iso(now + 3600))
    await create_campaign(database, "manual", step("manual", 34912342000))
    closed = (datetime.now(ZoneInfo("Europe/Madrid")).hour + 12) % 24
    await create_campaign(
        database, "asleep", [NewStep("welcome", "en_US", contacts_file(tmp_path, [(MADRID, "")]))],
        start_at=iso(now - 60), send_window=f"{closed:02d}:00-{(closed + 1) % 24:02d}:00",
    )
    env = env_for(settings_for(database.url, mock_api))
    code, stderr = await run_cli("run", "--due", "--quiet", env=env, timeout=60)
    assert code == 0, stderr
    assert "due: completed; sent 5" in stderr
    assert f"asleep: {WINDOW_WAIT_REASON}" in stderr
    assert sorted(accepted_per_phone(mock_api)) == [f"+{34912340000 + i}" for i in range(5)]
    still_due = await due_campaigns(database, time.time())
    assert [(row.name, row.pause_reason) for row in still_due] == [("asleep", WINDOW_WAIT_REASON)]


def test_run_takes_a_name_or_due_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run", "--due", "spring"], ["run"]):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().endswith(
            "give a campaign NAME, or --due to run every campaign due now (not both)"
        )


@pytest.mark.parametrize("statements", ["fast", "portable"])
async def test_every_claim_statement_takes_only_the_open_zones_retries_first(
    database: Database, statements: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dialect's own claim (SQLite's JSON batch, PostgreSQL's one statement) and the plain
    statements it is checked against lease the same rows: due rows of the zones given, due
    retries first, never more than asked."""
    if statements == "portable":
        for name in ("claim_transaction", "claim_rows"):
            monkeypatch.setattr(type(database.kind), name, getattr(dialects.Dialect, name))
    campaign_id = await make_campaign(database, recipients_per_step=12)
    keys = ["Europe/Madrid", "Asia/Tokyo", "America/Chicago|America/New_York"]
    async with database.engine.begin() as conn:
        ids = (await conn.execute(select(recipients.c.id).order_by(recipients.c.id))).scalars().all()
        for index, recipient_id in enumerate(ids):
            retry = {"status": "retry", "attempts": 1} if index == 11 else {}
            await conn.execute(update(recipients).where(recipients.c.id == recipient_id)
                               .values(tz=keys[index % 3], **retry))
    step = await claims.current_step(database, campaign_id)
    assert step is not None
    open_now = [keys[0], keys[2]]
    first = await claims.claim(database, step.id, "me", 5, lease_seconds=60, now=time.time(),
                               zones=open_now)
    rest = await claims.claim(database, step.id, "me", 50, lease_seconds=60, now=time.time(),
                              zones=open_now)
    assert len(first) == 5 and first[0].id == ids[11]  # the due retry (America/...) first
    claimed = {row.id for row in first + rest}
    assert claimed == {recipient_id for index, recipient_id in enumerate(ids) if index % 3 != 1}
    assert await claims.claim(database, step.id, "me", 50, lease_seconds=60, now=time.time(),
                              zones=open_now) == []


async def test_a_stop_before_the_start_leaves_the_campaign_scheduled(
    database: Database, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    """Ctrl-C while `watui run` waits for the start: nothing sent, still a scheduled draft
    (so `run --due` and the UI start it when its time comes)."""
    created = await create_campaign(
        database, "tomorrow", [NewStep("welcome", "en_US", contacts_file(tmp_path, numbers(3)))],
        start_at=iso(time.time() + 3600),
    )
    _, outcome = await stopped_once_waiting(database, mock_api, created.campaign_id)
    assert outcome.status is RunStatus.STOPPED and not mock_api.ledger
    campaign = await campaign_row(database, created.campaign_id)
    assert (campaign.status, campaign.pause_reason, campaign.sent) == ("draft", None, 0)


def test_campaign_create_names_each_bad_time_in_one_line_and_creates_nothing(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contacts = contacts_file(tmp_path, numbers(2)).path
    base = ["--database-url", database_url, "campaign", "create"]
    step = ["--template", "welcome", "--language", "en_US", "--contacts", str(contacts),
            "--body-params", "name"]
    code = main([*base, "spring", *step, "--start-at", "2026-12-07T09:00",
                 "--send-window", "9-20", "--deadline", "2026-12-08T20:00 Mars/Olympus"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("watui: error: "), err
    assert "'2026-12-07T09:00' has no offset or time zone: add one" in err and "(--start-at)" in err
    assert "(--send-window)" in err and "unknown time zone 'Mars/Olympus'" in err
    spec = tmp_path / "spring.toml"
    spec.write_text(
        f'name = "spring"\nstart_at = 2026-12-07T09:00:00\nsend_window = "09:00-20:00"\n'
        f'[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\ncontacts = "{contacts}"\n'
        f'body_params = ["name"]\n'
    )
    code = main([*base, "--spec", str(spec)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no offset or time zone" in err
    assert err.rstrip().endswith("(start_at)"), err
    assert main(["--database-url", database_url, "campaign", "list", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
