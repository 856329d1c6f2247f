"""Creating a campaign: its row, its steps (each checked against its synced template) and their
contacts imported, in one transaction.

Apart from the campaign records because creating one is the only place that reads contacts
files and templates, and the only one whose checks speak of the mapping a person gave.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watui.errors import CampaignError, CampaignExists
from watui.settings.model import MAX_RETRIES_LIMIT, MAX_RETRY_DELAY
from watui.storage.campaigns import campaign_id_named
from watui.storage.contacts import ButtonParam, ContactsReader, ContactsSource, ImportCounts
from watui.storage.database import Database
from watui.storage.dialects import Dialect
from watui.storage.importer import import_contacts
from watui.storage.schema import CampaignStatus, campaigns, steps, templates
from watui.storage.templates import placeholder_names

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
            if await campaign_id_named(conn, name) is not None:
                raise CampaignExists(f"a campaign named {name!r} already exists: pick another name")
            mappings = [await _step_mapping(conn, spec) for spec in step_specs]
            now = clock()
            campaign_id = await _insert_campaign(conn, name, rate, retry_columns, now)
            created = CreatedCampaign(campaign_id, name)
            for position, (spec, reader, mapping) in enumerate(
                zip(step_specs, readers, mappings, strict=True)
            ):
                counts = await _create_step(
                    conn, db.kind, campaign_id, position, spec, reader, mapping, now
                )
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
    kind: Dialect,
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
    counts = await import_contacts(
        conn, reader, kind=kind, campaign_id=campaign_id, step_id=step_id, now=now
    )
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
