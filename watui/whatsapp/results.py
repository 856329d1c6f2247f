"""What one send request came to: accepted, an API error, or a transport failure.

These small immutable types are the contract between the client (which makes them), the
classification table (which says what to do about them) and the engine (which acts).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    """What the sender does about a failed request."""

    RETRY = "retry"  # transient: try again after retry.delays
    THROTTLE = "throttle"  # too fast: slow the pacer, then retry
    PAIR_LIMIT = "pair_limit"  # this recipient got too many too fast: retry it after the pair window
    PERMANENT = "permanent"  # this recipient or payload is wrong: never retried
    PAUSE = "pause"  # account-level trouble: the campaign stops at once


class TransportReason(StrEnum):
    CONNECT = "connect"  # never reached the server: certainly not sent
    READ_TIMEOUT = "read_timeout"  # sent, no answer in time: may have been accepted
    RESET = "reset"  # connection dropped mid-request
    PROTOCOL = "protocol"  # garbled answer
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Accepted:
    """HTTP 200 with a message id. The API took the request; only webhooks prove delivery."""

    wamid: str
    wa_id: str | None
    message_status: str  # accepted / held_for_quality_assessment / paused
    latency: float  # seconds


@dataclass(frozen=True, slots=True)
class ApiError:
    """The API answered with an error object (classified by ``code``, not by HTTP status)."""

    http_status: int
    code: int | None
    subcode: int | None
    title: str  # error.message, e.g. "(#130429) Rate limit hit"
    details: str  # error.error_data.details, may be empty
    fbtrace_id: str | None
    latency: float


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """No usable answer. ``possibly_sent`` is true when the request may have been accepted."""

    reason: TransportReason
    detail: str
    latency: float

    @property
    def possibly_sent(self) -> bool:
        return self.reason in (TransportReason.READ_TIMEOUT, TransportReason.RESET)


SendResult = Accepted | ApiError | TransportFailure


@dataclass(frozen=True, slots=True)
class Classification:
    """What to do about a failed send: the kind, the least wait before trying again, and why."""

    kind: ErrorKind
    wait: float  # seconds before this recipient may be tried again (0: use retry.delays)
    meaning: str  # a short human explanation for the UI
    possibly_sent: bool = False  # the request may have been accepted (read timeout)
    suppress: bool = False  # the user opted out: never message this number again


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    requests: int
    new_connections: int

    @property
    def reuse(self) -> float | None:
        """Share of requests that went over an already open connection."""
        if self.requests == 0:
            return None
        return max(0.0, 1.0 - self.new_connections / self.requests)
