"""Campaign storage on SQLite and PostgreSQL: one-transaction create, status, control, delete."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from watui.errors import CampaignError, CampaignExists, CampaignNotFound, ContactsError, InvalidCampaign
from watui.rules import Field, Problem
from watui.settings import RetrySettings
from watui.storage import Database
from watui.storage.campaigns import (
    campaign_status,
    cancel_campaign,
    count_by_status,
    counters_match_rows,
    delete_campaign,
    get_campaign,
    list_campaigns,
    pause_campaign,
    resume_campaign,
    retry_policy,
)
from watui.storage.contacts import ButtonParam, ContactsSource
from watui.storage.creation import NewStep, create_campaign
from watui.storage.rows import RetryPolicy
from watui.storage.schema import attempts, campaigns, recipients, rejects, steps, templates

NOW = 1_800_000_000.0


def contacts(tmp_path: Path, rows: int = 3, name: str = "c.csv", extra: str = "") -> Path:
    path = tmp_path / name
    lines = ["phone,name", *(f"+346{i:08d},N{i}" for i in range(rows))]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def step(path: Path, template: str = "welcome", **source: object) -> NewStep:
    return NewStep(template, "en_US", ContactsSource(path=path, body_params=("name",), **source))


async def table_counts(db: Database) -> dict[str, int]:
    async with db.engine.connect() as conn:
        return {
            table.name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for table in (campaigns, steps, recipients, rejects, attempts)
        }


async def test_create_with_steps_and_status(database: Database, tmp_path: Path) -> None:
    first = contacts(tmp_path, 3, extra="bad,X\n")
    second = contacts(tmp_path, 2, name="d.csv")
    created = await create_campaign(
        database, "spring", [step(first), step(second, "reminder")], rate=40, clock=lambda: NOW
    )
    assert (created.queued, created.invalid, created.duplicates) == (5, 1, 0)
    status = (await campaign_status(database, "spring")).as_json()
    assert {k: status[k] for k in ("name", "status", "total", "pending", "invalid", "rate")} == {
        "name": "spring",
        "status": "draft",
        "total": 5,
        "pending": 5,
        "invalid": 1,
        "rate": 40,
    }
    assert status["created_at"] == "2027-01-15T08:00:00Z"
    assert status["started_at"] is None and status["finished_at"] is None
    assert status["retrying"] == 0 and status["paused_reason"] is None
    assert [(s["position"], s["template"], s["total"]) for s in status["steps"]] == [
        (1, "welcome", 3),
        (2, "reminder", 2),
    ]
    assert await counters_match_rows(database, created.campaign_id) == {}
    assert [c.name for c in await list_campaigns(database)] == ["spring"]


async def test_names_are_unique(database: Database, tmp_path: Path) -> None:
    path = contacts(tmp_path)
    await create_campaign(database, "spring", [step(path)])
    before = await table_counts(database)
    with pytest.raises(CampaignExists, match="already exists"):
        await create_campaign(database, "spring", [step(path)])
    assert await table_counts(database) == before


async def test_failed_create_leaves_nothing(database: Database, tmp_path: Path) -> None:
    good = contacts(tmp_path, 50)
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"phone,name\n" + b"+34600000001,A\n" * 10 + b"+34\xff,B\n")
    with pytest.raises(ContactsError):
        await create_campaign(database, "spring", [step(good), step(broken)])
    assert await table_counts(database) == dict.fromkeys(
        ("campaigns", "steps", "recipients", "rejects", "attempts"), 0
    )


async def test_retry_policy_is_stored_with_the_campaign(database: Database, tmp_path: Path) -> None:
    path = contacts(tmp_path)
    await create_campaign(database, "own", [step(path)], max_retries=0, retry_delays=(1, 2.5))
    await create_campaign(database, "half", [step(path)], max_retries=3)
    await create_campaign(database, "plain", [step(path)])
    defaults = RetrySettings(max_retries=2, delays=[5.0, 10.0])
    own = await get_campaign(database, "own")
    assert (own.max_retries, json.loads(own.retry_delays)) == (0, [1.0, 2.5])
    assert retry_policy(own, defaults) == RetryPolicy(0, (1.0, 2.5), "campaign", "campaign")
    half = await get_campaign(database, "half")
    assert retry_policy(half, defaults) == RetryPolicy(3, (5.0, 10.0), "campaign", "settings")
    status = (await campaign_status(database, "plain", retry_defaults=defaults)).as_json()
    assert status["retry"] == {
        "max_retries": 2, "delays": (5.0, 10.0),
        "max_retries_from": "settings", "delays_from": "settings",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ({"max_retries": 11}, "max_retries 11 is out of range"),
        ({"max_retries": -1}, "from 0 to 10"),
        ({"max_retries": True}, "whole number"),
        ({"retry_delays": ()}, "at least one delay"),
        ({"retry_delays": (5, 0)}, "above 0"),
        ({"retry_delays": (86_401,)}, "at most 86400"),
        ({"retry_delays": (float("nan"),)}, "retry delays"),
    ],
)
async def test_bad_retry_policy_is_refused_and_leaves_nothing(
    database: Database, tmp_path: Path, policy: dict[str, object], fragment: str
) -> None:
    with pytest.raises(CampaignError, match=re.escape(fragment)) as raised:
        await create_campaign(database, "spring", [step(contacts(tmp_path))], **policy)
    assert "\n" not in str(raised.value)
    assert (await table_counts(database))["campaigns"] == 0


async def test_synced_template_checks_the_mapping(database: Database, tmp_path: Path) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(
            insert(templates),
            [
                {"name": "welcome", "language": "en_US", "status": "APPROVED",
                 "body_param_count": 2, "header_format": None, "synced_at": NOW},
                {"name": "promo", "language": "en_US", "status": "APPROVED",
                 "body_param_count": 1, "header_format": "IMAGE", "synced_at": NOW},
            ],
        )  # fmt: skip
    path = tmp_path / "c.csv"
    path.write_text("phone,name,photo\n+34600000001,Ana,https://x.test/a.png\n")
    with pytest.raises(CampaignError, match="takes 2 body parameter"):
        await create_campaign(database, "a", [step(path)])
    with pytest.raises(InvalidCampaign) as raised:
        await create_campaign(database, "b", [step(path, "promo")])
    assert raised.value.problems == (Problem(
        Field.HEADER_PARAM, "template 'promo' (en_US) has an image header: name its column", step=1
    ),)  # fmt: skip
    await create_campaign(database, "c", [step(path, "promo", header_param="photo")])
    async with database.engine.connect() as conn:
        mapping = json.loads((await conn.execute(select(steps.c.mapping))).scalar_one())
    assert mapping == {"body": ["name"], "header": "photo", "header_format": "image", "buttons": []}
    # A template that was never synced is accepted as given; one synced in other languages
    # only is most likely a wrong --language.
    await create_campaign(database, "d", [step(path, "unsynced")])
    wrong_language = NewStep("promo", "es", ContactsSource(path=path, body_params=("name",)))
    with pytest.raises(CampaignError, match=r"'promo' has no es translation \(synced: en_US\)"):
        await create_campaign(database, "e", [wrong_language])


async def test_synced_template_checks_the_buttons(database: Database, tmp_path: Path) -> None:
    """A dynamic URL needs its column, and a column goes only to a button that takes one: the
    API would refuse every message of a campaign mapped otherwise (132000)."""
    buttons = [
        {"type": "QUICK_REPLY", "text": "Stop"},
        {"type": "URL", "text": "Track", "url": "https://shop.test/t/{{1}}"},
        {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550001111"},
    ]
    async with database.engine.begin() as conn:
        await conn.execute(insert(templates), [
            {"name": "track", "language": "en_US", "status": "APPROVED", "body_param_count": 1,
             "buttons": json.dumps(buttons), "synced_at": NOW},
            {"name": "fixed", "language": "en_US", "status": "APPROVED", "body_param_count": 1,
             "buttons": json.dumps([{"type": "URL", "text": "Shop", "url": "https://shop.test"}]),
             "synced_at": NOW},
        ])  # fmt: skip
    path = tmp_path / "c.csv"
    path.write_text("phone,name,link,stop\n+34600000001,Ana,A-1,STOP-A\n+34600000002,Bo,B-2,STOP-B\n")

    def buttons_step(template: str, *mapped: tuple[int, str, str]) -> NewStep:
        return step(path, template, buttons=tuple(ButtonParam(i, kind, col) for i, kind, col in mapped))

    refused = {
        "button 1 is a URL with a parameter: name its column": buttons_step("track"),
        "button 1 is a URL, not a QUICK_REPLY: give it as url":
            buttons_step("track", (1, "quick_reply", "link")),
        "button 2 is a PHONE_NUMBER, not a URL: it takes no parameter, drop it":
            buttons_step("track", (1, "url", "link"), (2, "url", "stop")),
        "has 3 button(s), numbered from 0: there is no button 5; drop column 'stop'":
            buttons_step("track", (1, "url", "link"), (5, "quick_reply", "stop")),
        "button 0 has a fixed URL and takes no parameter: drop column 'link'":
            buttons_step("fixed", (0, "url", "link")),
    }  # fmt: skip
    for message, spec in refused.items():
        with pytest.raises(InvalidCampaign) as raised:
            await create_campaign(database, "refused", [spec])
        [problem] = raised.value.problems
        assert (problem.field, problem.step) == (Field.BUTTONS, 1)
        assert message in problem.message and "--" not in problem.message
    assert (await table_counts(database))["campaigns"] == 0

    await create_campaign(database, "ok", [buttons_step("track", (1, "url", "link"),
                                                        (0, "quick_reply", "stop"))])
    await create_campaign(database, "fixed-ok", [buttons_step("fixed")])
    async with database.engine.connect() as conn:
        params = (await conn.execute(select(recipients.c.params).order_by(recipients.c.id))).scalars()
        first = json.loads(next(iter(params)))
    assert first["buttons"] == [
        {"index": 0, "sub_type": "quick_reply", "text": "STOP-A"},
        {"index": 1, "sub_type": "url", "text": "A-1"},
    ]


async def test_named_placeholders_are_kept_for_the_request(database: Database, tmp_path: Path) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(insert(templates).values(
            name="welcome", language="en_US", status="APPROVED", body_param_count=1,
            body_text="Welcome aboard, {{first_name}}!", synced_at=NOW,
        ))
    path = tmp_path / "c.csv"
    path.write_text("phone,name\n+34600000001,Ana\n")
    await create_campaign(database, "named", [step(path, "welcome")])
    async with database.engine.connect() as conn:
        mapping = json.loads((await conn.execute(select(steps.c.mapping))).scalar_one())
    assert mapping["body_names"] == ["first_name"]


async def test_unknown_campaign(database: Database) -> None:
    with pytest.raises(CampaignNotFound, match="no campaign named 'nope'"):
        await get_campaign(database, "nope")
    with pytest.raises(CampaignNotFound):
        await delete_campaign(database, "nope")
    with pytest.raises(CampaignNotFound):
        await pause_campaign(database, 999, "x")


async def test_pause_resume_cancel(database: Database, tmp_path: Path) -> None:
    created = await create_campaign(database, "spring", [step(contacts(tmp_path, 4))])
    campaign_id = created.campaign_id
    await pause_campaign(database, campaign_id, "spam rate too high")
    status = (await campaign_status(database, "spring")).as_json()
    assert (status["status"], status["paused_reason"]) == ("paused", "spam rate too high")
    with pytest.raises(CampaignError, match="already paused"):
        await pause_campaign(database, campaign_id, "again")
    await resume_campaign(database, campaign_id)
    assert (await get_campaign(database, "spring")).status == "draft"
    with pytest.raises(CampaignError, match="not paused"):
        await resume_campaign(database, campaign_id)
    # One row sent and one waiting for a retry, as the engine would leave them.
    async with database.engine.begin() as conn:
        ids = (
            (await conn.execute(select(recipients.c.id).order_by(recipients.c.id))).scalars().all()
        )
        await conn.execute(
            update(recipients).where(recipients.c.id == ids[0]).values(status="sent")
        )
        await conn.execute(
            update(recipients).where(recipients.c.id == ids[1]).values(status="retry")
        )
        await conn.execute(update(campaigns).values(sent=1, status="running", started_at=NOW))
    assert await count_by_status(database, campaign_id) == {
        "queued": 2, "sending": 0, "sent": 1, "retry": 1, "failed": 0, "in_doubt": 0, "skipped": 0,
        "unconfirmed": 0,
    }  # fmt: skip
    assert await cancel_campaign(database, campaign_id, clock=lambda: NOW + 60) == 3
    status = (await campaign_status(database, "spring")).as_json()
    assert (status["status"], status["skipped"], status["sent"], status["pending"]) == (
        "cancelled", 3, 1, 0,
    )  # fmt: skip
    assert status["finished_at"] == "2027-01-15T08:01:00Z"
    assert await counters_match_rows(database, campaign_id) == {}
    with pytest.raises(CampaignError, match="already cancelled"):
        await cancel_campaign(database, campaign_id)


async def test_counters_match_rows_reports_drift(database: Database, tmp_path: Path) -> None:
    created = await create_campaign(database, "spring", [step(contacts(tmp_path, 2))])
    async with database.engine.begin() as conn:
        await conn.execute(update(campaigns).values(sent=1, invalid=3))
    assert await counters_match_rows(database, created.campaign_id) == {
        "sent": (1, 0),
        "invalid": (3, 0),
    }


async def test_delete_removes_everything_of_that_campaign_only(
    database: Database, tmp_path: Path
) -> None:
    path = contacts(tmp_path, 3, extra="bad,X\n")
    doomed = await create_campaign(database, "doomed", [step(path)])
    kept = await create_campaign(database, "kept", [step(path)])
    async with database.engine.begin() as conn:
        for campaign_id in (doomed.campaign_id, kept.campaign_id):
            await conn.execute(
                insert(attempts).values(
                    recipient_id=1, campaign_id=campaign_id, attempt_no=1, at=NOW,
                    outcome="accepted",
                )
            )  # fmt: skip
    await delete_campaign(database, "doomed")
    assert await table_counts(database) == {
        "campaigns": 1, "steps": 1, "recipients": 3, "rejects": 1, "attempts": 1,
    }  # fmt: skip
    assert await counters_match_rows(database, kept.campaign_id) == {}


async def test_every_problem_of_a_campaign_is_told_at_once_and_nothing_is_written(
    database: Database, tmp_path: Path
) -> None:
    """One refusal lists all that is wrong, each keyed by its field (and step), so a person
    fixes everything in one go and each front end can point at the field."""
    async with database.engine.begin() as conn:
        await conn.execute(insert(templates), [
            {"name": "promo", "language": "en_US", "status": "APPROVED", "body_param_count": 1,
             "header_format": "IMAGE", "synced_at": NOW},
        ])  # fmt: skip
    path = contacts(tmp_path)
    twice = step(path, buttons=(ButtonParam(0, "url", "name"), ButtonParam(0, "url", "phone")))
    steps_given = [twice, NewStep("promo", "en_US", ContactsSource(path)),
                   NewStep("promo", "de", ContactsSource(path))]  # fmt: skip
    with pytest.raises(InvalidCampaign) as raised:
        await create_campaign(database, " ", steps_given, rate=0, max_retries=11, retry_delays=())
    found = [(problem.field, problem.step) for problem in raised.value.problems]
    assert found == [
        (Field.NAME, None), (Field.RATE, None), (Field.MAX_RETRIES, None), (Field.RETRY_DELAYS, None),
        (Field.BUTTONS, 1), (Field.BODY_PARAMS, 2), (Field.HEADER_PARAM, 2), (Field.LANGUAGE, 3),
    ]  # fmt: skip
    assert all("--" not in problem.message for problem in raised.value.problems)
    assert "\n" not in str(raised.value)
    counts = await table_counts(database)
    assert (counts["campaigns"], counts["steps"], counts["recipients"]) == (0, 0, 0)
