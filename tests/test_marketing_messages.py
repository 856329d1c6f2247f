"""The Marketing Messages API: MARKETING templates to ``/marketing_messages`` when enabled, the
rest to ``/messages``, a campaign's forced endpoint first; the mock answers both alike.

Real HTTP on loopback to the mock (whose ledger records the path each message came by), real
databases, the real command line.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from textual.widgets import Select

from tests.factories import make_campaign, running_mock
from tests.test_tui_flows import fill_setup, settle
from tests.tui_fakes import FakeBackend, make_app
from watui.cli.main import main
from watui.engine.sender import CampaignSender, RunStatus
from watui.mockapi.server import MockCloudApi
from watui.rules import Endpoint, endpoint_for
from watui.settings import Settings
from watui.storage.campaigns import campaign_by_name
from watui.storage.database import Database
from watui.storage.schema import campaigns, templates
from watui.storage.templates import template_row
from watui.whatsapp.client import WhatsAppClient, endpoint_url
from watui.whatsapp.payload import build_template_message
from watui.whatsapp.results import Accepted, ApiError

TOKEN = "marketing-test-token"
PER_STEP = 20


@pytest.mark.parametrize(
    ("forced", "category", "enabled", "expected"),
    [
        (None, "MARKETING", True, Endpoint.MARKETING_MESSAGES),
        (None, "marketing", True, Endpoint.MARKETING_MESSAGES),
        (None, "MARKETING", False, Endpoint.MESSAGES),  # opt-in
        (None, "UTILITY", True, Endpoint.MESSAGES),
        (None, None, True, Endpoint.MESSAGES),  # never synced
        ("auto", "MARKETING", True, Endpoint.MARKETING_MESSAGES),
        ("messages", "MARKETING", True, Endpoint.MESSAGES),
        ("marketing_messages", "UTILITY", False, Endpoint.MARKETING_MESSAGES),
    ],
)
def test_which_endpoint_a_step_uses(
    forced: str | None, category: str | None, enabled: bool, expected: Endpoint
) -> None:
    assert endpoint_for(forced, category, enabled) is expected


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=3) as mock:
        yield mock


def settings_for(database_url: str, mock: MockCloudApi, *, marketing_messages: bool) -> Settings:
    return Settings(
        database_url=database_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": "1000001", "waba_id": "2000002",
                  "api_base_url": mock.base_url, "marketing_messages": marketing_messages},
        send={"rate": 500, "flush_interval_ms": 50},
    )  # fmt: skip


async def campaign_of_two_categories(
    db: Database, name: str, *, endpoint: str | None = None, first_number: int = 15550000000
) -> int:
    """Step 1 sends a MARKETING template, step 2 a UTILITY one (as the template cache says)."""
    campaign_id = await make_campaign(
        db, name, recipients_per_step=PER_STEP, steps_count=2, first_number=first_number
    )
    async with db.begin() as conn:
        await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
            endpoint=endpoint))
        known = {row.name for row in await conn.execute(templates.select())}
        rows = [
            template_row({"name": name, "language": "en_US", "status": "APPROVED",
                          "category": category}, time.time())
            for name, category in (("template_0", "MARKETING"), ("template_1", "UTILITY"))
            if name not in known
        ]  # fmt: skip
        if rows:
            await conn.execute(insert(templates), rows)
    return campaign_id


async def send_all(db: Database, mock: MockCloudApi, campaign_id: int, *, enabled: bool) -> None:
    settings = settings_for(db.url, mock, marketing_messages=enabled)
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        outcome = await asyncio.wait_for(CampaignSender(db, client, settings, campaign_id).run(), 60)
    assert outcome.status is RunStatus.COMPLETED


def routes(mock: MockCloudApi, since: int = 0) -> Counter[tuple[str, str]]:
    """(template, endpoint) of each message the mock accepted."""
    return Counter((entry.template, entry.endpoint) for entry in mock.ledger[since:])


async def test_marketing_templates_go_to_marketing_messages_only_when_enabled(
    database: Database, mock_api: MockCloudApi
) -> None:
    enabled = await campaign_of_two_categories(database, "enabled")
    await send_all(database, mock_api, enabled, enabled=True)
    assert routes(mock_api) == {
        ("template_0", "marketing_messages"): PER_STEP, ("template_1", "messages"): PER_STEP,
    }  # fmt: skip
    seen = len(mock_api.ledger)
    disabled = await campaign_of_two_categories(database, "disabled", first_number=15560000000)
    await send_all(database, mock_api, disabled, enabled=False)
    assert routes(mock_api, seen) == {
        ("template_0", "messages"): PER_STEP, ("template_1", "messages"): PER_STEP,
    }  # fmt: skip


async def test_a_campaigns_forced_endpoint_wins(database: Database, mock_api: MockCloudApi) -> None:
    plain = await campaign_of_two_categories(database, "plain", endpoint="messages")
    await send_all(database, mock_api, plain, enabled=True)
    assert routes(mock_api) == {("template_0", "messages"): PER_STEP,
                                ("template_1", "messages"): PER_STEP}
    seen = len(mock_api.ledger)
    marketing = await campaign_of_two_categories(
        database, "marketing", endpoint="marketing_messages", first_number=15560000000
    )
    await send_all(database, mock_api, marketing, enabled=False)
    assert routes(mock_api, seen) == {("template_0", "marketing_messages"): PER_STEP,
                                      ("template_1", "marketing_messages"): PER_STEP}


async def test_the_mock_answers_both_endpoints_alike(mock_api: MockCloudApi) -> None:
    """Same answers, same token check, and one per-number limit shared by both paths."""
    settings = settings_for("sqlite+aiosqlite:///unused.db", mock_api, marketing_messages=True)
    urls = [endpoint_url(settings.whatsapp, endpoint) for endpoint in Endpoint]
    payload = build_template_message("+15550001111", "welcome", "en_US", {"body": ["Ana"]}, None)
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        answers = [await client.send(payload, url=url) for url in urls]
        assert all(isinstance(answer, Accepted) for answer in answers), answers
        assert {answer.message_status for answer in answers if isinstance(answer, Accepted)} == {
            "accepted"}
        mock_api.config.rate_limit = 6  # 2 already sent this second
        more = [await client.send(payload, url=urls[i % 2]) for i in range(8)]
        refused = [answer for answer in more if isinstance(answer, ApiError)]
        assert [answer.code for answer in refused] == [130429] * 4
    mock_api.config.access_token = "another-token"
    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        bad_token = [await client.send(payload, url=url) for url in urls]
    assert [(answer.http_status, answer.code) for answer in bad_token
            if isinstance(answer, ApiError)] == [(401, 190), (401, 190)]
    assert {entry.endpoint for entry in mock_api.ledger} == {"messages", "marketing_messages"}


def create(database_url: str, *argv: str) -> int:
    return main(["--database-url", database_url, "campaign", "create", *argv])


async def stored_endpoints(database_url: str, *names: str) -> dict[str, str | None]:
    """Each named campaign's stored endpoint ("missing" when it was not created)."""
    async with Database(database_url) as db:
        found = {name: await campaign_by_name(db, name) for name in names}
    return {name: record.endpoint if record else "missing" for name, record in found.items()}


def test_endpoint_from_the_option_and_the_spec(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "contacts.csv").write_text("phone,first_name\n+34612345678,Ana\n")
    step = ["--template", "welcome", "--language", "en_US", "--contacts", "contacts.csv",
            "--body-params", "first_name"]  # fmt: skip
    assert create(sqlite_url, "forced", *step, "--endpoint", "marketing_messages") == 0
    assert create(sqlite_url, "auto", *step, "--endpoint", "auto") == 0
    capsys.readouterr()
    code = create(sqlite_url, "bad", *step, "--endpoint", "marketing")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "endpoint 'marketing' is not known: give auto, messages or marketing_messages " \
           "(--endpoint)" in err
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "spec"\nendpoint = "messages"\n[[steps]]\ntemplate = "welcome"\n'
                    'language = "en_US"\ncontacts = "contacts.csv"\nbody_params = ["first_name"]\n')
    assert create(sqlite_url, "--spec", str(spec)) == 0
    spec.write_text(spec.read_text().replace('"spec"', '"spec2"').replace('"messages"', "1"))
    assert create(sqlite_url, "--spec", str(spec)) == 2
    assert "endpoint must be a string" in capsys.readouterr().err
    assert asyncio.run(stored_endpoints(sqlite_url, "forced", "auto", "spec", "bad", "spec2")) == {
        "forced": "marketing_messages", "auto": None, "spec": "messages", "bad": "missing",
        "spec2": "missing",
    }  # fmt: skip
    capsys.readouterr()
    assert main(["--database-url", sqlite_url, "status", "forced"]) == 0
    assert re.search(r"^  Endpoint: +marketing_messages$", capsys.readouterr().out, re.M)
    assert main(["--database-url", sqlite_url, "status", "auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["endpoint"] == "auto"


async def test_the_setup_screens_endpoint_reaches_the_campaign() -> None:
    """The real app under Pilot: the form's endpoint select goes into the spec it creates."""
    backend = FakeBackend.sample()
    app = make_app(backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, "promo")
        endpoint = screen.query_one("#endpoint", Select)
        assert endpoint.value == "auto"
        endpoint.value = "marketing_messages"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert backend.created[-1].endpoint == "marketing_messages"
