"""The suppression list, for real: on a real SQLite file and a real PostgreSQL server, the
import's rejects, the rows skipped when a number is suppressed, the claim-time check, and
the webhooks (a stop word, a 131050 after acceptance, user_preferences stop and resume)
posted by the mock to the real receiver while the engine sends to the mock over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from tests.factories import running_mock
from tests.test_engine_http import PHONE_ID, TOKEN
from tests.test_webhook_apply_live import SECRET, eventually, send_all, webhook_settings
from watui.cli.main import main
from watui.mockapi.server import MockCloudApi
from watui.receiver import DeliveryApplier, WebhookReceiver
from watui.rules import SuppressionReason, SuppressionScope, matched_stop_word, stop_word_key
from watui.settings import Settings, SettingsError, load_settings
from watui.storage import claims
from watui.storage.campaigns import campaign_row, counters_match_rows, list_rejects
from watui.storage.contacts import ContactsSource
from watui.storage.creation import NewStep, create_campaign
from watui.storage.database import SCHEMA_VERSION, Database
from watui.storage.schema import recipients, schema_info, suppressions, templates
from watui.storage.suppressions import NewSuppression, list_suppressions, suppress

NUMBERS = [f"+3461234{index:04d}" for index in range(1, 9)]


async def sync_template(db: Database, name: str, category: str) -> None:
    """A template as `watui templates sync` caches it (one body parameter)."""
    async with db.begin() as conn:
        await conn.execute(insert(templates).values(
            name=name, language="en_US", status="APPROVED", category=category,
            body_text="Hi {{1}}", body_param_count=1, synced_at=time.time()))  # fmt: skip


def contacts_file(tmp_path: Path, phones: list[str], name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text("phone,name\n" + "".join(f"{phone},N{i}\n" for i, phone in enumerate(phones)))
    return path


async def new_campaign(db: Database, name: str, template: str, contacts: Path, **options: object) -> int:
    source = ContactsSource(contacts, body_params=("name",))
    created = await create_campaign(db, name, [NewStep(template, "en_US", source)], **options)  # type: ignore[arg-type]
    return created.campaign_id


async def statuses(db: Database, campaign_id: int) -> dict[str, tuple[str, str | None]]:
    """phone -> (status, last error title) of the campaign's rows."""
    async with db.engine.connect() as conn:
        query = select(recipients.c.phone, recipients.c.status, recipients.c.last_error_title).where(
            recipients.c.campaign_id == campaign_id)
        return {phone: (status, title) for phone, status, title in await conn.execute(query)}


def manual(phone: str, scope: SuppressionScope = SuppressionScope.ALL) -> NewSuppression:
    return NewSuppression(phone, SuppressionReason.MANUAL, scope)


# ----- the rules -----


@pytest.mark.parametrize(
    "text", ["STOP", " stop! ", "Stop.", "arret", "  ARRÊT ", "baja", "Abmelden?", "стоп"]
)
def test_a_stop_word_matches_whatever_its_case_accents_and_punctuation(text: str) -> None:
    assert matched_stop_word(text, ["STOP", "ARRÊT", "BAJA", "ABMELDEN", "СТОП"]) is not None


@pytest.mark.parametrize("text", ["please stop calling me at night", "stopp", "", None, "!!!"])
def test_only_a_whole_message_that_is_a_stop_word_matches(text: str | None) -> None:
    assert matched_stop_word(text, ["STOP"]) is None


def test_stop_word_keys_drop_accents_and_collapse_spaces() -> None:
    assert stop_word_key("  Désabonner   MOI ") == "desabonner moi"


def test_stop_words_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATUI_AUDIENCE__STOP_WORDS", '["HALT", "Ça suffit"]')
    words = Settings().audience.stop_words
    assert matched_stop_word("ca suffit!", words) == "Ça suffit"
    assert matched_stop_word("stop", words) is None, "the setting replaces the defaults"
    with pytest.raises(SettingsError, match="'!!' has no letters or digits"):
        load_settings({"audience": {"stop_words": ["STOP", "!!"]}})


# ----- storage: the schema, import, suppressing, the claim-time check -----


async def test_a_version_3_database_gains_the_suppression_list(database_url: str) -> None:
    async with Database(database_url) as db, db.begin() as conn:
        await conn.run_sync(suppressions.drop)
        await conn.execute(update(schema_info).values(version=3))
    async with Database(database_url) as db:
        async with db.engine.connect() as conn:
            assert (await conn.execute(select(schema_info.c.version))).scalar_one() == SCHEMA_VERSION
        assert (await suppress(db, [manual(NUMBERS[0])])).added == 1


async def test_import_rejects_suppressed_numbers_by_scope_and_excluded_ones(
    database: Database, tmp_path: Path
) -> None:
    """All-templates entries stop every step; marketing-only ones only MARKETING templates."""
    await sync_template(database, "promo", "MARKETING")
    await sync_template(database, "notice", "UTILITY")
    await suppress(database, [manual(NUMBERS[0]), manual(NUMBERS[1], SuppressionScope.MARKETING)])
    contacts = contacts_file(tmp_path, [*NUMBERS[:4], NUMBERS[3]])
    exclude = contacts_file(tmp_path, [NUMBERS[3]], "exclude.csv")
    promo = await new_campaign(database, "promo", "promo", contacts, exclude=exclude)
    notice = await new_campaign(database, "notice", "notice", contacts)
    assert set(await statuses(database, promo)) == {NUMBERS[2]}
    assert set(await statuses(database, notice)) == {NUMBERS[1], NUMBERS[2], NUMBERS[3]}
    promo_rejects = [(r.line, r.reason) for r in await list_rejects(database, "promo")]
    assert promo_rejects == [(2, "suppressed"), (3, "suppressed"), (5, "excluded"), (6, "excluded")]
    notice_rejects = [(r.line, r.reason) for r in await list_rejects(database, "notice")]
    assert notice_rejects == [(2, "suppressed"), (6, "duplicate of line 5")]
    record = await campaign_row(database, promo)
    assert (record.total, record.invalid) == (1, 4)
    for campaign_id in (promo, notice):
        assert await counters_match_rows(database, campaign_id) == {}


async def test_suppressing_skips_queued_rows_of_every_campaign_with_the_reason(
    database: Database, tmp_path: Path
) -> None:
    await sync_template(database, "promo", "MARKETING")
    contacts = contacts_file(tmp_path, NUMBERS[:3])
    promo = await new_campaign(database, "promo", "promo", contacts)
    notice = await new_campaign(database, "notice", "unsynced", contacts)
    marketing_stop = NewSuppression(
        NUMBERS[0], SuppressionReason.USER_PREFERENCES, SuppressionScope.MARKETING
    )
    result = await suppress(database, [marketing_stop, manual(NUMBERS[1])])
    assert (result.added, result.skipped) == (2, 3)
    assert await statuses(database, promo) == {
        NUMBERS[0]: ("skipped", "suppressed: user_preferences"),
        NUMBERS[1]: ("skipped", "suppressed: manual"), NUMBERS[2]: ("queued", None)}  # fmt: skip
    assert (await statuses(database, notice))[NUMBERS[0]] == ("queued", None), "not marketing"
    assert (await campaign_row(database, promo)).skipped == 2
    again = await suppress(database, [manual(NUMBERS[0])])  # widened to every template
    assert (again.added, again.skipped) == (1, 1)
    for campaign_id in (promo, notice):
        assert await counters_match_rows(database, campaign_id) == {}


async def test_a_claimed_batch_is_checked_against_the_list(database: Database, tmp_path: Path) -> None:
    """A number on the list when its row is claimed (suppressed by another writer while it was
    queued) is skipped then, never handed to the sender."""
    campaign_id = await new_campaign(database, "late", "notice", contacts_file(tmp_path, NUMBERS[:4]))
    async with database.begin() as conn:  # as if written while the row was being claimed
        await conn.execute(insert(suppressions).values(phone=NUMBERS[2], scope="all",
                                                       reason="stop_word", created_at=time.time()))
    step = await claims.current_step(database, campaign_id)
    assert step is not None
    claimed = await claims.claim(database, step.id, "me", 10, lease_seconds=60, now=time.time())
    assert sorted(row.phone for row in claimed) == [NUMBERS[0], NUMBERS[1], NUMBERS[3]]
    assert (await statuses(database, campaign_id))[NUMBERS[2]] == ("skipped", "suppressed: stop_word")
    assert await counters_match_rows(database, campaign_id) == {}


# ----- live: the mock, the receiver, the engine -----


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.002), seed=18, app_secret=SECRET,
                            webhook_delivered_delay=(0.05, 0.2)) as mock:  # fmt: skip
        yield mock


async def receiving(db: Database, mock: MockCloudApi) -> WebhookReceiver:
    settings = webhook_settings(db, mock)
    applier = DeliveryApplier(db, settings.webhook, settings.retry, phone_number_id=PHONE_ID,
                              interval=0.05, stop_words=settings.audience.stop_words)  # fmt: skip
    receiver = WebhookReceiver(db, settings.webhook, settings.whatsapp.app_secret, applier=applier)
    mock.update_config({"webhook_url": await receiver.start()})
    return receiver


def reached(mock: MockCloudApi, template: str | None = None) -> set[str]:
    return {entry.to for entry in mock.ledger if template is None or entry.template == template}


async def test_suppressed_at_import_and_by_a_stop_word_mid_campaign_never_reach_the_mock(
    database: Database, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    phones = [f"+3461299{index:04d}" for index in range(60)]
    await suppress(database, [manual(phones[0])])
    campaign_id = await new_campaign(database, "spring", "notice", contacts_file(tmp_path, phones))
    receiver = await receiving(database, mock_api)
    try:
        settings = webhook_settings(database, mock_api, rate=40)
        sending = asyncio.create_task(send_all(database, settings, campaign_id))
        await eventually(lambda: _at_least(mock_api, 3), "the first sends")
        mock_api.webhooks.inbound_text(PHONE_ID, phones[-1].lstrip("+"), "  Stop! ")
        await sending
    finally:
        await receiver.stop()
    assert reached(mock_api) == set(phones[1:-1])
    rows = await statuses(database, campaign_id)
    assert rows[phones[-1]] == ("skipped", "suppressed: stop_word")
    [entry] = [e for e in await list_suppressions(database) if e.phone == phones[-1]]
    assert (entry.scope, entry.reason, entry.detail) == ("all", "stop_word", "STOP")
    record = await campaign_row(database, campaign_id)
    assert (record.sent, record.skipped, record.invalid) == (58, 1, 1)
    assert await counters_match_rows(database, campaign_id) == {}


async def _at_least(mock: MockCloudApi, count: int) -> bool:
    return len(mock.ledger) >= count


async def test_131050_after_acceptance_stops_marketing_only_until_the_person_resumes(
    database: Database, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    await sync_template(database, "welcome", "UTILITY")
    await sync_template(database, "promo", "MARKETING")
    await sync_template(database, "notice", "UTILITY")
    opted, others = NUMBERS[:4], NUMBERS[4:6]
    first = await new_campaign(database, "first", "welcome", contacts_file(tmp_path, opted, "a.csv"))
    promo = await new_campaign(database, "promo", "promo", contacts_file(tmp_path, opted + others, "b.csv"))
    notice = await new_campaign(database, "notice", "notice", contacts_file(tmp_path, opted, "c.csv"))
    await suppress(database, [manual(others[1], SuppressionScope.MARKETING)])  # a person's
    receiver = await receiving(database, mock_api)
    try:
        mock_api.update_config({"webhook_failures": {131050: 1.0}})
        await send_all(database, webhook_settings(database, mock_api), first)
        await eventually(lambda: _skipped(database, promo, 5), "131050 applied to the other campaigns")
        mock_api.update_config({"webhook_failures": {}})
        await send_all(database, webhook_settings(database, mock_api), promo)
        await send_all(database, webhook_settings(database, mock_api), notice)
        assert reached(mock_api, "promo") == {others[0]}
        assert reached(mock_api, "notice") == set(opted), "marketing-only lets utility through"
        reasons = {e.phone: (e.scope, e.reason) for e in await list_suppressions(database)}
        assert reasons == {**{phone: ("marketing", "131050") for phone in opted},
                           others[1]: ("marketing", "manual")}  # fmt: skip
        for wa_id in (opted[0], others[1]):
            mock_api.webhooks.preference(PHONE_ID, wa_id.lstrip("+"), "resume")
        await eventually(lambda: _listed(database, 4), "the resume applied")
    finally:
        await receiver.stop()
    left = {e.phone for e in await list_suppressions(database)}
    assert left == {*opted[1:], others[1]}, "a resume lifts the stop's entry, not a person's"
    for campaign_id in (first, promo, notice):
        assert await counters_match_rows(database, campaign_id) == {}


async def _skipped(db: Database, campaign_id: int, count: int) -> bool:
    return (await campaign_row(db, campaign_id)).skipped == count


async def _listed(db: Database, count: int) -> bool:
    return len(await list_suppressions(db)) == count


# ----- the command line -----


def test_suppress_commands_round_trip(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))

    def watui(*argv: str) -> tuple[int, str, str]:
        code = main(["--database-url", sqlite_url, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert watui("suppress", "add", "+34612340001", "612340002", "--default-region", "ES",
                 "--marketing-only", "--reason", "asked at the shop")[0] == 0  # fmt: skip
    listed = tmp_path / "list.csv"
    listed.write_text("phone,name\n+34612340003,a\nnot a number,b\n+34612340001,c\n")
    code, out, err = watui("suppress", "import", str(listed), "--marketing-only")
    assert code == 0 and "suppressed 1 number (1 already on the list)" in out
    assert "line 3: phone 'not a number' is not a phone number" in err
    code, out, _ = watui("suppress", "list", "--json")
    entries = {entry["phone"]: entry for entry in json.loads(out)}
    assert set(entries) == {"+34612340001", "+34612340002", "+34612340003"}
    assert entries["+34612340001"]["scope"] == "marketing"
    assert entries["+34612340001"]["detail"] == "asked at the shop"
    assert entries["+34612340003"]["reason"] == "imported"
    exported = tmp_path / "out.csv"
    assert watui("suppress", "export", str(exported))[0] == 0
    removed = watui("suppress", "remove", "+34612340001", "+34612340002", "+34612340003")[1]
    assert removed.startswith("removed 3")
    assert "suppressed 3 numbers" in watui("suppress", "import", str(exported))[1], "an export imports back"
    code, out, err = watui("suppress", "add", "+34612340009", "12")
    assert code == 2 and err.count("\n") == 1 and "nothing was changed" in err
    contacts = contacts_file(tmp_path, ["+34612340003", "+34612340004", "+34612340005"])
    exclude = contacts_file(tmp_path, ["+34612340005"], "exclude.csv")
    code, out, err = watui(*create("spring", contacts, exclude))
    assert code == 0, err
    assert "1 queued, 0 invalid, 0 duplicates, 1 suppressed, 1 excluded" in out
    code, out, _ = watui("campaign", "rejects", "spring", "--csv")
    assert out.splitlines()[1:] == ["1,2,+34612340003,suppressed", "1,4,+34612340005,excluded"]
    spec = tmp_path / "summer.toml"
    spec.write_text('name = "summer"\nexclude = "exclude.csv"\n[[steps]]\ntemplate = "t"\n'
                    'language = "en_US"\ncontacts = "contacts.csv"\nbody_params = ["name"]\n')
    code, out, err = watui("campaign", "create", "--spec", str(spec))
    assert code == 0 and "1 suppressed, 1 excluded" in out, err
    bad_exclude = contacts_file(tmp_path, ["+34612340005", "oops"], "bad.csv")
    code, _, err = watui(*create("autumn", contacts, bad_exclude))
    assert code == 2 and "line 3" in err and "(--exclude)" in err and err.count("\n") == 1



def create(name: str, contacts: Path, exclude: Path) -> list[str]:
    return ["campaign", "create", name, "--template", "t", "--language", "en_US", "--contacts",
            str(contacts), "--body-params", "name", "--exclude", str(exclude)]  # fmt: skip


async def test_the_mock_fails_marketing_to_a_person_who_stopped_it_with_131050(
    mock_api: MockCloudApi,
) -> None:
    """As Meta does when watui does not know yet (no receiver): a marketing template to a number
    whose user_preferences said stop fails after acceptance; utility ones still go."""
    hooks = mock_api.webhooks
    hooks.preference(PHONE_ID, "34612340001", "stop")
    for wamid, template in (("wamid.M1", "welcome"), ("wamid.U1", "order_update")):
        hooks.message_accepted(PHONE_ID, "+34612340001", wamid, template, None)
    hooks.preference(PHONE_ID, "34612340001", "resume")
    hooks.message_accepted(PHONE_ID, "+34612340001", "wamid.M2", "welcome", None)
    outcome = hooks.final_status
    assert outcome["wamid.M1"] == "failed"
    assert outcome["wamid.U1"] != "failed" and outcome["wamid.M2"] != "failed"
