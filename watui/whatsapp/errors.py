"""The error table: every Cloud API error code we know, what it means and what the sender does.

Classify by ``error.code``, never by HTTP status alone (../shared/docs/cloud-api.md). Unknown codes
are permanent, with the API's own text kept so a person can look it up.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    ErrorKind.RETRY, ErrorKind.THROTTLE, ErrorKind.PAIR_LIMIT, ErrorKind.PERMANENT, ErrorKind.PAUSE,
)

#: The pair rate limit: about one message every 6 s to the same recipient from the same number.
PAIR_WINDOW = 6.0
#: 131049: Meta declined to deliver to keep engagement healthy; not before 24 h.
DAY = 86_400.0

#: code -> (kind, least wait in seconds before this recipient may be tried again, meaning)
ERROR_TABLE: dict[int, tuple[ErrorKind, float, str]] = {
    0: (PAUSE, 0, "access token invalid or expired"),
    1: (RETRY, 0, "unknown API error"),
    2: (RETRY, 0, "temporary API service error"),
    3: (PAUSE, 0, "capability or permission missing"),
    4: (THROTTLE, 60, "too many API calls from this app"),
    10: (PAUSE, 0, "permission denied"),
    100: (PERMANENT, 0, "invalid parameter"),
    190: (PAUSE, 0, "access token expired or invalid"),
    200: (PAUSE, 0, "permission denied"),
    368: (PAUSE, 0, "temporarily blocked for policy violations"),
    80007: (THROTTLE, 60, "WhatsApp Business Account rate limit hit"),
    130429: (THROTTLE, 1, "throughput limit of the phone number reached"),
    130472: (PERMANENT, 0, "recipient is part of an experiment"),
    131000: (RETRY, 0, "something went wrong at Meta"),
    131005: (PAUSE, 0, "access denied"),
    131008: (PERMANENT, 0, "required parameter missing"),
    131009: (PERMANENT, 0, "parameter value invalid"),
    131016: (RETRY, 0, "service unavailable"),
    131021: (PERMANENT, 0, "recipient is the sender"),
    131026: (PERMANENT, 0, "message undeliverable (not on WhatsApp or an old app)"),
    131031: (PAUSE, 0, "business account locked"),
    131037: (PAUSE, 0, "display name not approved"),
    131042: (PAUSE, 0, "payment or eligibility problem"),
    131045: (PAUSE, 0, "phone number certificate problem"),
    131047: (PERMANENT, 0, "re-engagement window closed"),
    131048: (PAUSE, 0, "spam rate limit hit: the number is restricted"),
    131049: (PERMANENT, DAY, "not delivered, to keep engagement healthy (retry after 24 h)"),
    131050: (PERMANENT, 0, "recipient stopped marketing messages"),
    131051: (PERMANENT, 0, "unsupported message type"),
    131052: (PERMANENT, 0, "media download failed"),
    131053: (RETRY, 0, "media upload failed"),
    131056: (PAIR, PAIR_WINDOW, "too many messages to this recipient (pair rate limit)"),
    131057: (THROTTLE, 60, "account in maintenance mode (throughput upgrade)"),
    131064: (PAUSE, 0, "quality restriction on the number"),
    132000: (PERMANENT, 0, "template parameter count does not match"),
    132001: (PAUSE, 0, "template does not exist in this language"),
    132005: (PERMANENT, 0, "hydrated template text too long"),
    132007: (PAUSE, 0, "template format policy violated"),
    132012: (PERMANENT, 0, "template parameter format wrong"),
    132015: (PAUSE, 0, "template paused for low quality"),
    132016: (PAUSE, 0, "template disabled for low quality"),
    133010: (PAUSE, 0, "phone number not registered"),
    135000: (PERMANENT, 0, "generic user error"),
}
#: 200-299: permission errors, all account-level.
PERMISSION_RANGE = range(200, 300)
#: Codes after which the number must never be messaged again.
SUPPRESS = frozenset({131050})
#: Codes that say Meta's side is unwell rather than the recipient (see ``api_unwell``).
API_UNWELL_CODES = frozenset({1, 2, 131000, 131016})

_TRANSPORT: dict[TransportReason, tuple[str, bool]] = {
    TransportReason.CONNECT: ("could not connect: not sent", False),
    TransportReason.READ_TIMEOUT: ("no answer in time: may have been accepted", True),
    TransportReason.RESET: ("connection dropped mid-request: may have been accepted", True),
    TransportReason.PROTOCOL: ("garbled answer: may have been accepted", True),
    TransportReason.OTHER: ("request failed before an answer", False),
}


def classify(result: SendResult) -> Classification | None:
    """What to do about a result; None when it was accepted."""
    if isinstance(result, Accepted):
        return None
    if isinstance(result, TransportFailure):
        meaning, possibly_sent = _TRANSPORT[result.reason]
        return Classification(RETRY, 0, meaning, possibly_sent=possibly_sent)
    return _classify_api_error(result)


def _classify_api_error(error: ApiError) -> Classification:
    code = error.code
    known = ERROR_TABLE.get(code) if code is not None else None
    if known is not None:
        kind, wait, meaning = known
        return Classification(kind, wait, meaning, suppress=code in SUPPRESS)
    if code is not None and code in PERMISSION_RANGE:
        return Classification(PAUSE, 0, "permission denied")
    if code is None and error.http_status >= 500:
        return Classification(RETRY, 0, f"server error (HTTP {error.http_status})")
    if code is None and error.http_status == 429:
        return Classification(THROTTLE, 1, "too many requests (HTTP 429)")
    raw = error.title or f"HTTP {error.http_status}"
    return Classification(PERMANENT, 0, f"unknown error: {raw}"[:300])


def api_unwell(result: SendResult) -> bool:
    """Whether an answer says the API, or the way to it, is unwell rather than this recipient:
    no connection was made, HTTP 5xx without an error code, or one of API_UNWELL_CODES.

    One such answer is still the recipient's (retried as the table says); many in a row, across
    recipients, open the sender's circuit breaker (``watui.engine.breaker``), and then nobody is
    charged a retry for them."""
    if isinstance(result, Accepted):
        return False
    if isinstance(result, TransportFailure):
        return result.reason is TransportReason.CONNECT
    if result.code is None:
        return result.http_status >= 500
    return result.code in API_UNWELL_CODES


def classify_code(code: int | None, title: str = "") -> Classification:
    """What an error code means on its own: a ``failed`` status webhook carries a code, not an
    HTTP answer."""
    return _classify_api_error(ApiError(200, code, None, title, "", None, 0.0))


def retry_delay(retries_used: int, wait: float, delays: Sequence[float]) -> float:
    """Seconds before the next try: the policy's delay for this retry (its last one repeats),
    or longer when the error itself says how long to wait (a throttle, the pair limit, 24 h)."""
    return max(delays[min(retries_used, len(delays) - 1)], wait)


def describe_code(code: int | None) -> str:
    """A short human meaning for an error code (for tables and exports)."""
    if code is None:
        return "no API answer"
    known = ERROR_TABLE.get(code)
    if known is not None:
        return known[2]
    if code in PERMISSION_RANGE:
        return "permission denied"
    return "unknown error code"
