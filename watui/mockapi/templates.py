"""Sample message templates the mock API serves, shaped like GET /{waba_id}/message_templates."""

from __future__ import annotations

from typing import Any

SAMPLE_TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "1180000000000001", "name": "order_update", "language": "en_US",
        "status": "APPROVED", "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way. Track it below."},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track order", "url": "https://shop.example.com/track"},
            ]},
        ],
    },
    {
        "id": "1180000000000002", "name": "welcome", "language": "en_US",
        "status": "APPROVED", "category": "MARKETING",
        "components": [
            {"type": "BODY", "text": "Welcome aboard, {{first_name}}! Your first delivery is free."},
        ],
    },
    {
        "id": "1180000000000007", "name": "parcel_tracking", "language": "en_US",
        "status": "APPROVED", "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": "Hi {{1}}, parcel {{2}} is out for delivery today."},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track parcel", "url": "https://shop.example.com/parcel/{{1}}",
                 "example": ["https://shop.example.com/parcel/PX-1009"]},
                {"type": "QUICK_REPLY", "text": "Not at home"},
            ]},
        ],
    },
    {
        "id": "1180000000000003", "name": "shipping_notice", "language": "es_ES",
        "status": "APPROVED", "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Envío {{1}}"},
            {"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} llegará el {{3}}."},
        ],
    },
    {
        "id": "1180000000000004", "name": "appointment_reminder", "language": "en_GB",
        "status": "APPROVED", "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": "Hello {{1}}, a reminder of your appointment on {{2}} at {{3}}."},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Confirm"},
                {"type": "QUICK_REPLY", "text": "Reschedule"},
            ]},
        ],
    },
    {
        "id": "1180000000000005", "name": "flash_sale", "language": "en_US",
        "status": "PAUSED", "category": "MARKETING",
        "components": [{"type": "BODY", "text": "{{1}}, 50% off everything for the next 2 hours!"}],
    },
    {
        "id": "1180000000000006", "name": "loan_offer", "language": "en_US",
        "status": "REJECTED", "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Dear {{1}}, you are pre-approved for a loan."}],
    },
]
