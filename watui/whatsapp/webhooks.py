"""Webhooks: their authenticity (Meta signs each body with the app secret, X-Hub-Signature-256)
and the updates they carry.

A webhook whose signature does not verify must be ignored: anyone can POST to a public URL.
Nothing here does I/O, so the mock API may sign with it too.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Any

import orjson

from watui.errors import MalformedWebhook

SIGNATURE_PREFIX = "sha256="


def verify_signature(raw: bytes, header: str | None, app_secret: str) -> bool:
    """True when ``header`` is ``sha256=<hex HMAC-SHA256 of raw with app_secret>``.

    ``raw`` must be the body exactly as received (not re-encoded JSON). The comparison takes
    the same time wherever the first difference is, so it leaks nothing about the expected value.
    An empty secret never verifies: it would make every forged signature easy.
    """
    if not header or not app_secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    received = header[len(SIGNATURE_PREFIX):].strip().lower()
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    try:
        return hmac.compare_digest(received.encode("ascii"), expected.encode("ascii"))
    except UnicodeEncodeError:
        return False


# ----- parsing -----
# A stand-in until the full parser (typed per webhook field) is merged: same names, same fields.


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One ``statuses[]`` item: where one of our sent messages now is."""

    wamid: str
    status: str  # sent, delivered, read, failed (played, ... are kept as they come)
    timestamp: float
    recipient_id: str | None  # the phone number; absent when only the user id is given
    phone_number_id: str | None  # our number that sent it
    callback: str | None  # biz_opaque_callback_data, as given on the send
    error_code: int | None
    error_title: str | None
    error_message: str | None
    error_details: str | None
    pricing_category: str | None
    pricing_type: str | None
    user_id: str | None  # business-scoped user id (BSUID), besides or instead of the phone


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One ``messages[]`` item: a person wrote to our number (opt-out keywords come this way)."""

    id: str
    sender: str | None  # the ``from`` phone number
    user_id: str | None
    timestamp: float
    type: str
    text: str | None  # a text's body or a button's text; None for media and the rest
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class PreferenceUpdate:
    """One ``user_preferences[]`` item: a person stopped (or resumed) marketing messages."""

    wa_id: str | None
    user_id: str | None
    category: str
    value: str  # stop | resume
    detail: str | None
    timestamp: float
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class Notification:
    """Everything one webhook POST carries that watui keeps; other fields are ignored."""

    statuses: tuple[StatusUpdate, ...] = ()
    messages: tuple[InboundMessage, ...] = ()
    preferences: tuple[PreferenceUpdate, ...] = ()

    @property
    def size(self) -> int:
        return len(self.statuses) + len(self.messages) + len(self.preferences)


JsonObject = dict[str, Any]


def parse_notification(raw: bytes) -> Notification:
    """The updates in a webhook body, or MalformedWebhook saying (in one line) what is wrong.

    Strict about what a stored row cannot do without (ids, statuses, timestamps), lenient about
    the rest: Meta adds fields and webhook kinds, and a refused POST is redelivered for days."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise MalformedWebhook(f"the body is not JSON: {error}") from None
    statuses: list[StatusUpdate] = []
    messages: list[InboundMessage] = []
    preferences: list[PreferenceUpdate] = []
    for entry in _objects(_object(body, "the body"), "entry"):
        for change in _objects(entry, "changes"):
            value = _object(change.get("value"), "changes[].value")
            phone_number_id = _text(_optional_object(value.get("metadata")).get("phone_number_id"))
            statuses.extend(_status(item, phone_number_id) for item in _objects(value, "statuses"))
            messages.extend(_message(item, phone_number_id) for item in _objects(value, "messages"))
            preferences.extend(
                _preference(item, phone_number_id) for item in _objects(value, "user_preferences")
            )
    return Notification(tuple(statuses), tuple(messages), tuple(preferences))


def _status(item: JsonObject, phone_number_id: str | None) -> StatusUpdate:
    error = _optional_object(next(iter(_objects(item, "errors")), None))
    pricing = _optional_object(item.get("pricing"))
    return StatusUpdate(
        wamid=_required(item, "id", "statuses[]"),
        status=_required(item, "status", "statuses[]"),
        timestamp=_timestamp(item, "statuses[]"),
        recipient_id=_text(item.get("recipient_id")),
        phone_number_id=phone_number_id,
        callback=_text(item.get("biz_opaque_callback_data")),
        error_code=_code(error.get("code")),
        error_title=_text(error.get("title")),
        error_message=_text(error.get("message")),
        error_details=_text(_optional_object(error.get("error_data")).get("details")),
        pricing_category=_text(pricing.get("category")),
        pricing_type=_text(pricing.get("type")),
        user_id=_text(item.get("recipient_user_id") or item.get("user_id")),
    )


def _message(item: JsonObject, phone_number_id: str | None) -> InboundMessage:
    kind = _required(item, "type", "messages[]")
    return InboundMessage(
        id=_required(item, "id", "messages[]"),
        sender=_text(item.get("from")),
        user_id=_text(item.get("from_user_id") or item.get("user_id")),
        timestamp=_timestamp(item, "messages[]"),
        type=kind,
        text=_text(_optional_object(item.get(kind)).get("body" if kind == "text" else "text")),
        phone_number_id=phone_number_id,
    )


def _preference(item: JsonObject, phone_number_id: str | None) -> PreferenceUpdate:
    return PreferenceUpdate(
        wa_id=_text(item.get("wa_id")),
        user_id=_text(item.get("user_id")),
        category=_required(item, "category", "user_preferences[]"),
        value=_required(item, "value", "user_preferences[]"),
        detail=_text(item.get("detail")),
        timestamp=_timestamp(item, "user_preferences[]"),
        phone_number_id=phone_number_id,
    )


def _object(value: object, where: str) -> JsonObject:
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{where} must be a JSON object")
    return value


def _optional_object(value: object) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _objects(parent: JsonObject, key: str) -> list[JsonObject]:
    """``parent[key]`` as a list of objects; absent counts as empty."""
    items = parent.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MalformedWebhook(f"{key} must be a list of JSON objects")
    return items


def _required(item: JsonObject, key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedWebhook(f"{where}.{key} must be a non-empty string")
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _timestamp(item: JsonObject, where: str) -> float:
    """Meta sends seconds since the epoch as a string ("1700000000"); numbers are taken too."""
    value = item.get("timestamp")
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        seconds = float(value)
    except ValueError:
        raise MalformedWebhook(f"{where}.timestamp must be seconds since the epoch") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise MalformedWebhook(f"{where}.timestamp must be seconds since the epoch")
    return seconds
