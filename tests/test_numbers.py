"""Sender numbers: choosing a campaign's numbers (recipients pinned by ``rules.sender_for``), and
the numbers' health (``watui numbers``, tier lowering, RED pausing, the quality webhook).

Against real parts: the mock Cloud API on loopback (its /_mock/numbers changes a number while it
runs), real SQLite and PostgreSQL, the real client, sender and webhook receiver.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text, update
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from tests.factories import make_campaign, mock_on_thread, running_mock, unreachable_url
from watui.cli.main import main
from watui.engine.number_health import NumberHealthWatcher, refresh_numbers
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi, MockConfig
from watui.receiver import WebhookReceiver
from watui.rules import sender_for
from watui.service.open import open_live_backend
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import templates as template_store
from watui.storage.database import SCHEMA_VERSION, Database
from watui.storage.messaging_limit import current_limit
from watui.storage.number_health import NumberHealth, list_number_health
from watui.storage.schema import number_health, recipients, schema_info
from watui.tui.app import WatuiApp
from watui.tui.screens.campaigns import CampaignsScreen
from watui.tui.screens.numbers import NumbersScreen
from watui.tui.screens.setup import SetupScreen
from watui.tui.widgets.form import FormField
from watui.whatsapp.client import WhatsAppClient
from watui.whatsapp.numbers import list_phone_numbers

TOKEN = "numbers-test-token"
SENDER = "1000001"
OTHER = "1000002"
APP_SECRET = "numbers-app-secret"
T = TypeVar("T")


def stored_health(database_url: str) -> list[NumberHealth]:
    async def load() -> list[NumberHealth]:
        async with Database(database_url) as db:
            return await list_number_health(db)

    return asyncio.run(load())


# ----- watui numbers -----


@pytest.fixture
def numbers_mock() -> Iterator[MockCloudApi]:
    """Two numbers, on the mock's own thread, so that the synchronous CLI can call it."""
    api = MockCloudApi(MockConfig(access_token=TOKEN, latency=(0.0, 0.0)))
    api.numbers.change({"id": SENDER, "display_phone_number": "+1 555-010-0001",
                        "verified_name": "Spring Shop", "throughput": "HIGH"})
    api.numbers.change({"id": OTHER, "quality_rating": "YELLOW", "messaging_limit": "TIER_10K"})
    with mock_on_thread(api):
        yield api


@pytest.fixture
def numbers_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, numbers_mock: MockCloudApi) -> str:
    monkeypatch.setenv("WATUI_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("WATUI_WHATSAPP__ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("WATUI_WHATSAPP__WABA_ID", "2000002")
    monkeypatch.setenv("WATUI_WHATSAPP__API_BASE_URL", numbers_mock.base_url)
    return sqlite_url


def test_numbers_lists_the_account_and_records_it(
    numbers_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["numbers"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "NUMBER", "NAME", "QUALITY", "THROUGHPUT", "MESSAGING", "LIMIT"]
    assert table[1].split() == [SENDER, "+1", "555-010-0001", "Spring", "Shop", "GREEN", "HIGH",
                                "(1,000", "msg/s)", "TIER_2K"]  # fmt: skip
    assert "YELLOW" in table[2] and "STANDARD (80 msg/s)" in table[2] and "TIER_10K" in table[2]

    assert main(["numbers", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(n["id"], n["quality_rating"], n["throughput_level"], n["rate"]) for n in listed] == [
        (SENDER, "GREEN", "HIGH", 1000.0), (OTHER, "YELLOW", "STANDARD", 80.0)]
    heard = {number.phone_number_id: number for number in stored_health(numbers_env)}
    assert heard[SENDER].throughput_level == "HIGH" and heard[SENDER].source == "poll"
    assert heard[OTHER].messaging_limit == "TIER_10K" and heard[OTHER].display_digits == "15551000002"


def test_numbers_with_a_refused_token_is_one_line_exit_2(
    numbers_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATUI_WHATSAPP__ACCESS_TOKEN", "wrong-secret-value")
    assert main(["numbers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("watui: error: the access token was refused") and err.count("\n") == 1
    assert "check whatsapp.access_token" in err and "wrong-secret-value" not in err
    assert stored_health(numbers_env) == []


def test_numbers_unreachable_or_unset_is_one_line_exit_2(
    numbers_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATUI_WHATSAPP__API_BASE_URL", unreachable_url())
    assert main(["numbers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("watui: error: cannot reach") and err.count("\n") == 1
    monkeypatch.setenv("WATUI_WHATSAPP__WABA_ID", "")
    assert main(["numbers", "--json"]) == 2
    assert "whatsapp.waba_id is not set" in capsys.readouterr().err


# ----- the watcher in a real run -----


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=5) as mock:
        yield mock


def run_settings(database_url: str, mock: MockCloudApi, **send: object) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": SENDER, "waba_id": "2000002",
                  "api_base_url": mock.base_url},
        send={"flush_interval_ms": 50, **send},
    )


async def test_a_rate_above_the_tier_is_lowered_at_run_start(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    mock_api.numbers.change({"id": SENDER, "throughput": "STANDARD"})
    settings = run_settings(sqlite_url, mock_api, rate=1000)
    async with Database(sqlite_url) as db, WhatsAppClient(settings.whatsapp, settings.http) as client:
        campaign_id = await make_campaign(db, recipients_per_step=100)
        sender = CampaignSender(db, client, settings, campaign_id)
        outcome = await asyncio.wait_for(sender.run(), 20)
    assert outcome.status is RunStatus.COMPLETED
    assert sender.pacer.base_rate == 80
    warnings = [e.text for e in sender.metrics.events_since(0) if e.kind == "warning"]
    assert any("STANDARD throughput level: sending at 80 msg/s instead of 1000" in w for w in warnings)
    arrivals = sorted(entry.at for entry in mock_api.ledger)
    assert len(arrivals) == 100
    # At 1,000 msg/s the 100 would have arrived within a tenth of a second; at 80 msg/s no 81
    # of them arrive within one second.
    assert all(later - first >= 1.0 for first, later in zip(arrivals, arrivals[80:], strict=False))


async def test_quality_red_mid_run_pauses_the_number_with_the_reason(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    mock_api.numbers.change({"id": SENDER})
    settings = run_settings(sqlite_url, mock_api, rate=50, health_poll_s=0.3)
    async with Database(sqlite_url) as db, WhatsAppClient(settings.whatsapp, settings.http) as client:
        campaign_id = await make_campaign(db, recipients_per_step=300)
        sender = CampaignSender(db, client, settings, campaign_id)
        run = asyncio.create_task(sender.run())
        while len(mock_api.ledger) < 20:  # bounded by the wait_for below
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=mock_api.base_url) as http:
            answer = await http.post("/_mock/numbers", json={"id": SENDER, "quality_rating": "RED"})
        assert answer.status_code == 200
        outcome = await asyncio.wait_for(run, 10)
        campaign = await campaign_store.campaign_row(db, campaign_id)
    assert outcome.status is RunStatus.PAUSED and outcome.by_safety_rule
    assert outcome.reason is not None and f"({SENDER}) has quality rating RED" in outcome.reason
    assert campaign.status == "paused" and campaign.pause_reason == outcome.reason
    assert 20 <= len(mock_api.ledger) < 300


# ----- the quality webhook -----


async def test_a_quality_webhook_is_stored_and_pauses_its_number(
    database_url: str, mock_api: MockCloudApi
) -> None:
    settings = run_settings(database_url, mock_api)
    async with Database(database_url) as db:
        receiver = WebhookReceiver(db, settings.webhook, SecretStr(APP_SECRET))
        url = await receiver.start(port=0)
        try:
            mock_api.update_config({"webhook_url": url, "app_secret": APP_SECRET})
            async with httpx.AsyncClient(base_url=mock_api.base_url) as http:
                await http.post("/_mock/numbers", json={"id": SENDER, "throughput": "HIGH"})
                await http.post("/_mock/numbers", json={"id": SENDER, "quality_rating": "RED"})
            for _ in range(200):  # up to 10 s
                heard = await list_number_health(db)
                if heard and heard[0].event == "FLAGGED":
                    break
                await asyncio.sleep(0.05)
        finally:
            await receiver.stop()
        (number,) = heard
        assert (number.display_digits, number.phone_number_id, number.quality,
                number.throughput_level, number.event, number.source) == (
            "15551000001", None, "RED", "HIGH", "FLAGGED", "webhook")  # fmt: skip
        # A poll names the id; the engine then reads the webhook's RED for that number.
        async with WhatsAppClient(settings.whatsapp, settings.http) as client:
            await refresh_numbers(db, lambda: list_phone_numbers(client))
        paused: list[tuple[str, str]] = []
        watcher = NumberHealthWatcher(
            db, [SENDER], poll=None, poll_every=0, rate_of=lambda _n: 80.0,
            lower_rate=lambda *_args: None, pause_number=lambda n, why: paused.append((n, why)),
            warn=lambda _text: None,
        )
        await watcher.check()
    assert paused == [(SENDER, f"number +1 555-100-0001 ({SENDER}) has quality rating RED "
                               "(from a poll): sending more would get it restricted")]


# ----- choosing numbers -----


@pytest.fixture
def cli_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    """``cli_on(url)("campaign", ...)``: watui run in-process; (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))

    def on(database_url: str):
        def run(*argv: str) -> tuple[int, str, str]:
            code = main(["--database-url", database_url, *argv])
            captured = capsys.readouterr()
            return code, captured.out, captured.err

        return run

    return on


@pytest.fixture
def cli(cli_on, sqlite_url: str):
    """On SQLite: what these check happens before the database is written."""
    return cli_on(sqlite_url)


def contacts_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text("phone,name\n" + "".join(f"+3461234{i:04d},N{i}\n" for i in range(count)))
    return path


async def pinned_rows(db: Database) -> list[tuple[int, str, str | None]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(recipients.c.step_id, recipients.c.phone, recipients.c.sender))
        return [tuple(row) for row in rows]  # type: ignore[misc]


def pinned(database_url: str) -> list[tuple[int, str, str | None]]:
    async def load() -> list[tuple[int, str, str | None]]:
        async with Database(database_url) as db:
            return await pinned_rows(db)

    return asyncio.run(load())


def test_senders_pin_each_recipient_to_one_number_in_every_step(
    cli_on, database_url: str, tmp_path: Path
) -> None:
    cli = cli_on(database_url)
    contacts_file(tmp_path, 40)
    spec = tmp_path / "two.toml"
    spec.write_text(
        'name = "two"\nsenders = ["106540352242922", "106540352242923"]\n'
        + '[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\ncontacts = "contacts.csv"\n'
        'body_params = ["name"]\n' * 2
    )
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert code == 0, err
    rows = pinned(database_url)
    numbers = ["106540352242922", "106540352242923"]
    assert len(rows) == 80 and all(sender == sender_for(phone, numbers) for _, phone, sender in rows)
    assert {sender for _, _, sender in rows} == set(numbers)  # both numbers get recipients
    by_step: dict[str, set[str | None]] = {}
    for _, phone, sender in rows:
        by_step.setdefault(phone, set()).add(sender)
    assert all(len(senders) == 1 for senders in by_step.values())  # same number in both steps
    code, out, _ = cli("status", "two", "--json")
    assert [sender["phone_number_id"] for sender in json.loads(out)["senders"]] == numbers
    code, out, _ = cli("status", "two")
    assert "Sender numbers:" in out and "106540352242922, 106540352242923" in out


def test_without_senders_the_configured_number_sends(cli, sqlite_url: str, tmp_path: Path) -> None:
    path = contacts_file(tmp_path, 3)
    code, _, err = cli("campaign", "create", "one", "--template", "welcome", "--language", "en_US",
                       "--contacts", str(path), "--body-params", "name")  # fmt: skip
    assert code == 0, err
    assert {sender for _, _, sender in pinned(sqlite_url)} == {None}
    code, out, _ = cli("campaign", "list", "--json")
    assert json.loads(out)[0]["senders"] is None


@pytest.mark.parametrize(
    ("senders", "words"),
    [("1000001,12a", "sender '12a' is not a phone number ID"),
     ("1000001,1000001", "sender 1000001 is given twice"),
     (",", "no sender number given")],
)
def test_bad_senders_are_one_line_naming_the_option(
    cli, tmp_path: Path, senders: str, words: str
) -> None:
    path = contacts_file(tmp_path, 3)
    code, _, err = cli("campaign", "create", "bad", "--template", "welcome", "--language",
                         "en_US", "--contacts", str(path), "--body-params", "name",
                         "--senders", senders)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert words in err and err.rstrip().endswith("(--senders)")
    assert cli("campaign", "list", "--json")[1].strip() == "[]"  # nothing half-created


def test_bad_senders_in_a_spec_name_the_key(cli, tmp_path: Path) -> None:
    contacts_file(tmp_path, 3)
    spec = tmp_path / "bad.toml"
    step = '[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\ncontacts = "contacts.csv"\n'
    spec.write_text('name = "bad"\nsenders = "1000001"\n' + step)
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert code == 2 and "senders must be an array of phone number IDs" in err
    spec.write_text('name = "bad"\nsenders = ["+1 555"]\n' + step)
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert code == 2 and err.count("\n") == 1 and err.rstrip().endswith("(senders)")


async def test_the_mock_refuses_a_bad_number_change(mock_api: MockCloudApi) -> None:
    async with httpx.AsyncClient(base_url=mock_api.base_url) as http:
        bad = await http.post("/_mock/numbers", json={"id": SENDER, "quality_rating": "PURPLE"})
        listed = await http.get("/v23.0/2000002/phone_numbers",
                                headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "quality_rating must be one of" in bad.json()["error"]
    assert listed.json()["data"] == []


async def test_a_version_3_database_gains_the_sender_columns_and_number_health(
    database_url: str,
) -> None:
    async with Database(database_url) as db, db.begin() as conn:
        await conn.run_sync(number_health.drop)
        await conn.execute(text("DROP INDEX ix_recipients_claim_sender"))  # indexes sender
        await conn.execute(text("ALTER TABLE campaigns DROP COLUMN senders"))
        await conn.execute(text("ALTER TABLE recipients DROP COLUMN sender"))
        await conn.execute(update(schema_info).values(version=3))
    async with Database(database_url) as db:
        async with db.engine.connect() as conn:
            assert (await conn.execute(select(schema_info.c.version))).scalar_one() == SCHEMA_VERSION
        campaign_id = await make_campaign(db, recipients_per_step=2)
        assert (await campaign_store.campaign_row(db, campaign_id)).sender_ids(SENDER) == [SENDER]
        assert await list_number_health(db) == []


# ----- the numbers screen, on the real stack -----


@pytest.mark.usefixtures("tui_deterministic")
async def test_the_numbers_screen_shows_the_account_and_follows_a_change(
    sqlite_url: str, mock_api: MockCloudApi
) -> None:
    mock_api.numbers.change({"id": SENDER, "throughput": "HIGH", "verified_name": "Spring Shop"})
    settings = run_settings(sqlite_url, mock_api)
    backend = await open_live_backend(settings)
    app = WatuiApp(backend, refresh_interval=0.1)
    try:
        async with app.run_test(size=(110, 24)) as pilot:
            await pilot.press("m")
            table = await wait_until(pilot, lambda: _numbers_table(app))
            assert [str(cell) for cell in table.get_row_at(0)][:6] == [
                "+1 555-100-0001", "GREEN", "HIGH 1,000/s", "TIER_2K", SENDER, "Spring Shop"]
            note = str(app.screen.query_one("#numbers-note", Static).render())
            assert f"send from {SENDER}" in note
            mock_api.numbers.change({"id": SENDER, "quality_rating": "RED"})
            await pilot.press("r")
            await wait_until(pilot, lambda: str(table.get_row_at(0)[1]) == "RED" or None)
            await pilot.press("q")
            assert isinstance(app.screen, CampaignsScreen)
    finally:
        await backend.shutdown()


def _setup_screen(app: WatuiApp) -> SetupScreen | None:
    return app.screen if isinstance(app.screen, SetupScreen) else None


def _numbers_table(app: WatuiApp) -> DataTable[str] | None:
    if not isinstance(app.screen, NumbersScreen):
        return None
    table = app.screen.query_one("#numbers", DataTable)
    return table if table.row_count else None


async def wait_until(pilot: Pilot[int], ready: Callable[[], T | None], seconds: float = 10) -> T:
    for _ in range(int(seconds / 0.05)):
        if (value := ready()) is not None:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"not ready after {seconds} s")


def test_the_mock_command_refuses_a_bad_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mock-api", "--port", "0", "--number", "1000001:FAST"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--number '1000001:FAST': give ID[:LEVEL]" in err


@pytest.mark.usefixtures("tui_deterministic")
async def test_setup_takes_sender_numbers_and_pins_recipients(
    sqlite_url: str, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    settings = run_settings(sqlite_url, mock_api)
    backend = await open_live_backend(settings)
    await template_store.sync_templates(backend.db, backend.client)
    path = contacts_file(tmp_path, 12)
    app = WatuiApp(backend, refresh_interval=None, start_dir=tmp_path)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("n")
            screen = await wait_until(pilot, lambda: _setup_screen(app))
            assert screen.query_one("#senders", Input).placeholder == f"default: {SENDER}"
            screen.query_one("#name", Input).value = "pinned"
            screen.query_one(Select).value = "welcome|en_US"
            screen.query_one("#contacts", Input).value = str(path)
            screen.query_one("#body-params", Input).value = "name"
            screen.query_one("#senders", Input).value = f"{SENDER}, {SENDER}"
            await pilot.press("ctrl+s")
            field = screen.query_one("#f-senders", FormField)
            await wait_until(pilot, lambda: field.error or None)
            assert f"sender {SENDER} is given twice" in field.error
            screen.query_one("#senders", Input).value = f"{SENDER}, {OTHER}"
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, CampaignsScreen) or None)
        campaign = await campaign_store.get_campaign(backend.db, "pinned")
        rows = await pinned_rows(backend.db)
    finally:
        await backend.shutdown()
    assert campaign.sender_ids() == [SENDER, OTHER]
    assert len(rows) == 12 and all(s == sender_for(p, [SENDER, OTHER]) for _, p, s in rows)


# ----- the 24-hour messaging limit as the account reports it -----


async def test_an_account_limit_is_the_tier_the_api_reports(
    database: Database, mock_api: MockCloudApi
) -> None:
    """``whatsapp.messaging_limit = "account"``: the lowest tier until the number is heard, then
    what a poll of the mock's Graph API says, then what it says after the tier changes."""
    settings = run_settings(database.url, mock_api).model_copy(deep=True)
    settings.whatsapp.messaging_limit = "account"
    assert await current_limit(database, settings.whatsapp) == 250  # not heard yet
    async with WhatsAppClient(settings.whatsapp, settings.http) as client, httpx.AsyncClient(
        base_url=mock_api.base_url
    ) as http:
        for tier, limit in (("TIER_10K", 10_000), ("TIER_UNLIMITED", None)):
            changed = await http.post("/_mock/numbers", json={"id": SENDER, "messaging_limit": tier})
            assert changed.status_code == 200, changed.text
            await refresh_numbers(database, lambda: list_phone_numbers(client))
            assert await current_limit(database, settings.whatsapp) == limit
