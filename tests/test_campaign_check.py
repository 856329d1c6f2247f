"""The dry run (`watui campaign check`) against real parts: a CSV imported into both databases,
a synced MARKETING template, the 24-hour limit nearly full, then a real run to the mock whose
sends must match what the dry run said; rate cards and their errors; the --json shape."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.factories import running_mock
from tests.test_messaging_limit import TOKEN, fill_window, limited_settings
from watui.cli.main import main
from watui.engine.sender import CampaignSender
from watui.errors import RateCardError
from watui.mockapi.server import MockCloudApi
from watui.rules import SuppressionReason, SuppressionScope
from watui.service.checks import check_campaign
from watui.settings import Settings
from watui.storage.campaigns import get_campaign, list_rejects
from watui.storage.contacts import ContactsSource
from watui.storage.creation import NewStep, create_campaign
from watui.storage.database import Database
from watui.storage.rate_card import load_rate_card
from watui.storage.schema import templates
from watui.storage.suppressions import NewSuppression, suppress
from watui.storage.templates import template_row
from watui.whatsapp.client import WhatsAppClient

# 3 US and 5 Spanish numbers, a duplicate of each kind, and two that are no numbers at all.
CONTACTS = """phone,name
+14155550100,a
+14155550101,b
+14155550102,c
+34612345670,d
+34612345671,e
+34612345672,f
+34612345673,g
+34612345674,h
+14155550100,dup
+34612345670,dup
12,bad
not a phone,bad
"""
CARD = """calling_code,category,price,currency
34,marketing,0.0610,EUR
*,marketing,0.0500,EUR
1,utility,0.0100,EUR
"""


PROMO_TEMPLATE = {"name": "promo", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
                  "components": [{"type": "BODY", "text": "Hi {{1}}"}]}


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=1) as mock:
        yield mock


async def promo_campaign(db: Database, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CONTACTS)
    async with db.begin() as conn:
        await conn.execute(insert(templates).values(template_row(PROMO_TEMPLATE, time.time())))
    source = ContactsSource(path=contacts, body_params=("name",))
    await create_campaign(db, "promo", [NewStep("promo", "en_US", source)])


async def test_the_dry_run_says_what_the_run_then_does(
    database: Database, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    await promo_campaign(database, tmp_path)
    await fill_window(database, 245, leaves_in=3600)  # room for 5 new numbers of the 8
    card = tmp_path / "card.csv"
    card.write_text(CARD)
    settings = limited_settings(database.url, mock_api)
    now = time.time()
    check = await check_campaign(database, settings, "promo", card, now)

    (step,) = check.steps
    assert (step.will_send, step.us_marketing, step.category) == (8, 3, "MARKETING")
    assert {r.reason: r.count for r in step.rejected} == {
        "invalid": 2, "duplicate": 2, "suppressed": 0, "excluded": 0}
    assert {r.reason: r.count for r in step.delayed} == {"over the 24-hour messaging limit": 3}
    assert (check.messaging_limit, check.limit_used) == (250, 245)
    assert check.limit_clears_at == pytest.approx(now + 3600, abs=2)
    assert check.finishes_at == check.limit_clears_at
    # The 3 US numbers get MARKETING, which Meta does not deliver (nor bill): 5 Spanish priced.
    assert [(line.calling_code, line.messages, line.cost) for line in check.cost_lines] == [
        (34, 5, Decimal("0.3050"))]
    assert (check.total_cost, check.currency, check.unpriced) == (Decimal("0.3050"), "EUR", 0)

    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(database, client, settings, (await get_campaign(database, "promo")).id)
        run = asyncio.create_task(sender.run())
        deadline = time.monotonic() + 10
        while (len(mock_api.ledger) < 5 or sender.messaging_limit.waiting_reason is None) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # and no more come
        sender.request_stop()
        await asyncio.wait_for(run, 10)
    sent = {entry.to for entry in mock_api.ledger}
    assert len(mock_api.ledger) == len(sent) == step.will_send - 3
    rejects = await list_rejects(database, "promo")
    assert len(rejects) == sum(r.count for r in step.rejected)


@pytest.mark.parametrize(("text", "where"), [
    ("code,category,price,currency\n1,utility,1,USD\n", "line 1: the header must be"),
    ("calling_code,category,price,currency\n0044,utility,1,USD\n", "line 2, column 1 (calling_code)"),
    ("calling_code,category,price,currency\n44,promo,1,USD\n", "line 2, column 2 (category)"),
    ("calling_code,category,price,currency\n# ok\n44,utility,-1,USD\n", "line 3, column 3 (price)"),
    ("calling_code,category,price,currency\n44,utility,NaN,USD\n", "line 2, column 3 (price)"),
    ("calling_code,category,price,currency\n44,utility,1,USD\n1,utility,1,EUR\n",
     "line 3, column 4 (currency): EUR, but earlier lines say USD"),
    ("calling_code,category,price,currency\n44,utility,1,USD\n44,Utility,2,USD\n",
     "line 3, column 1 (calling_code): 44,Utility is priced twice"),
    ("calling_code,category,price,currency\n44,utility,1\n", "line 2: 3 fields, expected 4"),
    ("calling_code,category,price,currency\n", "no prices below the header"),
])
def test_a_bad_rate_card_is_refused_in_one_line_naming_line_and_column(
    tmp_path: Path, text: str, where: str
) -> None:
    card = tmp_path / "card.csv"
    card.write_text(text)
    with pytest.raises(RateCardError) as caught:
        load_rate_card(card)
    message = str(caught.value)
    assert where in message and "\n" not in message and str(card) in message


def test_a_rate_card_prices_by_code_then_by_its_fallback(tmp_path: Path) -> None:
    card_file = tmp_path / "card.csv"
    card_file.write_text("\ufeff" + CARD.replace("34,", "+34,"))
    card = load_rate_card(card_file)
    assert card.currency == "EUR"
    assert card.price(34, "marketing") == Decimal("0.0610")
    assert card.price(44, "marketing") == Decimal("0.0500")
    assert card.price(44, "utility") is None


def test_watui_campaign_check_json_shape_and_bad_card_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"

    async def create() -> None:
        async with Database(url) as db:
            await promo_campaign(db, tmp_path)

    asyncio.run(create())
    (tmp_path / "card.csv").write_text(CARD)
    assert main(["--database-url", url, "campaign", "check", "promo", "--rate-card", "card.csv",
                 "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {"campaign", "checked_at", "rate", "will_send", "send_seconds",
                          "finishes_at", "messaging_limit", "steps", "cost"}
    assert shown["messaging_limit"] is None and shown["will_send"] == 8
    assert shown["steps"] == [{
        "step": 1, "template": "promo", "language": "en_US", "category": "MARKETING",
        "will_send": 8, "rejected": {"invalid": 2, "duplicate": 2, "suppressed": 0, "excluded": 0},
        "skipped": {"suppressed since": 0, "outside every send window before the deadline": 0},
        "delayed": {"over the 24-hour messaging limit": 0}, "us_marketing_undelivered": 3,
    }]
    assert shown["cost"] == {"currency": "EUR", "total": "0.3050", "unpriced_messages": 0, "lines": [
        {"calling_code": 34, "category": "marketing", "messages": 5, "price": "0.0610",
         "cost": "0.3050"}]}

    (tmp_path / "bad.csv").write_text("calling_code,category,price,currency\n44,marketing,x,EUR\n")
    assert main(["--database-url", url, "campaign", "check", "promo", "--rate-card", "bad.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2, column 3 (price)" in err


async def test_the_dry_run_counts_suppressed_and_excluded_numbers_as_the_run_skips_them(
    database: Database, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    """One number suppressed before the import, one named by the exclusion file, one
    suppressed (marketing only) after it: the dry run's counts are what the run then sends."""
    await suppress(database, [NewSuppression("+34612345671", SuppressionReason.MANUAL)])
    excluded = tmp_path / "exclude.csv"
    excluded.write_text("phone\n+34612345672\n")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CONTACTS)
    async with database.begin() as conn:
        await conn.execute(insert(templates).values(template_row(PROMO_TEMPLATE, time.time())))
    source = ContactsSource(path=contacts, body_params=("name",))
    await create_campaign(database, "promo", [NewStep("promo", "en_US", source)], exclude=excluded)
    await suppress(database, [NewSuppression(
        "+34612345673", SuppressionReason.USER_PREFERENCES, SuppressionScope.MARKETING)])
    settings = Settings(
        database_url=database.url,
        whatsapp={"access_token": TOKEN, "phone_number_id": "1000001", "waba_id": "2000002",
                  "api_base_url": mock_api.base_url},
        send={"rate": 400, "flush_interval_ms": 50},
    )

    check = await check_campaign(database, settings, "promo", None, time.time())
    (step,) = check.steps
    rejected = {r.reason: r.count for r in step.rejected}
    assert (rejected["suppressed"], rejected["excluded"], rejected["invalid"]) == (1, 1, 2)
    assert step.will_send == 5  # 8 numbers, 2 rejected, 1 skipped when suppressed

    async with WhatsAppClient(settings.whatsapp, settings.http) as client:
        sender = CampaignSender(database, client, settings, (await get_campaign(database, "promo")).id)
        await asyncio.wait_for(sender.run(), 20)
    sent = {entry.to for entry in mock_api.ledger}
    assert len(mock_api.ledger) == len(sent) == step.will_send
    assert not sent & {"+34612345671", "+34612345672", "+34612345673"}
    assert "+34612345670" in sent
