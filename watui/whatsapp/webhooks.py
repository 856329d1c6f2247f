"""Webhooks from Meta: their authenticity (X-Hub-Signature-256) and their content, typed.

A webhook whose signature does not verify must be ignored: anyone can POST to a public URL.
A verified body is parsed by ``parse_notification`` into frozen records, once, here: the receiver
stores them and the mock's tests read them back, so both agree on one reading of Meta's shapes
(../shared/docs/cloud-api.md, Webhooks). Pure functions, no I/O: the mock signs with ``signature``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from watui.errors import MalformedWebhook

SIGNATURE_PREFIX = "sha256="
SIGNATURE_HEADER = "X-Hub-Signature-256"
OBJECT = "whatsapp_business_account"

#: The status kinds watui acts on; others (played, deleted, ...) are kept as they come.
SENT, DELIVERED, READ, FAILED = "sent", "delivered", "read", "failed"
STOP, RESUME = "stop", "resume"
#: ``phone_number_quality_update`` events that say something of quality or throughput. Meta
#: flags a number when its quality rating falls to low (RED) and unflags it when it rises again;
#: UPGRADE / DOWNGRADE change the messaging limit (``current_limit``).
FLAGGED, UNFLAGGED, THROUGHPUT_UPGRADE = "FLAGGED", "UNFLAGGED", "THROUGHPUT_UPGRADE"
UPGRADE, DOWNGRADE = "UPGRADE", "DOWNGRADE"

Json = Mapping[str, Any]


def signature(raw: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 value Meta sends: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def verify_signature(raw: bytes, header: str | None, app_secret: str) -> bool:
    """True when ``header`` is ``sha256=<hex HMAC-SHA256 of raw with app_secret>``.

    ``raw`` must be the body exactly as received (not re-encoded JSON). The comparison takes
    the same time wherever the first difference is, so it leaks nothing about the expected value.
    An empty secret never verifies: it would make every forged signature easy.
    """
    if not header or not app_secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    received = header[len(SIGNATURE_PREFIX):].strip().lower()
    expected = signature(raw, app_secret)[len(SIGNATURE_PREFIX):]
    try:
        return hmac.compare_digest(received.encode("ascii"), expected.encode("ascii"))
    except UnicodeEncodeError:
        return False


# ----- what a notification carries -----


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One message's new state. ``callback`` is the send's ``biz_opaque_callback_data``: it ties
    the status to our recipient row even when the send's answer (and its wamid) never arrived."""

    wamid: str
    status: str
    timestamp: float
    recipient_id: str | None  # the phone number (wa_id); absent when only a BSUID identifies them
    phone_number_id: str
    user_id: str | None = None  # business-scoped user id (BSUID)
    callback: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_message: str | None = None
    error_details: str | None = None
    pricing_category: str | None = None
    pricing_type: str | None = None
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a person sent us. ``text`` is a text's body or the label of a tapped button or
    reply; ``payload`` is a quick reply's payload or an interactive reply's id."""

    id: str
    sender: str | None  # the phone number (wa_id) in ``from``
    timestamp: float
    type: str
    phone_number_id: str
    user_id: str | None = None
    text: str | None = None
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class PreferenceUpdate:
    """A person stopped or resumed a category of messages (``user_preferences``)."""

    wa_id: str | None
    category: str
    value: str  # stop | resume
    timestamp: float
    phone_number_id: str
    user_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class QualityUpdate:
    """A phone number's quality or messaging limit changed (``phone_number_quality_update``)."""

    display_phone_number: str
    event: str
    current_limit: str | None = None

    @property
    def quality(self) -> str | None:
        """The quality rating the event tells: RED when flagged; when unflagged only that it is
        no longer RED (UNKNOWN until a poll tells GREEN from YELLOW); None: it tells none."""
        return {FLAGGED: "RED", UNFLAGGED: "UNKNOWN"}.get(self.event)

    @property
    def throughput_level(self) -> str | None:
        return "HIGH" if self.event == THROUGHPUT_UPGRADE else None

    @property
    def messaging_limit(self) -> str | None:
        """``current_limit``, but for a throughput upgrade, where it says TIER_UNLIMITED to mean
        the higher throughput, not a messaging limit."""
        return None if self.event == THROUGHPUT_UPGRADE else self.current_limit


@dataclass(frozen=True, slots=True)
class Notification:
    """Everything one POST carried, by kind, in the order it came."""

    statuses: tuple[StatusUpdate, ...] = ()
    messages: tuple[InboundMessage, ...] = ()
    preferences: tuple[PreferenceUpdate, ...] = ()
    quality: tuple[QualityUpdate, ...] = ()

    @property
    def size(self) -> int:
        """The updates the receiver stores."""
        return len(self.statuses) + len(self.messages) + len(self.preferences) + len(self.quality)


# ----- parsing -----


def parse_notification(raw: bytes) -> Notification:
    """The updates in a webhook body. Unknown fields and change kinds are skipped (Meta adds
    them without notice); a body that is not JSON or not shaped like a notification raises
    ``MalformedWebhook`` saying where."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedWebhook("the webhook body is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedWebhook("the webhook body is not a JSON object")
    if body.get("object", OBJECT) != OBJECT:
        raise MalformedWebhook(f"object is {body.get('object')!r}, not {OBJECT!r}")
    found = _Found()
    for e, entry in _objects(body, "entry", "entry"):
        for c, change in _objects(entry, "changes", f"entry[{e}].changes"):
            where = f"entry[{e}].changes[{c}]"
            field = change.get("field")
            reader = _READERS.get(field) if isinstance(field, str) else None
            if reader is not None:
                value = change.get("value")
                if not isinstance(value, dict):
                    raise MalformedWebhook(f"{where}.value is not an object")
                reader(value, f"{where}.value", found)
    return Notification(
        tuple(found.statuses), tuple(found.messages), tuple(found.preferences), tuple(found.quality)
    )


class _Found:
    __slots__ = ("messages", "preferences", "quality", "statuses")

    def __init__(self) -> None:
        self.statuses: list[StatusUpdate] = []
        self.messages: list[InboundMessage] = []
        self.preferences: list[PreferenceUpdate] = []
        self.quality: list[QualityUpdate] = []


def _read_messages_value(value: Json, where: str, found: _Found) -> None:
    """The ``messages`` field carries statuses of what we sent and messages people sent us."""
    if "statuses" not in value and "messages" not in value:
        return
    phone_number_id = _phone_number_id(value, where)
    for i, item in _objects(value, "statuses", f"{where}.statuses", optional=True):
        found.statuses.append(_status(item, phone_number_id, f"{where}.statuses[{i}]"))
    contact_ids = _contact_user_ids(value)
    for i, item in _objects(value, "messages", f"{where}.messages", optional=True):
        found.messages.append(
            _inbound(item, phone_number_id, contact_ids, f"{where}.messages[{i}]")
        )


def _read_preferences_value(value: Json, where: str, found: _Found) -> None:
    phone_number_id = _phone_number_id(value, where)
    for i, item in _objects(value, "user_preferences", f"{where}.user_preferences"):
        at = f"{where}.user_preferences[{i}]"
        found.preferences.append(PreferenceUpdate(
            wa_id=_optional_text(item, "wa_id", at),
            category=_text(item, "category", at),
            value=_text(item, "value", at),
            timestamp=_timestamp(item, at),
            phone_number_id=phone_number_id,
            user_id=_optional_text(item, "user_id", at),
            detail=_optional_text(item, "detail", at),
        ))


def _read_quality_value(value: Json, where: str, found: _Found) -> None:
    found.quality.append(QualityUpdate(
        display_phone_number=_text(value, "display_phone_number", where),
        event=_text(value, "event", where),
        current_limit=_optional_text(value, "current_limit", where),
    ))


_READERS: dict[str, Callable[[Json, str, _Found], None]] = {
    "messages": _read_messages_value,
    "user_preferences": _read_preferences_value,
    "phone_number_quality_update": _read_quality_value,
}


def _status(item: Json, phone_number_id: str, where: str) -> StatusUpdate:
    error = _first_error(item, where)
    pricing = _optional_object(item, "pricing", where)
    conversation = _optional_object(item, "conversation", where)
    user_id = _optional_text(item, "recipient_user_id", where) or _optional_text(item, "user_id", where)
    recipient_id = _optional_text(item, "recipient_id", where)
    if recipient_id is None and user_id is None:
        raise MalformedWebhook(f"{where}: neither recipient_id nor a user id is given")
    return StatusUpdate(
        wamid=_text(item, "id", where),
        status=_text(item, "status", where),
        timestamp=_timestamp(item, where),
        recipient_id=recipient_id,
        phone_number_id=phone_number_id,
        user_id=user_id,
        callback=_optional_text(item, "biz_opaque_callback_data", where),
        error_code=_error_code(error, where) if error else None,
        error_title=_optional_text(error, "title", where) if error else None,
        error_message=_optional_text(error, "message", where) if error else None,
        error_details=_error_details(error, where) if error else None,
        pricing_category=_optional_text(pricing, "category", where) if pricing else None,
        pricing_type=_optional_text(pricing, "type", where) if pricing else None,
        conversation_id=_optional_text(conversation, "id", where) if conversation else None,
    )


def _inbound(item: Json, phone_number_id: str, contact_ids: Mapping[str, str], where: str) -> InboundMessage:
    kind = _text(item, "type", where)
    sender = _optional_text(item, "from", where)
    user_id = _optional_text(item, "from_user_id", where) or _optional_text(item, "user_id", where)
    text, payload = _inbound_content(item, kind, where)
    return InboundMessage(
        id=_text(item, "id", where),
        sender=sender,
        timestamp=_timestamp(item, where),
        type=kind,
        phone_number_id=phone_number_id,
        user_id=user_id or (contact_ids.get(sender) if sender else None),
        text=text,
        payload=payload,
    )


def _inbound_content(item: Json, kind: str, where: str) -> tuple[str | None, str | None]:
    """(text, payload) of the kinds a campaign's audience answers with; (None, None) otherwise."""
    if kind == "text":
        return _optional_text(_object(item, "text", where), "body", f"{where}.text"), None
    if kind == "button":
        button = _object(item, "button", where)
        return (_optional_text(button, "text", f"{where}.button"),
                _optional_text(button, "payload", f"{where}.button"))
    if kind == "interactive":
        interactive = _object(item, "interactive", where)
        reply = interactive.get("button_reply") or interactive.get("list_reply")
        if isinstance(reply, dict):
            return (_optional_text(reply, "title", f"{where}.interactive"),
                    _optional_text(reply, "id", f"{where}.interactive"))
    return None, None


def _contact_user_ids(value: Json) -> dict[str, str]:
    """wa_id -> BSUID from ``contacts``, where Meta may give the user id instead of on the message."""
    contacts = value.get("contacts")
    if not isinstance(contacts, list):
        return {}
    return {
        contact["wa_id"]: contact["user_id"] for contact in contacts
        if isinstance(contact, dict) and isinstance(contact.get("wa_id"), str)
        and isinstance(contact.get("user_id"), str)
    }


def _first_error(item: Json, where: str) -> Json | None:
    errors = item.get("errors")
    if errors is None:
        return None
    if not isinstance(errors, list) or (errors and not isinstance(errors[0], dict)):
        raise MalformedWebhook(f"{where}.errors is not a list of objects")
    return errors[0] if errors else None


def _error_code(error: Json, where: str) -> int | None:
    code = error.get("code")
    if code is None or (isinstance(code, int) and not isinstance(code, bool)):
        return code
    raise MalformedWebhook(f"{where}.errors[0].code is not a number")


def _error_details(error: Json, where: str) -> str | None:
    data = _optional_object(error, "error_data", f"{where}.errors[0]")
    return _optional_text(data, "details", f"{where}.errors[0].error_data") if data else None


def _phone_number_id(value: Json, where: str) -> str:
    return _text(_object(value, "metadata", where), "phone_number_id", f"{where}.metadata")


# ----- small readers, each with a one-line complaint -----


def _objects(
    container: Json, key: str, where: str, *, optional: bool = False
) -> Iterator[tuple[int, Json]]:
    items = container.get(key)
    if items is None and optional:
        return iter(())
    if not isinstance(items, list):
        raise MalformedWebhook(f"{where} is {'missing' if items is None else 'not a list'}")
    return _each_object(items, where)


def _each_object(items: Sequence[Any], where: str) -> Iterator[tuple[int, Json]]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedWebhook(f"{where}[{index}] is not an object")
        yield index, item


def _object(container: Json, key: str, where: str) -> Json:
    value = container.get(key)
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{where}.{key} is {'missing' if value is None else 'not an object'}")
    return value


def _optional_object(container: Json, key: str, where: str) -> Json | None:
    value = container.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise MalformedWebhook(f"{where}.{key} is not an object")


def _text(container: Json, key: str, where: str) -> str:
    value = container.get(key)
    if isinstance(value, str) and value:
        return value
    raise MalformedWebhook(f"{where}.{key} is {'missing' if value is None else 'not a non-empty string'}")


def _optional_text(container: Json, key: str, where: str) -> str | None:
    value = container.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise MalformedWebhook(f"{where}.{key} is not a string")


def _timestamp(container: Json, where: str) -> float:
    """Meta writes Unix seconds as a string ("1749416383"), and as a number in newer fields."""
    value: Any = container.get("timestamp")
    try:
        seconds = float(value)  # not a str or number: TypeError
    except (TypeError, ValueError):
        seconds = math.nan
    if math.isfinite(seconds) and not isinstance(value, bool):
        return seconds
    raise MalformedWebhook(f"{where}.timestamp is {'missing' if value is None else 'not a Unix time'}")
