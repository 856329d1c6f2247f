"""The template cache: the account's templates as Meta lists them, kept for setup and checks."""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from sqlalchemy import delete, insert, select

from watui.rules import count_placeholders
from watui.storage.database import Database
from watui.storage.rows import TemplateRecord
from watui.storage.schema import templates


class TemplateSource(Protocol):
    async def list_templates(self) -> list[dict[str, Any]]: ...


def template_row(item: dict[str, Any], now: float) -> dict[str, Any]:
    """One row of the ``templates`` table from one template as the API lists it."""
    components = item.get("components") or []
    by_type = {str(c.get("type", "")).upper(): c for c in components if isinstance(c, dict)}
    header = by_type.get("HEADER") or {}
    body = by_type.get("BODY") or {}
    footer = by_type.get("FOOTER") or {}
    buttons = (by_type.get("BUTTONS") or {}).get("buttons")
    return {
        "template_id": str(item.get("id") or "") or None,
        "name": str(item.get("name", "")),
        "language": str(item.get("language", "")),
        "status": str(item.get("status", "UNKNOWN")).upper(),
        "category": item.get("category"),
        "body_text": body.get("text"),
        "header_format": (header.get("format") or None) and str(header["format"]).upper(),
        "header_text": header.get("text"),
        "footer_text": footer.get("text"),
        "buttons": json.dumps(buttons) if buttons else None,
        "body_param_count": count_placeholders(body.get("text")),
        "components": json.dumps(components),
        "synced_at": now,
    }


async def sync_templates(db: Database, client: TemplateSource) -> int:
    """Replace the cache with the account's templates (one transaction). Returns how many."""
    items = await client.list_templates()
    now = time.time()
    rows = [template_row(item, now) for item in items if item.get("name") and item.get("language")]
    async with db.begin() as conn:
        await conn.execute(delete(templates))
        if rows:
            await conn.execute(insert(templates), rows)
    return len(rows)


async def list_templates(db: Database, *, approved_only: bool = False) -> list[TemplateRecord]:
    """The cached templates by name and language; with ``approved_only``, those Meta approved."""
    query = select(templates).order_by(templates.c.name, templates.c.language)
    if approved_only:
        query = query.where(templates.c.status == "APPROVED")
    async with db.engine.connect() as conn:
        return [TemplateRecord.from_row(row) for row in await conn.execute(query)]


async def template_category(db: Database, name: str, language: str) -> str | None:
    """The category in force for a template (MARKETING, UTILITY, AUTHENTICATION) as last
    synced; None when it was never synced. Meta may recategorise an approved template, so a
    sender reads it when it starts a step rather than trusting what held at creation."""
    query = select(templates.c.category).where(
        templates.c.name == name, templates.c.language == language
    )
    async with db.engine.connect() as conn:
        category = (await conn.execute(query)).scalar()
    return str(category) if category else None
