"""Webhook authenticity: Meta signs each webhook body with the app secret (X-Hub-Signature-256).

A webhook whose signature does not verify must be ignored: anyone can POST to a public URL.
"""

from __future__ import annotations

import hashlib
import hmac

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
