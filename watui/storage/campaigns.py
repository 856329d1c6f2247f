"""Campaigns: create (with their contacts), list, status, rejects, pause/resume/cancel, delete.

Plain async functions over a Database, shared by the command line, the engine and the UI.
Counters in ``campaigns`` change only in the same transaction as the rows they count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.errors import CampaignError, CampaignExists, CampaignNotFound
from watui.settings.model import MAX_RETRIES_LIMIT, MAX_RETRY_DELAY
from watui.storage.database import Database
from watui.storage.importer import (
    ButtonParam,
    ContactsReader,
    ContactsSource,
    ImportCounts,
    import_contacts,
)
from watui.storage.schema import (
    CampaignStatus,
    RecipientStatus,
    attempts,
    campaigns,
    recipients,
    rejects,
    steps,
    templates,
)
from watui.storage.templates import placeholder_names

if TYPE_CHECKING:
    from watui.settings import RetrySettings

Clock = Callable[[], float]




@dataclass(frozen=True)
class StepSpec:
    """One template send of a campaign: which template, in which language, to which contacts."""

    template: str
    language: str
    contacts: ContactsSource


@dataclass
class CreatedCampaign:
    """What ``create_campaign`` did, per step in order."""

    campaign_id: int
    name: str
    steps: list[ImportCounts] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return sum(step.queued for step in self.steps)

    @property
    def invalid(self) -> int:
        return sum(step.invalid for step in self.steps)

    @property
    def duplicates(self) -> int:
        return sum(step.duplicates for step in self.steps)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a campaign retries transient failures, and where each half of that came from."""

    max_retries: int
    delays: tuple[float, ...]
    max_retries_from: str  # "campaign" (its own, stored in its row) or "settings"
    delays_from: str


def retry_policy(campaign: Mapping[str, Any], fallback: RetrySettings) -> RetryPolicy:
    """The policy in force for a campaign row: its own values, else the settings' ``retry``."""
    own_max = campaign["max_retries"]
    own_delays = campaign["retry_delays"]
    return RetryPolicy(
        max_retries=fallback.max_retries if own_max is None else int(own_max),
        delays=tuple(fallback.delays if own_delays is None else json.loads(own_delays)),
        max_retries_from="settings" if own_max is None else "campaign",
        delays_from="settings" if own_delays is None else "campaign",
    )


def _checked_retry_policy(
    max_retries: int | None, retry_delays: Sequence[float] | None
) -> dict[str, Any]:
    """The campaign row's retry columns (None: use the settings); CampaignError when out of range."""
    if max_retries is not None and (
        isinstance(max_retries, bool)
        or not isinstance(max_retries, int)
        or not 0 <= max_retries <= MAX_RETRIES_LIMIT
    ):
        raise CampaignError(
            f"max_retries {max_retries!r} is out of range: give a whole number from 0 to "
            f"{MAX_RETRIES_LIMIT}"
        )
    if retry_delays is None:
        return {"max_retries": max_retries, "retry_delays": None}
    delays = list(retry_delays)
    if not delays or not all(
        not isinstance(delay, bool)
        and isinstance(delay, int | float)
        and 0 < delay <= MAX_RETRY_DELAY
        for delay in delays
    ):
        raise CampaignError(
            f"retry delays {delays!r} are not valid: give at least one delay, each in seconds "
            f"above 0 and at most {MAX_RETRY_DELAY:.0f}, e.g. 5,10"
        )
    return {"max_retries": max_retries, "retry_delays": json.dumps([float(d) for d in delays])}


async def create_campaign(
    db: Database,
    name: str,
    step_specs: Sequence[StepSpec],
    *,
    rate: float | None = None,
    max_retries: int | None = None,
    retry_delays: Sequence[float] | None = None,
    clock: Clock = time.time,
) -> CreatedCampaign:
    """Create the campaign, its steps and their queued recipients in ONE transaction.

    ``max_retries`` and ``retry_delays`` are the campaign's own retry policy, kept in its row so
    that every process sending it (the UI, ``watui run``) uses them; None: the settings' values.
    Every contacts file's header is checked before anything is written, and any failure rolls
    the whole campaign back. Raises CampaignExists, CampaignError or ContactsError.
    """
    name = name.strip()
    if not name:
        raise CampaignError("the campaign name is empty: give it a name")
    if not step_specs:
        raise CampaignError("a campaign needs at least one step (template and contacts)")
    if rate is not None and not 0 < rate <= 100_000:
        raise CampaignError(f"rate {rate} is out of range: give messages/s above 0, at most 100000")
    retry_columns = _checked_retry_policy(max_retries, retry_delays)
    readers: list[ContactsReader] = []
    try:
        for spec in step_specs:
            readers.append(ContactsReader(spec.contacts))
        async with db.begin() as conn:
            if await _campaign_id(conn, name) is not None:
                raise CampaignExists(f"a campaign named {name!r} already exists: pick another name")
            mappings = [await _step_mapping(conn, spec) for spec in step_specs]
            now = clock()
            campaign_id = await _insert_campaign(conn, name, rate, retry_columns, now)
            created = CreatedCampaign(campaign_id, name)
            for position, (spec, reader, mapping) in enumerate(
                zip(step_specs, readers, mappings, strict=True)
            ):
                counts = await _create_step(conn, campaign_id, position, spec, reader, mapping, now)
                created.steps.append(counts)
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(
                    total=created.queued,
                    invalid=created.invalid + created.duplicates,
                    updated_at=now,
                )
            )
    except IntegrityError:
        # Another process created the same name between our check and our insert.
        raise CampaignExists(
            f"a campaign named {name!r} already exists: pick another name"
        ) from None
    finally:
        for reader in readers:
            reader.close()
    await db.refresh_recipient_statistics()
    return created


async def _insert_campaign(
    conn: AsyncConnection, name: str, rate: float | None, retry_columns: dict[str, Any], now: float
) -> int:
    result = await conn.execute(
        insert(campaigns)
        .values(
            name=name,
            status=CampaignStatus.DRAFT.value,
            rate=rate,
            **retry_columns,
            current_step=0,
            total=0,
            sent=0,
            failed=0,
            invalid=0,
            skipped=0,
            in_doubt=0,
            created_at=now,
            updated_at=now,
        )
        .returning(campaigns.c.id)
    )
    return int(result.scalar_one())


async def _create_step(
    conn: AsyncConnection,
    campaign_id: int,
    position: int,
    spec: StepSpec,
    reader: ContactsReader,
    mapping: dict[str, Any],
    now: float,
) -> ImportCounts:
    source = spec.contacts
    result = await conn.execute(
        insert(steps)
        .values(
            campaign_id=campaign_id,
            position=position,
            template_name=spec.template,
            language=spec.language,
            mapping=json.dumps(mapping),
            contacts_file=str(source.path),
            phone_column=source.phone_column,
            default_region=reader.source.default_region,
            total=0,
        )
        .returning(steps.c.id)
    )
    step_id = int(result.scalar_one())
    counts = await import_contacts(conn, reader, campaign_id=campaign_id, step_id=step_id, now=now)
    values: dict[str, Any] = {"total": counts.queued}
    if mapping["header"] is not None and mapping["header_format"] is None:
        mapping["header_format"] = counts.header_format
        values["mapping"] = json.dumps(mapping)
    await conn.execute(update(steps).where(steps.c.id == step_id).values(**values))
    return counts


async def _step_mapping(conn: AsyncConnection, spec: StepSpec) -> dict[str, Any]:
    """The step's mapping JSON; checked against the template when it has been synced."""
    source = spec.contacts
    indexes = [button.index for button in source.buttons]
    twice = next((index for index in indexes if indexes.count(index) > 1), None)
    if twice is not None:
        raise CampaignError(f"button {twice} is given twice: give one column per button")
    mapping: dict[str, Any] = {
        "body": list(source.body_params),
        "header": source.header_param,
        "header_format": None,
        "buttons": [
            {"index": b.index, "sub_type": b.sub_type, "column": b.column} for b in source.buttons
        ],
    }
    row = (
        await conn.execute(
            select(
                templates.c.body_param_count, templates.c.header_format, templates.c.header_text,
                templates.c.body_text, templates.c.buttons,
            ).where(templates.c.name == spec.template, templates.c.language == spec.language)
        )
    ).first()
    if row is None:
        await _check_language(conn, spec)
        return mapping  # not synced: trust the mapping, the API will say if it is wrong
    which = f"template {spec.template!r} ({spec.language})"
    if row.body_param_count != len(source.body_params):
        raise CampaignError(
            f"{which} takes {row.body_param_count} body parameter(s) but "
            f"{len(source.body_params)} column(s) are mapped: give exactly "
            f"{row.body_param_count} columns in --body-params / body_params"
        )
    header_format = (row.header_format or "").lower() or None
    header_takes_param = header_format in {"image", "video", "document"} or (
        header_format == "text" and "{{" in (row.header_text or "")
    )
    if header_takes_param and not source.header_param:
        raise CampaignError(
            f"{which} has {_article(header_format)} {header_format} header: name its column with "
            "--header-param"
        )
    if source.header_param and not header_takes_param:
        raise CampaignError(f"{which} has no header parameter: drop --header-param")
    if source.header_param:
        mapping["header_format"] = header_format
    _check_buttons(which, json.loads(row.buttons) if row.buttons else [], source.buttons)
    names = placeholder_names(row.body_text)
    if names:  # a template with {{named}} placeholders needs the names in every request
        mapping["body_names"] = names
    return mapping


async def _check_language(conn: AsyncConnection, spec: StepSpec) -> None:
    """A synced template without this language is most likely a typo in the language."""
    languages = (
        await conn.execute(select(templates.c.language).where(templates.c.name == spec.template))
    ).scalars().all()
    if languages:
        raise CampaignError(
            f"template {spec.template!r} has no {spec.language} translation (synced: "
            f"{', '.join(sorted(languages))}): check --language, or run 'watui templates sync' "
            "if it was added since"
        )


def _article(word: str | None) -> str:
    return "an" if (word or "x")[0] in "aeiou" else "a"


def _check_buttons(which: str, template_buttons: list[Any], mapped: Sequence[ButtonParam]) -> None:
    """Each mapped button exists and is of its kind, and each dynamic URL has its column: a
    request missing one is refused by the API (132000) for every recipient."""
    kinds = {"url": "URL", "quick_reply": "QUICK_REPLY"}
    by_index = {b.index: b for b in mapped}
    for index, button in enumerate(template_buttons):
        kind = str(button.get("type", "")).upper() if isinstance(button, dict) else ""
        dynamic = kind == "URL" and "{{" in str(button.get("url", ""))
        given = by_index.pop(index, None)
        if dynamic and given is None:
            raise CampaignError(
                f"{which}: button {index} is a URL with a parameter: name its column with "
                f"--button-param {index}:COLUMN (buttons in a spec)"
            )
        if given is None:
            continue
        wanted = kinds.get(given.sub_type, given.sub_type.upper())
        if wanted != kind:
            raise CampaignError(
                f"{which}: button {index} is a {kind or 'button of unknown kind'}, not a "
                f"{wanted}: {_button_fix(index, kind)}"
            )
        if kind == "URL" and not dynamic:
            raise CampaignError(
                f"{which}: button {index} has a fixed URL and takes no parameter: drop "
                f"--button-param {index}:{given.column}"
            )
    if by_index:
        index = min(by_index)
        raise CampaignError(
            f"{which} has {len(template_buttons)} button(s), numbered from 0: there is no "
            f"button {index}; drop --button-param {index}:{by_index[index].column}"
        )


def _button_fix(index: int, kind: str) -> str:
    if kind == "URL":
        return f"give --button-param {index}:COLUMN"
    if kind == "QUICK_REPLY":
        return f"give --button-param {index}:COLUMN:quick_reply"
    return f"it takes no parameter, drop --button-param {index}"


async def _campaign_id(conn: AsyncConnection, name: str) -> int | None:
    row = (await conn.execute(select(campaigns.c.id).where(campaigns.c.name == name))).first()
    return None if row is None else int(row.id)


async def get_campaign(db: Database, name: str) -> dict[str, Any]:
    """The campaign's row as a dict; CampaignNotFound when no campaign has that name."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.name == name))).first()
    if row is None:
        raise CampaignNotFound(
            f"no campaign named {name!r} (see 'watui campaign list' for the names)"
        )
    return dict(row._mapping)


async def list_campaigns(db: Database) -> list[dict[str, Any]]:
    """Every campaign's summary, newest first (counters only: no per-row counting)."""
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(campaigns).order_by(campaigns.c.created_at.desc(), campaigns.c.id.desc())
            )
        ).all()
    return [_summary(dict(row._mapping)) for row in rows]


async def delete_campaign(db: Database, name: str) -> None:
    """Remove the campaign and everything of it: steps, recipients, rejects, attempts."""
    async with db.begin() as conn:
        campaign_id = await _campaign_id(conn, name)
        if campaign_id is None:
            raise CampaignNotFound(f"no campaign named {name!r} (see 'watui campaign list')")
        for table in (attempts, rejects, recipients, steps):
            await conn.execute(delete(table).where(table.c.campaign_id == campaign_id))
        await conn.execute(delete(campaigns).where(campaigns.c.id == campaign_id))


async def count_by_status(db: Database, campaign_id: int) -> dict[str, int]:
    """Recipients per status (one GROUP BY); statuses with no rows are 0."""
    async with db.engine.connect() as conn:
        return await _count_by_status(conn, campaign_id)


async def _count_by_status(conn: AsyncConnection, campaign_id: int) -> dict[str, int]:
    counts = {status.value: 0 for status in RecipientStatus}
    result = await conn.execute(
        select(recipients.c.status, func.count())
        .where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.status)
    )
    for status, count in result:
        counts[status] = int(count)
    return counts


async def campaign_status(
    db: Database, name: str, *, retry_defaults: RetrySettings | None = None
) -> dict[str, Any]:
    """The status summary the CLI and the UI show (see ``watui status --json``).

    With ``retry_defaults`` (the settings' ``retry``) it also says which retry policy is in
    force under ``"retry"``: max_retries, delays, and whether each is the campaign's own.
    """
    campaign = await get_campaign(db, name)
    async with db.engine.connect() as conn:
        by_status = await _count_by_status(conn, campaign["id"])
        step_rows = (
            await conn.execute(
                select(steps)
                .where(steps.c.campaign_id == campaign["id"])
                .order_by(steps.c.position)
            )
        ).all()
        per_step = await _step_counts(conn, campaign["id"])
    summary = _summary(campaign)
    summary["retrying"] = by_status[RecipientStatus.RETRY.value]
    summary["sending"] = by_status[RecipientStatus.SENDING.value]
    summary["steps"] = [
        {
            "position": row.position + 1,
            "template": row.template_name,
            "language": row.language,
            "contacts_file": row.contacts_file,
            "total": row.total,
            "by_status": per_step.get(row.id, {}),
        }
        for row in step_rows
    ]
    if retry_defaults is not None:
        summary["retry"] = asdict(retry_policy(campaign, retry_defaults))
    return summary


async def _step_counts(conn: AsyncConnection, campaign_id: int) -> dict[int, dict[str, int]]:
    result = await conn.execute(
        select(recipients.c.step_id, recipients.c.status, func.count())
        .where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.step_id, recipients.c.status)
    )
    counts: dict[int, dict[str, int]] = {}
    for step_id, status, count in result:
        counts.setdefault(step_id, {})[status] = int(count)
    return counts


def _summary(campaign: dict[str, Any]) -> dict[str, Any]:
    """The counters-only part of the status: cheap, from the campaign row alone."""
    done = campaign["sent"] + campaign["failed"] + campaign["skipped"] + campaign["in_doubt"]
    return {
        "id": campaign["id"],
        "name": campaign["name"],
        "status": campaign["status"],
        "total": campaign["total"],
        "sent": campaign["sent"],
        "failed": campaign["failed"],
        "pending": campaign["total"] - done,
        "in_doubt": campaign["in_doubt"],
        "invalid": campaign["invalid"],
        "skipped": campaign["skipped"],
        "paused_reason": campaign["pause_reason"],
        "created_at": iso_utc(campaign["created_at"]),
        "started_at": iso_utc(campaign["started_at"]),
        "finished_at": iso_utc(campaign["finished_at"]),
        "rate": campaign["rate"],
    }


def iso_utc(timestamp: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 UTC (``2026-11-29T02:03:04Z``); None stays None."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    return moment.replace("+00:00", "Z")


async def list_rejects(db: Database, name: str) -> list[dict[str, Any]]:
    """The campaign's rejected import rows in step and line order."""
    campaign = await get_campaign(db, name)
    async with db.engine.connect() as conn:
        positions = dict(
            (
                await conn.execute(
                    select(steps.c.id, steps.c.position).where(
                        steps.c.campaign_id == campaign["id"]
                    )
                )
            ).all()
        )
        result = await conn.execute(
            select(rejects.c.step_id, rejects.c.line_no, rejects.c.phone_raw, rejects.c.reason)
            .where(rejects.c.campaign_id == campaign["id"])
            .order_by(rejects.c.line_no, rejects.c.id)
        )
        rows = [
            {
                "step": positions.get(row.step_id, -1) + 1,
                "line": row.line_no,
                "phone": row.phone_raw,
                "reason": row.reason,
            }
            for row in result
        ]
    rows.sort(key=lambda reject: (reject["step"], reject["line"]))
    return rows


async def counters_match_rows(db: Database, campaign_id: int) -> dict[str, tuple[int, int]]:
    """Counters that disagree with the rows, as {name: (counter, rows)}; empty when all agree."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).first()
        if row is None:
            raise CampaignNotFound(f"no campaign with id {campaign_id}")
        by_status = await _count_by_status(conn, campaign_id)
        reject_count = (
            await conn.execute(
                select(func.count())
                .select_from(rejects)
                .where(rejects.c.campaign_id == campaign_id)
            )
        ).scalar_one()
    actual = {
        "total": sum(by_status.values()),
        "sent": by_status[RecipientStatus.SENT.value],
        "failed": by_status[RecipientStatus.FAILED.value],
        "skipped": by_status[RecipientStatus.SKIPPED.value],
        "in_doubt": by_status[RecipientStatus.IN_DOUBT.value],
        "invalid": int(reject_count),
    }
    return {
        name: (row._mapping[name], count)
        for name, count in actual.items()
        if row._mapping[name] != count
    }


#: Statuses a person may pause, resume or cancel from.
_PAUSABLE = {CampaignStatus.DRAFT.value, CampaignStatus.RUNNING.value}
_FINISHED = {CampaignStatus.COMPLETED.value, CampaignStatus.CANCELLED.value}


async def pause_campaign(
    db: Database, campaign_id: int, reason: str, *, clock: Clock = time.time
) -> None:
    """Mark the campaign paused with a reason people can read (the engine stops claiming)."""
    async with db.begin() as conn:
        current = await _locked_status(conn, campaign_id)
        if current == CampaignStatus.PAUSED.value:
            raise CampaignError("the campaign is already paused")
        if current not in _PAUSABLE:
            raise CampaignError(f"the campaign is {current}: only a draft or running one can pause")
        await conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(status=CampaignStatus.PAUSED.value, pause_reason=reason, updated_at=clock())
        )


async def resume_campaign(db: Database, campaign_id: int, *, clock: Clock = time.time) -> None:
    """Undo a pause: back to running if it had started, else to draft."""
    async with db.begin() as conn:
        current = await _locked_status(conn, campaign_id)
        if current != CampaignStatus.PAUSED.value:
            raise CampaignError(f"the campaign is {current}, not paused: nothing to resume")
        started = (
            await conn.execute(select(campaigns.c.started_at).where(campaigns.c.id == campaign_id))
        ).scalar_one()
        status = CampaignStatus.RUNNING if started is not None else CampaignStatus.DRAFT
        await conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(status=status.value, pause_reason=None, updated_at=clock())
        )


async def cancel_campaign(db: Database, campaign_id: int, *, clock: Clock = time.time) -> int:
    """Stop for good: every queued or retry row becomes skipped (and counted). Returns how many."""
    async with db.begin() as conn:
        current = await _locked_status(conn, campaign_id)
        if current in _FINISHED:
            raise CampaignError(f"the campaign is already {current}")
        now = clock()
        result = await conn.execute(
            update(recipients)
            .where(
                recipients.c.campaign_id == campaign_id,
                recipients.c.status.in_(
                    [RecipientStatus.QUEUED.value, RecipientStatus.RETRY.value]
                ),
            )
            .values(status=RecipientStatus.SKIPPED.value, updated_at=now)
        )
        skipped = int(result.rowcount or 0)
        await conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(
                status=CampaignStatus.CANCELLED.value,
                skipped=campaigns.c.skipped + skipped,
                finished_at=now,
                updated_at=now,
            )
        )
    return skipped


async def _locked_status(conn: AsyncConnection, campaign_id: int) -> str:
    """The campaign's status, row-locked on PostgreSQL so two writers cannot interleave."""
    query = select(campaigns.c.status).where(campaigns.c.id == campaign_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    status = (await conn.execute(query)).scalar_one_or_none()
    if status is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    return str(status)
