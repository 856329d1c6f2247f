"""What a claim hands the engine and what the engine hands back to be written.

Apart from the claim and flush code so that each database's batch module can take and give
them without importing the module that chooses between those batch modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watui.contracts import RecipientParams
from watui.storage.schema import attempts


@dataclass(slots=True)
class ClaimedRecipient:
    id: int
    phone: str
    params: RecipientParams
    attempts: int  # requests made before this claim


@dataclass(frozen=True, slots=True)
class OptOut:
    """The person stopped marketing messages: a 131050 for ``phone`` (E.164), in the send's
    answer (``after_acceptance`` False) or a status after it; storage.opt_outs records it."""

    phone: str
    code: int | None
    title: str | None
    at: float  # when it happened: Meta's clock for a status, ours for an answer
    after_acceptance: bool
    user_id: str | None = None
    phone_number_id: str | None = None  # the business number it was sent from, when known


@dataclass(slots=True)
class Outcome:
    """The result of one claimed row: its new state, and the attempt log row if a request went."""

    recipient_id: int
    status: str
    attempts: int
    next_attempt_at: float = 0.0
    wamid: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    possibly_sent: bool = False
    sent_at: float | None = None
    attempt: dict[str, Any] | None = None  # columns of `attempts`, None when nothing was sent
    opt_out: OptOut | None = None  # a 131050 answer: recorded in the same transaction


@dataclass(slots=True)
class FlushResult:
    written: int
    stale: int  # rows no longer ours (taken over after our lease expired): left untouched
    counts: dict[str, int] = field(default_factory=dict)


#: The keys of Outcome.attempt: every column of `attempts` but its id.
ATTEMPT_COLUMNS = tuple(column.name for column in attempts.c if column.name != "id")


def outcome_values(o: Outcome) -> tuple[Any, ...]:
    """An outcome's values in the order of sqlite_batches.RECORD_FIELDS and of
    postgres_batches.OUTCOME_COLUMNS."""
    return (o.recipient_id, o.status, o.attempts, o.next_attempt_at, o.wamid, o.error_code,
            o.error_title, 1 if o.possibly_sent else 0, o.sent_at)
