"""The template cache: what ``watui templates sync`` fetched, for setup screens and previews."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select

from watui.storage.database import Database
from watui.storage.schema import templates

#: {{1}} or {{first_name}}: Meta's positional and named placeholders.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def body_param_count(text: str | None) -> int:
    """Distinct placeholders in a BODY text (a repeated {{1}} is one parameter)."""
    return len(set(PLACEHOLDER.findall(text or "")))


def template_row(template: dict[str, Any], synced_at: float) -> dict[str, Any]:
    """One API template as a row of the templates table."""
    by_type = {str(c.get("type", "")).upper(): c for c in template.get("components") or []}
    header = by_type.get("HEADER", {})
    body_text = by_type.get("BODY", {}).get("text")
    buttons = by_type.get("BUTTONS", {}).get("buttons")
    return {
        "template_id": template.get("id"),
        "name": template["name"],
        "language": template["language"],
        "status": template.get("status", "UNKNOWN"),
        "category": template.get("category"),
        "body_text": body_text,
        "header_format": header.get("format"),
        "header_text": header.get("text"),
        "footer_text": by_type.get("FOOTER", {}).get("text"),
        "buttons": json.dumps(buttons) if buttons is not None else None,
        "body_param_count": body_param_count(body_text),
        "components": json.dumps(template.get("components") or []),
        "synced_at": synced_at,
    }


async def store_templates(
    db: Database, fetched: Iterable[dict[str, Any]], *, clock: Callable[[], float] = time.time
) -> int:
    """Upsert every template by (name, language) in one transaction; returns how many."""
    now = clock()
    rows = [template_row(template, now) for template in fetched]
    async with db.engine.begin() as conn:
        existing = {
            (row.name, row.language): row.id
            for row in await conn.execute(
                select(templates.c.id, templates.c.name, templates.c.language)
            )
        }
        for row in rows:
            row_id = existing.get((row["name"], row["language"]))
            if row_id is None:
                await conn.execute(templates.insert().values(**row))
            else:
                await conn.execute(templates.update().where(templates.c.id == row_id).values(**row))
    return len(rows)


async def list_templates(db: Database, *, approved_only: bool = True) -> list[dict[str, Any]]:
    """Cached templates by name and language (only APPROVED ones unless asked)."""
    query = select(templates).order_by(templates.c.name, templates.c.language)
    if approved_only:
        query = query.where(templates.c.status == "APPROVED")
    async with db.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


async def get_template(db: Database, name: str, language: str) -> dict[str, Any] | None:
    """One cached template, or None when it was never synced."""
    query = select(templates).where(templates.c.name == name, templates.c.language == language)
    async with db.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None
