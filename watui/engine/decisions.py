"""What an answer means for one recipient: sent, try again at a time, failed, in doubt, or
pause the whole campaign.

Pure (no I/O, and no clock: ``now`` is an argument) so that every row of the error table can be
checked without a database or a network; the sender turns a decision into an outcome row and
its metrics. It runs once per message, a thousand times a second: one small object per answer,
no copies, no logging.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watui.rules import RecipientStatus
from watui.storage.rows import RetryPolicy
from watui.storage.sending.outcomes import ClaimedRecipient
from watui.whatsapp.errors import classify, retry_delay
from watui.whatsapp.results import (
    Accepted,
    ApiError,
    Classification,
    ErrorKind,
    SendResult,
    TransportFailure,
)

#: The longest error title kept (the recipient's last error and the attempt log).
TITLE_LIMIT = 500
#: Pauses about the template, not the number: every number would meet them, so they pause the
#: whole campaign; any other pause stops only the number that met it.
TEMPLATE_PAUSE_CODES = frozenset({132001, 132007, 132015, 132016})


@dataclass(frozen=True, slots=True)
class Problem:
    """What went wrong with one request, as it is stored and counted."""

    kind: ErrorKind  # also the attempt log's outcome
    code: int | None  # the API's error code; None for a transport failure or a bare HTTP error
    label: str  # what errors are counted under: the code, "HTTP 503" or the transport reason
    title: str  # the API's own words, or the transport failure's


@dataclass(frozen=True, slots=True)
class Sent:
    """Accepted by the API (only webhooks prove delivery)."""

    wamid: str


@dataclass(frozen=True, slots=True)
class Retry:
    """Transient: the recipient is tried again from ``at`` (wall-clock seconds)."""

    at: float
    problem: Problem


@dataclass(frozen=True, slots=True)
class Failed:
    """Never tried again: a permanent error, or the retries are used up. ``opted_out``: the
    person stopped marketing messages (131050): the number goes on the suppression list."""

    problem: Problem
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class InDoubt:
    """The request may have been accepted: never resent automatically, a person decides."""

    problem: Problem


@dataclass(frozen=True, slots=True)
class PauseCampaign:
    """The account was refused, not the recipient: the campaign pauses and the recipient goes
    back to the queue as it was, this attempt not counted. In a campaign of several numbers
    it stops only the number that met it, unless ``pauses_whole_campaign``."""

    reason: str
    back_to: RecipientStatus
    problem: Problem


@dataclass(frozen=True, slots=True)
class ApiUnwell:
    """Not the recipient's trouble: the API, or the way to it, was unwell (the circuit breaker
    judged the answer part of an outage), or it counted a send early (the pacer judged a
    throttle answer jitter). The recipient goes back as it was, this attempt not counted."""

    back_to: RecipientStatus
    problem: Problem
    logged_as: str = "outage"  # what the attempt log says of the request


#: What the attempt log says of a throttle answer the pacer judged jitter (``decide_jitter``).
JITTER_OUTCOME = "throttle-jitter"

#: Every decision but Sent: each carries the Problem it is about.
ProblemDecision = Retry | Failed | InDoubt | PauseCampaign
Decision = Sent | ProblemDecision


def decide(
    row: ClaimedRecipient, result: SendResult, policy: RetryPolicy, now: float
) -> Decision:
    """What ``result`` means for ``row``, which had ``row.attempts`` requests before this one."""
    if isinstance(result, Accepted):
        return Sent(result.wamid)
    verdict = classify(result)
    assert verdict is not None
    problem = _problem(result, verdict.kind)
    if verdict.kind is ErrorKind.PAUSE:
        return PauseCampaign(f"{problem.label}: {verdict.meaning}", _back_status(row), problem)
    if verdict.possibly_sent:
        return InDoubt(problem)
    if verdict.kind is ErrorKind.PERMANENT or row.attempts >= policy.max_retries:
        return Failed(problem, opted_out=verdict.suppress)
    return Retry(now + _retry_delay(row.attempts, verdict, policy), problem)


def decide_in_outage(row: ClaimedRecipient, result: SendResult) -> ApiUnwell:
    """What an answer the circuit breaker called the API's means for ``row``: nothing; it goes
    back to the queue (or to waiting for its retry) with its attempts as they were."""
    assert not isinstance(result, Accepted), "an accepted message is never the API's trouble"
    return ApiUnwell(_back_status(row), _problem(result, ErrorKind.RETRY))


def decide_jitter(row: ClaimedRecipient, result: SendResult) -> ApiUnwell:
    """What a throttle answer the pacer judged jitter means for ``row`` (the API counted a
    send or two early while the pace was full): the number's pace, not the recipient's trouble.
    It goes back due at once, this attempt not counted: the policy's delay would resend it
    seconds after the others and, near a campaign's end, stretch the whole send by as much."""
    assert isinstance(result, ApiError), "only an API answer carries a throttle code"
    return ApiUnwell(_back_status(row), _problem(result, ErrorKind.THROTTLE), JITTER_OUTCOME)


def _problem(result: ApiError | TransportFailure, kind: ErrorKind) -> Problem:
    code = result.code if isinstance(result, ApiError) else None
    return Problem(kind, code, _code_label(result), _error_title(result))


def _code_label(result: ApiError | TransportFailure) -> str:
    """The key a failed request is counted under in the metrics' errors by code."""
    if isinstance(result, ApiError):
        return str(result.code) if result.code is not None else f"HTTP {result.http_status}"
    return result.reason.value


def _error_title(result: ApiError | TransportFailure) -> str:
    if isinstance(result, ApiError):
        detail = f" — {result.details}" if result.details else ""
        return f"{result.title}{detail}"[:TITLE_LIMIT]
    return f"{result.reason.value}: {result.detail}"[:TITLE_LIMIT]


def _retry_delay(retries_used: int, verdict: Classification, policy: RetryPolicy) -> float:
    """The policy's delay for this retry (its last one repeats), or longer when the error
    itself says how long to wait (a throttle, the pair limit)."""
    return retry_delay(retries_used, verdict.wait, policy.delays)


def _back_status(row: ClaimedRecipient) -> RecipientStatus:
    return RecipientStatus.QUEUED if row.attempts == 0 else RecipientStatus.RETRY


# ----- a campaign of several numbers -----


def pauses_whole_campaign(problem: Problem) -> bool:
    """Whether a pause is the template's (every number would meet it: the campaign pauses)
    rather than the sending number's (that number stops alone)."""
    return problem.code in TEMPLATE_PAUSE_CODES


@dataclass(frozen=True, slots=True)
class KeepSending:
    """Numbers that can still send: the paused numbers' recipients wait for them."""


@dataclass(frozen=True, slots=True)
class Reassign:
    """Move the paused numbers' pending recipients to ``to`` (``rules.sender_for`` over them)."""

    paused: tuple[str, ...]
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PauseAll:
    """No number can send: the campaign pauses, naming each number's reason."""

    reason: str


NumbersDecision = KeepSending | Reassign | PauseAll


def after_number_pauses(
    numbers: Sequence[str], paused: Mapping[str, str], *, reassign: bool
) -> NumbersDecision:
    """What a campaign of several ``numbers`` does when some are ``paused`` (number -> reason)
    by account-level errors: go on with the others (their recipients moved to them when
    ``reassign``), or pause once none is left."""
    able = tuple(number for number in numbers if number not in paused)
    if not able:
        return PauseAll(numbers_pause_reason(paused))
    if reassign and paused:
        return Reassign(tuple(paused), able)
    return KeepSending()


def numbers_pause_reason(paused: Mapping[str, str]) -> str:
    """Why a campaign of several numbers paused: each number's own reason."""
    return "no number can send: " + "; ".join(
        f"number {number}: {reason}" for number, reason in paused.items()
    )
