"""Every kind of body the payload builder makes conforms to the spec's TemplateMessage schema."""

from __future__ import annotations

import pytest

from tests.spec import spec_errors
from watui.whatsapp.payload import MAX_CALLBACK_LENGTH, build_template_message

CASES = {
    "no parameters": ({}, None),
    "body only": ({"body": ["Ana", "A-1009"]}, None),
    "text header": ({"header": "Spring", "body": ["Ana"]}, "text"),
    "image header": ({"header": "https://example.com/a.jpg"}, "image"),
    "video header": ({"header": "https://example.com/a.mp4"}, "video"),
    "document header": ({"header": "https://example.com/a.pdf"}, "document"),
    "url button": ({"buttons": [{"index": 0, "sub_type": "url", "text": "A-1009"}]}, None),
    "quick replies": (
        {"buttons": [{"index": 0, "sub_type": "quick_reply", "text": "YES"},
                     {"index": 1, "sub_type": "quick_reply", "text": "NO"}]},
        None,
    ),
    "everything": (
        {"header": "https://example.com/a.jpg", "body": ["Ana", "A-1009"],
         "buttons": [{"index": 0, "sub_type": "url", "text": "A-1009"}]},
        "image",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_every_body_kind_conforms_to_the_spec(name: str) -> None:
    params, header_format = CASES[name]
    body = build_template_message("+15551234567", "order_update", "en_US", params, header_format)
    assert spec_errors("TemplateMessage", body) == []


def test_the_schema_check_rejects_a_language_without_policy() -> None:
    body = build_template_message("+15551234567", "welcome", "en_US", {"body": ["Ana"]}, None)
    del body["template"]["language"]["policy"]
    assert spec_errors("TemplateMessage", body)


def test_full_body_matches_the_documented_example() -> None:
    params = {
        "header": "https://example.com/a.jpg",
        "body": ["Ana", "A-1009"],
        "buttons": [{"index": 0, "sub_type": "url", "text": "A-1009"}],
    }
    body = build_template_message("+15551234567", "order_update", "en_US", params, "image")
    assert body == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+15551234567",
        "type": "template",
        "template": {
            "name": "order_update", "language": {"policy": "deterministic", "code": "en_US"},
            "components": [
                {"type": "header",
                 "parameters": [{"type": "image", "image": {"link": "https://example.com/a.jpg"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                {"type": "text", "text": "A-1009"}]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": "A-1009"}]},
            ],
        },
    }


def test_quick_reply_carries_a_payload_and_empty_components_are_left_out() -> None:
    params = {"body": [], "buttons": [{"index": 1, "sub_type": "quick_reply", "text": "STOP"}]}
    template = build_template_message("+1555", "t", "en", params, None)["template"]
    assert template["components"] == [
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "STOP"}]},
    ]
    assert "components" not in build_template_message("+1555", "t", "en", {}, None)["template"]


def test_named_placeholders_carry_their_parameter_names() -> None:
    body = build_template_message(
        "+15551234567", "welcome", "en_US", {"body": ["Ana"]}, None, ["first_name"]
    )
    assert spec_errors("TemplateMessage", body) == []
    assert body["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]}
    ]


def test_a_callback_rides_as_biz_opaque_callback_data_at_the_top_level() -> None:
    body = build_template_message("+15551234567", "welcome", "en_US", {"body": ["Ana"]}, None,
                                  callback="r:1234567")
    assert body["biz_opaque_callback_data"] == "r:1234567"
    assert spec_errors("TemplateMessage", body) == []
    assert spec_errors("BizOpaqueCallbackData", body["biz_opaque_callback_data"]) == []
    assert "biz_opaque_callback_data" not in build_template_message("+1555", "t", "en", {}, None)


def test_the_spec_limits_the_callback_to_512_characters() -> None:
    assert MAX_CALLBACK_LENGTH == 512
    assert spec_errors("BizOpaqueCallbackData", "x" * MAX_CALLBACK_LENGTH) == []
    assert spec_errors("BizOpaqueCallbackData", "x" * (MAX_CALLBACK_LENGTH + 1))
