"""Realistic message templates as Meta's message_templates endpoint returns them."""

from __future__ import annotations

from typing import Any

SAMPLE_TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "1001",
        "name": "order_update",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {
                "type": "HEADER",
                "format": "IMAGE",
                "example": {"header_handle": ["https://example.com/order.jpg"]},
            },
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} is on its way.",
                "example": {"body_text": [["Ana", "A-1009"]]},
            },
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {
                        "type": "URL",
                        "text": "Track order",
                        "url": "https://example.com/track/{{1}}",
                        "example": ["https://example.com/track/A-1009"],
                    }
                ],
            },
        ],
    },
    {
        "id": "1002",
        "name": "welcome",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Welcome!"},
            {
                "type": "BODY",
                "text": "Hello {{first_name}}, thanks for joining us.",
                "example": {
                    "body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]
                },
            },
        ],
    },
    {
        "id": "1003",
        "name": "shipping_notice",
        "language": "es",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hola {{1}}, tu pedido {{2}} llega el {{3}}.",
                "example": {"body_text": [["Ana", "A-1009", "lunes"]]},
            },
        ],
    },
    {
        "id": "1004",
        "name": "appointment_reminder",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {
                "type": "HEADER",
                "format": "DOCUMENT",
                "example": {"header_handle": ["https://example.com/appointment.pdf"]},
            },
            {
                "type": "BODY",
                "text": "Reminder: {{1}} on {{2}}. Can you make it?",
                "example": {"body_text": [["dentist", "Monday 10:00"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Yes"},
                    {"type": "QUICK_REPLY", "text": "Reschedule"},
                ],
            },
        ],
    },
    {
        "id": "1005",
        "name": "spring_sale",
        "language": "en_US",
        "status": "PAUSED",
        "category": "MARKETING",
        "components": [
            {
                "type": "BODY",
                "text": "{{1}}% off everything this week!",
                "example": {"body_text": [["20"]]},
            }
        ],
    },
    {
        "id": "1006",
        "name": "crypto_offer",
        "language": "en_US",
        "status": "REJECTED",
        "category": "MARKETING",
        "rejected_reason": "PROMOTIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "Double your money, {{1}}!",
                "example": {"body_text": [["Ana"]]},
            }
        ],
    },
]
