"""Validators for the parts of Meta's Cloud API spec that tests check shapes against.

tests/data/whatsapp-schemas.json is copied from Meta's OpenAPI spec (MIT, see
tests/data/LICENSE-whatsapp-openapi) by tests/data/extract_whatsapp_schemas.py.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent / "data" / "whatsapp-schemas.json"


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<name>`` with every reference it needs."""
    document = json.loads(SCHEMAS.read_text())
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    )


def spec_errors(name: str, instance: object) -> list[str]:
    """Every way ``instance`` breaks schema ``name`` (empty when it conforms)."""
    return [error.message for error in validator(name).iter_errors(instance)]
