"""Regenerate whatsapp-schemas.json from Meta's OpenAPI spec (run by hand, not by tests).

Copies only what the tests validate against: the template message request (with every schema
it references), the send response, the Graph API error, the message_templates listing and the
webhook payload (statuses and inbound messages).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOTS = ("TemplateMessage", "MessageResponsePayload", "GraphAPIError", "WebhookPayload")
TEMPLATES_PATH = "/{Version}/{WABA-ID}/message_templates"


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def main(spec_path: str) -> None:
    spec = yaml.safe_load(Path(spec_path).read_text())
    schemas = spec["components"]["schemas"]
    listing = spec["paths"][TEMPLATES_PATH]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    wanted, todo = {}, [*ROOTS, *_refs(listing)]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted[name] = schemas[name]
            todo.extend(_refs(schemas[name]))
    wanted["MessageTemplatesListing"] = listing
    # Meta's pattern "^[2-6, 11-14]$" is a character class that rejects index "0", which Meta's
    # own examples and documentation use for the first button: keep the documented 0-9 instead.
    wanted["TemplateComponent"]["properties"]["index"]["pattern"] = "^[0-9]$"
    document = {
        "source": "business-messaging-api_v23.0.yaml (see extract_whatsapp_schemas.py)",
        "components": {"schemas": wanted}}
    out = Path(__file__).with_name("whatsapp-schemas.json")
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
