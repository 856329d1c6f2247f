"""The error table: every Cloud API error code watui knows, what it means and what to do.

The table is data (``ERROR_TABLE``) so that the UI, the docs and the tests read the same facts.
Source: ../shared/docs/cloud-api.md (Meta's developer documentation; codes are not in the spec).
"""

from __future__ import annotations

from watui.whatsapp.results import (
    Accepted,
    ApiError,
    Classification,
    ErrorKind,
    SendResult,
    TransportFailure,
    TransportReason,
)

RETRY, THROTTLE, PAIR, PERMANENT, PAUSE = (
    ErrorKind.RETRY,
    ErrorKind.THROTTLE,
    ErrorKind.PAIR_LIMIT,
    ErrorKind.PERMANENT,
    ErrorKind.PAUSE,
)

#: Least wait before the pair limit lets the same recipient be messaged again (seconds).
PAIR_LIMIT_WAIT = 6.0
#: Waits for throttles: a Graph call-rate hit, and the minute-long switch to a higher tier.
THROTTLE_WAIT = 1.0
MAINTENANCE_WAIT = 60.0
#: Meta asks not to retry 131049 (engagement limit) sooner than a day.
ENGAGEMENT_WAIT = 24 * 3600.0

#: code -> (kind, least wait in seconds, short meaning). Wait 0 means "use retry.delays".
ERROR_TABLE: dict[int, tuple[ErrorKind, float, str]] = {
    1: (RETRY, 0.0, "unknown API error"),
    2: (RETRY, 0.0, "temporary API service error"),
    131000: (RETRY, 0.0, "something went wrong at Meta"),
    131016: (RETRY, 0.0, "service unavailable"),
    131053: (RETRY, 0.0, "media upload error"),
    4: (THROTTLE, THROTTLE_WAIT, "too many API calls"),
    80007: (THROTTLE, THROTTLE_WAIT, "WhatsApp Business Account rate limit hit"),
    130429: (THROTTLE, THROTTLE_WAIT, "throughput limit of the phone number hit"),
    131057: (THROTTLE, MAINTENANCE_WAIT, "account in maintenance mode (throughput upgrade)"),
    131056: (PAIR, PAIR_LIMIT_WAIT, "too many messages to this recipient too fast"),
    100: (PERMANENT, 0.0, "invalid parameter"),
    131008: (PERMANENT, 0.0, "required parameter missing"),
    131009: (PERMANENT, 0.0, "parameter value not valid"),
    131021: (PERMANENT, 0.0, "recipient is the sender"),
    131026: (PERMANENT, 0.0, "message undeliverable (not on WhatsApp or old app)"),
    131047: (PERMANENT, 0.0, "re-engagement window closed"),
    131049: (PERMANENT, ENGAGEMENT_WAIT, "not delivered to keep engagement healthy"),
    131050: (PERMANENT, 0.0, "user stopped marketing messages"),
    131051: (PERMANENT, 0.0, "unsupported message type"),
    131052: (PERMANENT, 0.0, "media download error"),
    130472: (PERMANENT, 0.0, "number part of an experiment"),
    132000: (PERMANENT, 0.0, "template parameter count mismatch"),
    132005: (PERMANENT, 0.0, "hydrated template text too long"),
    132012: (PERMANENT, 0.0, "template parameter format mismatch"),
    135000: (PERMANENT, 0.0, "generic user error"),
    132001: (PAUSE, 0.0, "template does not exist in that language"),
    132007: (PAUSE, 0.0, "template format policy violated"),
    132015: (PAUSE, 0.0, "template paused for low quality"),
    132016: (PAUSE, 0.0, "template disabled for low quality"),
    0: (PAUSE, 0.0, "access token invalid or expired"),
    190: (PAUSE, 0.0, "access token invalid or expired"),
    3: (PAUSE, 0.0, "capability or permission missing"),
    10: (PAUSE, 0.0, "permission denied"),
    131005: (PAUSE, 0.0, "access denied"),
    131031: (PAUSE, 0.0, "business account locked"),
    131042: (PAUSE, 0.0, "payment or eligibility problem"),
    131048: (PAUSE, 0.0, "spam rate limit hit"),
    131064: (PAUSE, 0.0, "number restricted for quality"),
    368: (PAUSE, 0.0, "temporarily blocked for policy violations"),
    131037: (PAUSE, 0.0, "display name not approved"),
    131045: (PAUSE, 0.0, "certificate problem"),
    133010: (PAUSE, 0.0, "phone number not registered"),
    **{code: (PAUSE, 0.0, "permission denied") for code in range(200, 300)},
}

#: Codes after which the number must never be messaged again.
SUPPRESS_CODES = frozenset({131050})

_TRANSPORT_MEANING = {
    TransportReason.CONNECT: "could not connect (not sent)",
    TransportReason.READ_TIMEOUT: "no answer in time (may have been sent)",
    TransportReason.RESET: "connection dropped (may have been sent)",
    TransportReason.PROTOCOL: "garbled answer",
    TransportReason.OTHER: "network problem",
}


def classify(result: SendResult) -> Classification | None:
    """What the sender does about ``result``; None when the message was accepted."""
    if isinstance(result, Accepted):
        return None
    if isinstance(result, TransportFailure):
        return Classification(
            RETRY, 0.0, _TRANSPORT_MEANING[result.reason], possibly_sent=result.possibly_sent
        )
    return _classify_api_error(result)


def _classify_api_error(error: ApiError) -> Classification:
    entry = ERROR_TABLE.get(error.code) if error.code is not None else None
    if entry is not None:
        kind, wait, meaning = entry
        return Classification(kind, wait, meaning, suppress=error.code in SUPPRESS_CODES)
    if error.http_status >= 500:
        return Classification(RETRY, 0.0, f"server error HTTP {error.http_status}")
    raw = error.title or f"HTTP {error.http_status}"
    if error.details:
        raw = f"{raw}: {error.details}"
    return Classification(PERMANENT, 0.0, f"unknown error {error.code}: {raw}")


def describe_code(code: int | None) -> str:
    """A short meaning of ``code`` for the UI (``"unknown error"`` for codes not in the table)."""
    if code is None:
        return "network or server problem"
    entry = ERROR_TABLE.get(code)
    return entry[2] if entry else f"unknown error {code}"
