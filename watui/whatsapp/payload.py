"""Build the JSON body of a template message, exactly as the Cloud API's Message schema wants it.

Runs once per send (up to 1,000/s), so it builds plain dicts directly: no models, no copying.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Header formats that take a media object by link (the rest take text).
MEDIA_HEADER_FORMATS = frozenset({"image", "video", "document"})


def build_template_message(
    phone: str,
    template_name: str,
    language: str,
    params: Mapping[str, Any],
    header_format: str | None,
) -> dict[str, Any]:
    """The request body for one recipient.

    ``params`` is the recipient's stored parameters (``{"body": [...], "header": ...,
    "buttons": [{"index", "sub_type", "text"}]}``); body values may be plain strings or
    ``[name, value]`` pairs for templates with named placeholders. Empty components are left out,
    because Meta rejects a component without parameters.
    """
    components: list[dict[str, Any]] = []
    header = params.get("header")
    if header and header_format:
        parameter = _header_parameter(header_format, header)
        components.append({"type": "header", "parameters": [parameter]})
    body = params.get("body")
    if body:
        components.append({"type": "body", "parameters": _body_parameters(body)})
    for button in params.get("buttons") or ():
        components.append(_button_component(button))
    template: dict[str, Any] = {
        "name": template_name,
        "language": {"policy": "deterministic", "code": language},
    }
    if components:
        template["components"] = components
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": phone,
        "type": "template",
        "template": template,
    }


def _header_parameter(header_format: str, value: str) -> dict[str, Any]:
    kind = header_format.lower()
    if kind in MEDIA_HEADER_FORMATS:
        return {"type": kind, kind: {"link": value}}
    return {"type": "text", "text": value}


def _body_parameters(values: Sequence[Any]) -> list[dict[str, str]]:
    parameters = []
    for value in values:
        if isinstance(value, (list, tuple)):
            name, text = value
            parameters.append({"type": "text", "parameter_name": name, "text": str(text)})
        else:
            parameters.append({"type": "text", "text": str(value)})
    return parameters


def _button_component(button: Mapping[str, Any]) -> dict[str, Any]:
    sub_type = button.get("sub_type", "url")
    if sub_type == "quick_reply":
        payload = button.get("payload", button.get("text", ""))
        parameter = {"type": "payload", "payload": str(payload)}
    else:
        parameter = {"type": "text", "text": str(button.get("text", ""))}
    return {
        "type": "button",
        "sub_type": sub_type,
        "index": str(button.get("index", 0)),
        "parameters": [parameter],
    }
