"""Creating a campaign: its row, its steps (each checked against its synced template) and their
contacts imported, in one transaction.

Apart from the campaign records because creating one is the only place that reads contacts
files and templates, and the only one whose checks speak of the mapping a person gave.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.errors import CampaignExists, ContactsError, InvalidCampaign
from watui.rules import (
    AUTO_ENDPOINT,
    CampaignStatus,
    Field,
    Problem,
    TemplateFacts,
    duplicate_button_problem,
    endpoint_problem,
    language_problem,
    mapping_problems,
    max_retries_problem,
    placeholder_names,
    rate_problem,
    retry_delays_problem,
    schedule_from_text,
    senders_problem,
)
from watui.storage.campaigns import campaign_id_named
from watui.storage.contacts import ContactsReader, ContactsSource, ImportCounts
from watui.storage.database import Database
from watui.storage.dialects import Dialect
from watui.storage.importer import import_contacts
from watui.storage.schema import campaigns, recipients, steps, templates
from watui.storage.suppressions import phone_list_error, read_phone_list

Clock = Callable[[], float]


@dataclass(frozen=True)
class NewStep:
    """One template send of a campaign being created: which template, in which language, to
    which contacts (the UI's ``service.models.StepSpec`` names columns; this one holds the
    contacts source the importer reads)."""

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

    @property
    def suppressed(self) -> int:
        return sum(step.suppressed for step in self.steps)

    @property
    def excluded(self) -> int:
        return sum(step.excluded for step in self.steps)

    @property
    def rejected(self) -> int:
        """Every row not queued, whatever the reason (the campaign's ``invalid`` counter)."""
        return self.invalid + self.duplicates + self.suppressed + self.excluded


def _campaign_problems(
    name: str,
    step_specs: Sequence[NewStep],
    rate: float | None,
    max_retries: int | None,
    retry_delays: Sequence[float] | None,
    senders: Sequence[str] | None = None,
) -> list[Problem]:
    """What is wrong with the campaign as asked, before reading any file or template."""
    problems: list[Problem] = []
    if not name:
        problems.append(Problem(Field.NAME, "the campaign name is empty: give it a name"))
    if not step_specs:
        problems.append(Problem(Field.STEPS, "a campaign needs at least one step (template and contacts)"))
    checks = (
        rate_problem(rate) if rate is not None else None,
        max_retries_problem(max_retries) if max_retries is not None else None,
        retry_delays_problem(retry_delays) if retry_delays is not None else None,
        senders_problem(senders) if senders is not None else None,
        *(_in_step(duplicate_button_problem(spec.contacts.buttons), position)
          for position, spec in enumerate(step_specs, 1)),
    )  # fmt: skip
    problems.extend(problem for problem in checks if problem is not None)
    return problems


def _in_step(problem: Problem | None, position: int) -> Problem | None:
    return None if problem is None else replace(problem, step=position)


def _retry_columns(max_retries: int | None, retry_delays: Sequence[float] | None) -> dict[str, Any]:
    """The campaign row's retry columns (None: use the settings)."""
    delays = None if retry_delays is None else json.dumps([float(d) for d in retry_delays])
    return {"max_retries": max_retries, "retry_delays": delays}


async def create_campaign(
    db: Database,
    name: str,
    step_specs: Sequence[NewStep],
    *,
    rate: float | None = None,
    max_retries: int | None = None,
    retry_delays: Sequence[float] | None = None,
    senders: Sequence[str] | None = None,
    start_at: str | None = None,
    send_window: str | None = None,
    deadline: str | None = None,
    exclude: Path | None = None,
    endpoint: str | None = None,
    clock: Clock = time.time,
) -> CreatedCampaign:
    """Create the campaign, its steps and their queued recipients in ONE transaction.

    ``max_retries`` and ``retry_delays`` are the campaign's own retry policy, kept in its row so
    that every process sending it (the UI, ``watui run``) uses them; None: the settings' values.
    ``senders`` are the phone number IDs that send it (None: the settings' number, followed if
    it changes); each recipient is pinned to one of them (``rules.sender_for``) here, once.
    ``exclude``: a CSV of numbers this campaign must not message (rejected as "excluded").
    ``endpoint`` forces "messages" or "marketing_messages" (None or "auto": chosen per step).
    Every contacts file's header is checked before anything is written, and any failure rolls
    the whole campaign back. Raises CampaignExists, ContactsError, or InvalidCampaign with every
    problem of the campaign (name, rate, retries, each step's mapping against its template).
    ``start_at``, ``send_window`` and ``deadline`` are as typed (rules.schedule_from_text); with
    a window, each recipient's zone key is worked out once here.
    """
    name = name.strip()
    problems = _campaign_problems(name, step_specs, rate, max_retries, retry_delays, senders)
    schedule, schedule_problems = schedule_from_text(start_at, send_window, deadline, now=clock())
    problems.extend(schedule_problems)
    problems.extend(problem for problem in [endpoint_problem(endpoint)] if problem is not None)
    readers: list[ContactsReader] = []
    excluded = _excluded_numbers(exclude, step_specs)
    try:
        for spec in step_specs:
            zoned = replace(spec.contacts, with_zones=schedule.window is not None)
            readers.append(ContactsReader(zoned))
        async with db.begin() as conn:
            if await campaign_id_named(conn, name) is not None:
                raise CampaignExists(f"a campaign named {name!r} already exists: pick another name")
            mappings = []
            for position, spec in enumerate(step_specs, 1):
                mapping, step_problems = await _step_mapping(conn, spec)
                mappings.append(mapping)
                problems.extend(replace(problem, step=position) for problem in step_problems)
            if problems:
                raise InvalidCampaign(problems)
            now = clock()
            columns = {
                **_retry_columns(max_retries, retry_delays),
                "senders": None if senders is None else json.dumps(list(senders)),
                "start_at": schedule.start_at, "deadline": schedule.deadline,
                "send_window": None if schedule.window is None else str(schedule.window),
            }
            campaign_id = await _insert_campaign(conn, name, rate, columns, now)
            created = CreatedCampaign(campaign_id, name)
            for position, (spec, reader, mapping) in enumerate(
                zip(step_specs, readers, mappings, strict=True)
            ):
                counts = await _create_step(
                    conn, db.kind, campaign_id, position, spec, reader, mapping, now, senders,
                    excluded
                )
                created.steps.append(counts)
            await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(
                    total=created.queued,
                    invalid=created.rejected,
                    updated_at=now,
                    endpoint=None if endpoint == AUTO_ENDPOINT else endpoint,
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
    await db.refresh_statistics([recipients])
    return created


def _excluded_numbers(path: Path | None, step_specs: Sequence[NewStep]) -> frozenset[int]:
    """The exclusion file's numbers (E.164 digits as ints), read like the contacts (national
    numbers in the first step's default region). A file with a bad row is refused whole: a
    number someone meant to exclude must not be messaged because it was mistyped."""
    if path is None:
        return frozenset()
    region = step_specs[0].contacts.default_region if step_specs else None
    try:
        found = read_phone_list(path, default_region=region, called="exclusion file")
    except ContactsError as error:
        raise ContactsError(str(error), Field.EXCLUDE) from None
    if found.bad:
        raise ContactsError(str(phone_list_error(path, found.bad)), Field.EXCLUDE)
    return frozenset(int(phone[1:]) for phone in found.phones)


async def _insert_campaign(
    conn: AsyncConnection, name: str, rate: float | None, columns: dict[str, Any], now: float
) -> int:
    result = await conn.execute(
        insert(campaigns)
        .values(
            name=name,
            status=CampaignStatus.DRAFT.value,
            rate=rate,
            **columns,
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
    kind: Dialect,
    campaign_id: int,
    position: int,
    spec: NewStep,
    reader: ContactsReader,
    mapping: dict[str, Any],
    now: float,
    senders: Sequence[str] | None,
    excluded: AbstractSet[int],
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
    counts = await import_contacts(
        conn, reader, kind=kind, campaign_id=campaign_id, step_id=step_id, now=now,
        senders=senders,
        excluded=excluded,
    )
    values: dict[str, Any] = {"total": counts.queued}
    if mapping["header"] is not None and mapping["header_format"] is None:
        mapping["header_format"] = counts.header_format
        values["mapping"] = json.dumps(mapping)
    await conn.execute(update(steps).where(steps.c.id == step_id).values(**values))
    return counts


async def _step_mapping(conn: AsyncConnection, spec: NewStep) -> tuple[dict[str, Any], list[Problem]]:
    """The step's mapping JSON, and how it disagrees with its template when that was synced
    (not synced: the mapping is trusted, the API will say if it is wrong)."""
    source = spec.contacts
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
        languages = (
            await conn.execute(select(templates.c.language).where(templates.c.name == spec.template))
        ).scalars().all()
        # Synced in other languages only: most likely a typo in the language.
        return mapping, [language_problem(spec.template, spec.language, languages)] if languages else []
    facts = TemplateFacts(
        spec.template, spec.language, row.body_param_count, row.header_format, row.header_text,
        _listed_buttons(row.buttons),
    )  # fmt: skip
    problems = mapping_problems(facts, source.body_params, source.header_param, source.buttons)
    if source.header_param:
        mapping["header_format"] = (row.header_format or "").lower() or None
    names = placeholder_names(row.body_text)
    if names:  # a template with {{named}} placeholders needs the names in every request
        mapping["body_names"] = names
    return mapping, problems


def _listed_buttons(stored: str | None) -> list[dict[str, object]]:
    """The template's buttons as the sync kept them (the API's JSON list)."""
    listed = json.loads(stored) if stored else []
    return [button for button in listed if isinstance(button, dict)]
