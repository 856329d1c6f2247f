"""Build the sendMessage body for one recipient's template message, exactly as Meta's spec has it.

On the hot path (up to 1,000 calls a second): plain dicts and lists, no validation layers; the
tests validate every shape it makes against the spec's JSON schema instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watui.contracts import ButtonText, RecipientParams
from watui.rules import MEDIA_HEADER_FORMATS

#: biz_opaque_callback_data's limit in Meta's spec.
MAX_CALLBACK_LENGTH = 512


def build_template_message(
    phone: str,
    template_name: str,
    language: str,
    params: RecipientParams,
    header_format: str | None,
    body_names: Sequence[str] | None = None,
    callback: str | None = None,
) -> dict[str, Any]:
    """The JSON body of POST /{version}/{phone_number_id}/messages for a template message.

    ``params`` is a recipient's stored parameters (RecipientParams).
    ``body_names``: for templates with named placeholders ({{first_name}}), each body value
    carries its ``parameter_name``, as the API requires.
    ``callback`` (at most ``MAX_CALLBACK_LENGTH`` characters, the caller's to keep) becomes
    ``biz_opaque_callback_data``: Meta echoes it on every status webhook of the message, so a
    status finds its recipient even when the send's answer (and its wamid) was lost.
    """
    components: list[dict[str, Any]] = []
    header = params.get("header")
    if header:
        components.append({"type": "header", "parameters": [_header_parameter(header, header_format)]})
    body: Sequence[str] = params.get("body") or ()
    if body:
        if body_names:
            parameters = [
                {"type": "text", "parameter_name": name, "text": value}
                for name, value in zip(body_names, body, strict=False)
            ]
        else:
            parameters = [{"type": "text", "text": value} for value in body]
        components.append({"type": "body", "parameters": parameters})
    for button in params.get("buttons") or ():
        components.append(_button_component(button))
    template: dict[str, Any] = {
        "name": template_name,
        "language": {"policy": "deterministic", "code": language},
    }
    if components:
        template["components"] = components
    message: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": phone,
        "type": "template",
        "template": template,
    }
    if callback is not None:
        message["biz_opaque_callback_data"] = callback
    return message


def _header_parameter(value: str, header_format: str | None) -> dict[str, Any]:
    kind = (header_format or "text").lower()
    if kind in MEDIA_HEADER_FORMATS:
        return {"type": kind, kind: {"link": value}}
    return {"type": "text", "text": value}


def _button_component(button: ButtonText) -> dict[str, Any]:
    sub_type = button.get("sub_type", "url")
    text = str(button.get("text", ""))
    parameter = (
        {"type": "payload", "payload": text} if sub_type == "quick_reply" else {"type": "text", "text": text}
    )
    return {
        "type": "button",
        "sub_type": sub_type,
        "index": str(button.get("index", 0)),
        "parameters": [parameter],
    }
