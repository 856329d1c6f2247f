"""What a ``failed`` status after acceptance means for its recipient, by the same error table
as a synchronous answer (``whatsapp.errors``): the storage's applier asks this for each one."""

from __future__ import annotations

from watui.storage.deliveries import LateAction, LateFailure, LateVerdict
from watui.whatsapp.errors import classify_code, retry_delay
from watui.whatsapp.results import ErrorKind


def judge_late_failure(failure: LateFailure) -> LateVerdict:
    """Account trouble pauses the campaign; an opt-out fails and is recorded; a transient
    error is retried within the campaign's retry policy; a permanent one fails, unless the
    table says when it may be tried again (131049: after 24 h) and the campaign is still on."""
    verdict = classify_code(failure.code, failure.title)
    label = str(failure.code) if failure.code is not None else "no code"
    if verdict.kind is ErrorKind.PAUSE:
        reason = f"{label}: {verdict.meaning} (reported after acceptance)"
        return LateVerdict(LateAction.PAUSE, verdict.kind.value, reason)
    retries_used = failure.attempts - 1
    retryable = verdict.kind is not ErrorKind.PERMANENT or verdict.wait > 0
    if (
        verdict.suppress
        or not retryable
        or failure.campaign_ended
        or retries_used >= failure.policy.max_retries
    ):
        return LateVerdict(
            LateAction.FAILED, verdict.kind.value, verdict.meaning, opted_out=verdict.suppress
        )
    at = failure.now + retry_delay(retries_used, verdict.wait, failure.policy.delays)
    return LateVerdict(LateAction.RETRY, verdict.kind.value, verdict.meaning, retry_at=at)
