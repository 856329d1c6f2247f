"""Regenerate whatsapp-schemas.json from Meta's OpenAPI spec (run by hand, not by tests).

Copies only what the tests validate against: the template message request (with every schema
it references), the send response, the Graph API error, the message_templates listing, the
webhook payload (statuses and inbound messages) and biz_opaque_callback_data's definition.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOTS = ("TemplateMessage", "MessageResponsePayload", "GraphAPIError", "WebhookPayload")
#: Inbound message kinds the webhook tests send, under the names the repair below gives them.
INBOUND_KINDS = {"InboundTextMessage": "TextMessage_2", "InboundButtonMessage": "ButtonMessage",
                 "InboundInteractiveMessage": "InteractiveMessageReply"}
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


def _repair_inbound_messages(schemas: dict[str, Any]) -> None:
    """Meta's spec builds inbound messages on the *outbound* base (BaseMessageProperties: to,
    recipient_type required) and lists the outbound TextMessage among them, so no real inbound
    message validates. Point the kinds we test at the inbound base (BaseMessageProperties_1)."""
    for name, original in INBOUND_KINDS.items():
        schema = copy.deepcopy(schemas[original])
        schema["allOf"][0] = {"$ref": "#/components/schemas/BaseMessageProperties_1"}
        schemas[name] = schema
    schemas["IncomingMessage"] = {
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in INBOUND_KINDS]}


def main(spec_path: str) -> None:
    spec = yaml.safe_load(Path(spec_path).read_text())
    schemas = spec["components"]["schemas"]
    _repair_inbound_messages(schemas)
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
    # The spec defines the send's biz_opaque_callback_data only on the calls request.
    wanted["BizOpaqueCallbackData"] = schemas["CallRequestPayload"]["properties"][
        "biz_opaque_callback_data"]
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
