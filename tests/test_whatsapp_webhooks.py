"""parse_notification reads every kind of webhook Meta sends, and refuses junk in one line.

Sample bodies follow Meta's documented examples; those the spec describes (statuses, inbound
messages) are validated against its WebhookPayload schema first, so a sample cannot drift from
Meta's shape unnoticed. ``user_preferences`` and ``phone_number_quality_update`` are not in the
spec (its Change.field enum lacks them): their samples follow Meta's webhook reference.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.spec import spec_errors
from watui.errors import MalformedWebhook
from watui.whatsapp.webhooks import (
    InboundMessage,
    PreferenceUpdate,
    QualityUpdate,
    StatusUpdate,
    parse_notification,
    signature,
    verify_signature,
)

METADATA = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NTdGRUE0QjU2QTNBMkM5MzcA"


def envelope(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": field, "value": value}]}]}


def statuses_body(*statuses: dict[str, Any]) -> dict[str, Any]:
    return envelope("messages", {"messaging_product": "whatsapp", "metadata": METADATA,
                                 "statuses": list(statuses)})


def messages_body(*messages: dict[str, Any]) -> dict[str, Any]:
    return envelope("messages", {
        "messaging_product": "whatsapp", "metadata": METADATA,
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234",
                      "user_id": "US.13491208655302741918"}],
        "messages": list(messages)})


DELIVERED: dict[str, Any] = {
    "id": WAMID, "status": "delivered", "timestamp": "1750263773", "recipient_id": "16505551234",
    "recipient_user_id": "US.13491208655302741918", "biz_opaque_callback_data": "r:42",
    "conversation": {"id": "ff7a8a8e8a4c4c5d9b1c2e3f4a5b6c7d", "origin": {"type": "marketing"}},
    "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"},
}
FAILED: dict[str, Any] = {
    "id": WAMID, "status": "failed", "timestamp": "1750263774", "recipient_id": "16505551234",
    "errors": [{"code": 131050, "title": "Unable to deliver the message. This recipient has chosen "
                "to stop receiving marketing messages on WhatsApp from your business.",
                "message": "Unable to deliver the message. This recipient has chosen to stop "
                "receiving marketing messages on WhatsApp from your business.",
                "error_data": {"details": "Unable to deliver the message. This recipient has "
                               "chosen to stop receiving marketing messages."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}],
}
TEXT = {"from": "16505551234", "id": "wamid.IN1", "timestamp": "1749416383", "type": "text",
        "text": {"body": "STOP"}}
BUTTON = {"from": "16505551234", "id": "wamid.IN2", "timestamp": "1750091045", "type": "button",
          "context": {"from": "15550783881", "id": WAMID},
          "button": {"payload": "unsubscribe", "text": "Unsubscribe"}}
INTERACTIVE = {"from": "16505551234", "id": "wamid.IN3", "timestamp": "1749854575",
               "type": "interactive", "context": {"from": "15550783881", "id": WAMID},
               "interactive": {"type": "button_reply",
                               "button_reply": {"id": "cancel-button", "title": "Cancel"}}}
PREFERENCES = envelope("user_preferences", {
    "messaging_product": "whatsapp", "metadata": METADATA,
    "contacts": [{"wa_id": "16505551234", "profile": {"name": "Sheena Nelson"}}],
    "user_preferences": [{"wa_id": "16505551234", "detail": "User requested to stop marketing messages",
                          "category": "marketing_messages", "value": "stop", "timestamp": 1731705721}],
})
QUALITY = envelope("phone_number_quality_update", {
    "display_phone_number": "15550783881", "event": "UPGRADE", "current_limit": "TIER_10K"})


def parse(body: dict[str, Any]) -> Any:
    return parse_notification(orjson.dumps(body))


@pytest.mark.parametrize("body", [
    statuses_body(DELIVERED), statuses_body(FAILED), messages_body(TEXT, BUTTON, INTERACTIVE),
], ids=["delivered", "failed", "inbound"])
def test_the_samples_conform_to_the_specs_webhook_schema(body: dict[str, Any]) -> None:
    assert spec_errors("WebhookPayload", body) == []


def test_the_schema_check_can_fail() -> None:
    body = copy.deepcopy(statuses_body(DELIVERED))
    del body["entry"][0]["changes"][0]["value"]["statuses"][0]["recipient_id"]
    assert spec_errors("WebhookPayload", body)


def test_a_delivered_status_with_everything() -> None:
    assert parse(statuses_body(DELIVERED)).statuses == (StatusUpdate(
        wamid=WAMID, status="delivered", timestamp=1750263773.0, recipient_id="16505551234",
        phone_number_id="106540352242922", user_id="US.13491208655302741918", callback="r:42",
        pricing_category="marketing", pricing_type="regular",
        conversation_id="ff7a8a8e8a4c4c5d9b1c2e3f4a5b6c7d",
    ),)


def test_a_failed_status_keeps_code_title_message_and_details() -> None:
    (status,) = parse(statuses_body(FAILED)).statuses
    assert (status.status, status.error_code) == ("failed", 131050)
    assert status.error_title is not None and status.error_title.startswith("Unable to deliver")
    assert status.error_message == FAILED["errors"][0]["message"]
    assert status.error_details == FAILED["errors"][0]["error_data"]["details"]
    assert (status.callback, status.pricing_category, status.user_id) == (None, None, None)


def test_other_status_kinds_are_kept_as_they_come() -> None:
    played = {"id": WAMID, "status": "played", "timestamp": "1750263775", "recipient_id": "1650"}
    assert parse(statuses_body(played)).statuses[0].status == "played"


def test_a_status_identified_by_bsuid_only() -> None:
    status = {"id": WAMID, "status": "sent", "timestamp": "1", "user_id": "US.1"}
    (parsed,) = parse(statuses_body(status)).statuses
    assert (parsed.recipient_id, parsed.user_id) == (None, "US.1")


def test_inbound_text_button_and_interactive_replies() -> None:
    notification = parse(messages_body(TEXT, BUTTON, INTERACTIVE))
    assert notification.messages == (
        InboundMessage(id="wamid.IN1", sender="16505551234", timestamp=1749416383.0, type="text",
                       phone_number_id="106540352242922", user_id="US.13491208655302741918",
                       text="STOP"),
        InboundMessage(id="wamid.IN2", sender="16505551234", timestamp=1750091045.0, type="button",
                       phone_number_id="106540352242922", user_id="US.13491208655302741918",
                       text="Unsubscribe", payload="unsubscribe"),
        InboundMessage(id="wamid.IN3", sender="16505551234", timestamp=1749854575.0,
                       type="interactive", phone_number_id="106540352242922",
                       user_id="US.13491208655302741918", text="Cancel", payload="cancel-button"),
    )
    assert notification.statuses == ()


def test_an_image_message_is_kept_without_text() -> None:
    image = {"from": "1650", "id": "wamid.IN4", "timestamp": "1", "type": "image",
             "image": {"id": "1", "mime_type": "image/jpeg"}}
    (message,) = parse(messages_body(image)).messages
    assert (message.type, message.text, message.payload) == ("image", None, None)


def test_a_user_preferences_stop() -> None:
    assert parse(PREFERENCES).preferences == (PreferenceUpdate(
        wa_id="16505551234", category="marketing_messages", value="stop", timestamp=1731705721.0,
        phone_number_id="106540352242922", detail="User requested to stop marketing messages",
    ),)


def test_a_quality_update() -> None:
    assert parse(QUALITY).quality == (QualityUpdate("15550783881", "UPGRADE", "TIER_10K"),)


def test_unknown_fields_and_change_kinds_are_ignored() -> None:
    body = statuses_body(dict(DELIVERED, new_thing={"x": 1}))
    body["entry"][0]["changes"].append({"field": "template_category_update", "value": {"x": 1}})
    body["entry"][0]["changes"].append({"field": ["odd"], "value": 3})
    body["entry"].append({"id": "2", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": METADATA, "errors": []}}]})
    body["future"] = True
    assert len(parse(body).statuses) == 1


def test_one_post_with_a_thousand_statuses_of_every_kind() -> None:
    kinds = ("sent", "delivered", "read", "failed")
    statuses = [dict(DELIVERED, id=f"wamid.{i}", status=kinds[i % 4],
                     biz_opaque_callback_data=str(i)) for i in range(1000)]
    body = statuses_body(*statuses)
    assert spec_errors("WebhookPayload", body) == []
    parsed = parse(body).statuses
    assert [status.callback for status in parsed] == [str(i) for i in range(1000)]
    assert [status.status for status in parsed[:4]] == list(kinds)


def test_optional_fields_may_all_be_missing() -> None:
    bare = {"id": WAMID, "status": "sent", "timestamp": "1750263773", "recipient_id": "1650"}
    (status,) = parse(statuses_body(bare)).statuses
    assert status == StatusUpdate(WAMID, "sent", 1750263773.0, "1650", "106540352242922")
    bare_text = {"id": "wamid.X", "timestamp": "1", "type": "text", "text": {}, "from": "1650"}
    value = {"messaging_product": "whatsapp", "metadata": METADATA, "messages": [bare_text]}
    (message,) = parse(envelope("messages", value)).messages
    assert (message.text, message.user_id) == (None, None)


def _broken(path: tuple[Any, ...], value: Any) -> bytes:
    body = copy.deepcopy(statuses_body(FAILED))
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(body)


_DELETE = object()
STATUS = ("entry", 0, "changes", 0, "value", "statuses", 0)
JUNK = {
    "not JSON": (b"{not json", "not JSON"),
    "empty": (b"", "not JSON"),
    "a list": (b"[1, 2]", "not a JSON object"),
    "another object": (b'{"object": "page", "entry": []}', "object is 'page'"),
    "no entry": (b'{"object": "whatsapp_business_account"}', "entry is missing"),
    "entry not a list": (b'{"entry": {}}', "entry is not a list"),
    "entry item a string": (b'{"entry": ["x"]}', "entry[0] is not an object"),
    "no changes": (b'{"entry": [{"id": "1"}]}', "entry[0].changes is missing"),
    "value a list": (b'{"entry": [{"changes": [{"field": "messages", "value": []}]}]}',
                     "entry[0].changes[0].value is not an object"),
    "no metadata": (_broken(("entry", 0, "changes", 0, "value", "metadata"), _DELETE),
                    "value.metadata is missing"),
    "no wamid": (_broken((*STATUS, "id"), _DELETE), "statuses[0].id is missing"),
    "status a number": (_broken((*STATUS, "status"), 3), "statuses[0].status is not"),
    "bad timestamp": (_broken((*STATUS, "timestamp"), "soon"), "statuses[0].timestamp is not"),
    "infinite timestamp": (_broken((*STATUS, "timestamp"), "inf"), "timestamp is not a Unix"),
    "boolean timestamp": (_broken((*STATUS, "timestamp"), True), "timestamp is not a Unix"),
    "list timestamp": (_broken((*STATUS, "timestamp"), [1]), "timestamp is not a Unix"),
    "no recipient": (_broken((*STATUS, "recipient_id"), _DELETE), "neither recipient_id"),
    "errors an object": (_broken((*STATUS, "errors"), {"code": 1}), "errors is not a list"),
    "code a string": (_broken((*STATUS, "errors", 0, "code"), "x"), "errors[0].code is not"),
    "pricing a string": (_broken((*STATUS, "pricing"), "PMP"), "pricing is not an object"),
    "statuses an object": (_broken(STATUS[:-1], {}), "value.statuses is not a list"),
}


@pytest.mark.parametrize("name", JUNK)
def test_junk_is_refused_in_one_line_saying_where(name: str) -> None:
    raw, expected = JUNK[name]
    with pytest.raises(MalformedWebhook) as refused:
        parse_notification(raw)
    message = str(refused.value)
    assert expected in message and "\n" not in message


@settings(max_examples=300, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    | st.sampled_from(["messages", "user_preferences", "phone_number_quality_update",
                       "whatsapp_business_account", "1750263773", "text", "button"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["object", "entry", "changes", "field", "value", "metadata",
                         "phone_number_id", "statuses", "messages", "id", "status", "timestamp",
                         "recipient_id", "errors", "code", "type", "text", "user_preferences"]),
        children, max_size=4),
    max_leaves=20,
))
def test_any_json_parses_or_is_refused_never_a_traceback(body: Any) -> None:
    try:
        parse_notification(json.dumps(body).encode())  # big integers and NaN too
    except MalformedWebhook as refused:
        assert "\n" not in str(refused)


def test_signature_is_what_verify_signature_accepts() -> None:
    raw = orjson.dumps(statuses_body(DELIVERED))
    assert verify_signature(raw, signature(raw, "s3cret"), "s3cret")
    assert not verify_signature(raw + b" ", signature(raw, "s3cret"), "s3cret")
    assert not verify_signature(raw, signature(raw, "other"), "s3cret")
