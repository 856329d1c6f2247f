"""What an answer means for one recipient, row by row, without a database or a network.

``decide`` is pure: the same recipient, answer, policy and ``now`` always give the same decision,
so each row below is the whole story of one answer. What the sender then writes is checked
against a real database in test_engine_logic.py.
"""

from __future__ import annotations

import pytest

from watui.engine.decisions import (
    TITLE_LIMIT,
    Decision,
    Failed,
    InDoubt,
    PauseCampaign,
    Problem,
    Retry,
    Sent,
    decide,
)
from watui.storage.campaigns import RetryPolicy
from watui.storage.schema import RecipientStatus
from watui.storage.sending.outcomes import ClaimedRecipient
from watui.whatsapp.errors import ERROR_TABLE
from watui.whatsapp.results import (
    Accepted,
    ApiError,
    ErrorKind,
    SendResult,
    TransportFailure,
    TransportReason,
)

NOW = 1_000.0
#: The settings' defaults: two retries, 5 s then 10 s.
DEFAULT = RetryPolicy(max_retries=2, delays=(5.0, 10.0), max_retries_from="settings",
                      delays_from="settings")
RETRY, THROTTLE, PAIR, PERMANENT, PAUSE = (
    ErrorKind.RETRY, ErrorKind.THROTTLE, ErrorKind.PAIR_LIMIT, ErrorKind.PERMANENT, ErrorKind.PAUSE,
)


def policy(max_retries: int, *delays: float) -> RetryPolicy:
    return RetryPolicy(max_retries, delays, "campaign", "campaign")


def recipient(attempts: int) -> ClaimedRecipient:
    return ClaimedRecipient(id=7, phone="+34612345678", params={"body": ["Ana"]}, attempts=attempts)


def api(code: int | None, title: str = "error", *, status: int = 400, details: str = "") -> ApiError:
    return ApiError(status, code, None, title, details, "trace", 0.2)


def transport(reason: TransportReason) -> TransportFailure:
    return TransportFailure(reason, "detail", 30.0)


# (what happened, attempts before this one, policy, what it means)
ROWS: list[tuple[str, SendResult, int, RetryPolicy, Decision]] = [
    ("accepted is sent, with its message id",
     Accepted("wamid.1", "34612345678", "accepted", 0.2), 0, DEFAULT, Sent("wamid.1")),
    ("accepted after retries is sent",
     Accepted("wamid.2", None, "accepted", 0.2), 2, DEFAULT, Sent("wamid.2")),
    # transient API errors: the policy's delays, the last one repeating
    ("transient: first retry after the first delay",
     api(131000, "(#131000) Something went wrong", status=500), 0, DEFAULT,
     Retry(NOW + 5, Problem(RETRY, 131000, "131000", "(#131000) Something went wrong"))),
    ("transient: second retry after the second delay",
     api(131000, "oops", status=500), 1, DEFAULT, Retry(NOW + 10, Problem(RETRY, 131000, "131000", "oops"))),
    ("transient: retries used up is failed",
     api(131000, "oops", status=500), 2, DEFAULT, Failed(Problem(RETRY, 131000, "131000", "oops"))),
    ("transient: past the delays the last one repeats",
     api(2, "temporary"), 4, policy(6, 5.0, 10.0), Retry(NOW + 10, Problem(RETRY, 2, "2", "temporary"))),
    ("a campaign's own delays",
     api(131016, "unavailable"), 2, policy(3, 30.0, 60.0, 120.0),
     Retry(NOW + 120, Problem(RETRY, 131016, "131016", "unavailable"))),
    ("no retries at all: the first transient error fails",
     api(131016, "unavailable"), 0, policy(0, 5.0), Failed(Problem(RETRY, 131016, "131016", "unavailable"))),
    ("the API's details follow its title",
     api(131053, "(#131053) Media upload error", details="bad media"), 0, DEFAULT,
     Retry(NOW + 5, Problem(RETRY, 131053, "131053", "(#131053) Media upload error — bad media"))),
    # throttles: retried, after the delay or the error's own wait, whichever is longer
    ("throughput limit: the policy's delay is longer than its second",
     api(130429, "(#130429) Rate limit hit"), 0, DEFAULT,
     Retry(NOW + 5, Problem(THROTTLE, 130429, "130429", "(#130429) Rate limit hit"))),
    ("throughput limit: its second is longer than a short delay",
     api(130429, "limit"), 0, policy(2, 0.2), Retry(NOW + 1, Problem(THROTTLE, 130429, "130429", "limit"))),
    ("app call limit: a minute",
     api(4, "too many calls"), 0, DEFAULT, Retry(NOW + 60, Problem(THROTTLE, 4, "4", "too many calls"))),
    ("account rate limit: a minute",
     api(80007, "limit"), 1, DEFAULT, Retry(NOW + 60, Problem(THROTTLE, 80007, "80007", "limit"))),
    ("throttled with the retries used up is failed",
     api(130429, "limit"), 2, DEFAULT, Failed(Problem(THROTTLE, 130429, "130429", "limit"))),
    ("HTTP 429 without a code is a throttle",
     api(None, "Too Many Requests", status=429), 0, policy(2, 0.5),
     Retry(NOW + 1, Problem(THROTTLE, None, "HTTP 429", "Too Many Requests"))),
    # the pair limit: this recipient again after its window
    ("pair rate limit: six seconds",
     api(131056, "pair"), 0, policy(2, 1.0), Retry(NOW + 6, Problem(PAIR, 131056, "131056", "pair"))),
    # permanent: never retried, whatever the wait or the retries left
    ("undeliverable is failed at once",
     api(131026, "(#131026) Message undeliverable"), 0, DEFAULT,
     Failed(Problem(PERMANENT, 131026, "131026", "(#131026) Message undeliverable"))),
    ("engagement: a day's wait is still failed",
     api(131049, "healthy ecosystem"), 0, DEFAULT,
     Failed(Problem(PERMANENT, 131049, "131049", "healthy ecosystem"))),
    ("opted out is failed, and the number suppressed",
     api(131050, "stopped"), 0, DEFAULT,
     Failed(Problem(PERMANENT, 131050, "131050", "stopped"), opted_out=True)),
    ("an unknown code is failed",
     api(999_999, "new error"), 0, DEFAULT, Failed(Problem(PERMANENT, 999_999, "999999", "new error"))),
    ("a 4xx without a code is failed",
     api(None, "Bad Request"), 0, DEFAULT, Failed(Problem(PERMANENT, None, "HTTP 400", "Bad Request"))),
    ("a 5xx without a code is retried",
     api(None, "Bad Gateway", status=502), 0, DEFAULT,
     Retry(NOW + 5, Problem(RETRY, None, "HTTP 502", "Bad Gateway"))),
    # the account, not the recipient: pause, the recipient back as it was
    ("expired token pauses; a first try goes back to queued",
     api(190, "(#190) Token expired"), 0, DEFAULT,
     PauseCampaign("190: access token expired or invalid", RecipientStatus.QUEUED,
                   Problem(PAUSE, 190, "190", "(#190) Token expired"))),
    ("a retried recipient goes back to retry",
     api(131048, "spam"), 1, DEFAULT,
     PauseCampaign("131048: spam rate limit hit: the number is restricted", RecipientStatus.RETRY,
                   Problem(PAUSE, 131048, "131048", "spam"))),
    ("pauses even with the retries used up",
     api(0, "auth"), 2, DEFAULT,
     PauseCampaign("0: access token invalid or expired", RecipientStatus.RETRY,
                   Problem(PAUSE, 0, "0", "auth"))),
    ("a permission code outside the table pauses",
     api(250, "no permission"), 0, DEFAULT,
     PauseCampaign("250: permission denied", RecipientStatus.QUEUED,
                   Problem(PAUSE, 250, "250", "no permission"))),
    # transport failures: not sent is retried, maybe sent is in doubt
    ("could not connect is retried",
     transport(TransportReason.CONNECT), 0, DEFAULT,
     Retry(NOW + 5, Problem(RETRY, None, "connect", "connect: detail"))),
    ("could not connect with the retries used up is failed",
     transport(TransportReason.CONNECT), 2, DEFAULT,
     Failed(Problem(RETRY, None, "connect", "connect: detail"))),
    ("a failure before the answer is retried",
     transport(TransportReason.OTHER), 1, DEFAULT,
     Retry(NOW + 10, Problem(RETRY, None, "other", "other: detail"))),
    ("no answer in time is in doubt",
     transport(TransportReason.READ_TIMEOUT), 0, DEFAULT,
     InDoubt(Problem(RETRY, None, "read_timeout", "read_timeout: detail"))),
    ("a dropped connection is in doubt",
     transport(TransportReason.RESET), 0, DEFAULT, InDoubt(Problem(RETRY, None, "reset", "reset: detail"))),
    ("a garbled answer is in doubt",
     transport(TransportReason.PROTOCOL), 0, DEFAULT,
     InDoubt(Problem(RETRY, None, "protocol", "protocol: detail"))),
    ("in doubt even with the retries used up",
     transport(TransportReason.READ_TIMEOUT), 2, DEFAULT,
     InDoubt(Problem(RETRY, None, "read_timeout", "read_timeout: detail"))),
]


@pytest.mark.parametrize(
    ("result", "attempts", "retry", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_an_answer_means_one_decision(
    result: SendResult, attempts: int, retry: RetryPolicy, expected: Decision
) -> None:
    assert decide(recipient(attempts), result, retry, NOW) == expected


#: What each kind of the error table comes to on a first try with retries left.
BY_KIND = {RETRY: Retry, THROTTLE: Retry, PAIR: Retry, PERMANENT: Failed, PAUSE: PauseCampaign}


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
def test_every_code_of_the_error_table_decides_by_its_kind(code: int) -> None:
    kind, wait, meaning = ERROR_TABLE[code]
    decision = decide(recipient(0), api(code, f"(#{code}) title"), DEFAULT, NOW)
    assert type(decision) is BY_KIND[kind]
    assert not isinstance(decision, Sent)
    assert decision.problem == Problem(kind, code, str(code), f"(#{code}) title")
    if isinstance(decision, Retry):
        assert decision.at == NOW + max(DEFAULT.delays[0], wait)
    if isinstance(decision, PauseCampaign):
        assert decision.reason == f"{code}: {meaning}"


def test_the_time_to_retry_comes_from_now_not_the_clock() -> None:
    answer = api(131000, "oops", status=500)
    why = Problem(RETRY, 131000, "131000", "oops")
    assert decide(recipient(0), answer, DEFAULT, 0.0) == Retry(5.0, why)
    assert decide(recipient(0), answer, DEFAULT, 50.0) == Retry(55.0, why)


def test_long_titles_are_cut_to_the_stored_length() -> None:
    decision = decide(recipient(0), api(131026, "x" * 400, details="y" * 400), DEFAULT, NOW)
    assert isinstance(decision, Failed)
    assert decision.problem.title == ("x" * 400 + " — " + "y" * 400)[:TITLE_LIMIT]
    long_detail = TransportFailure(TransportReason.CONNECT, "z" * 600, 1.0)
    decision = decide(recipient(0), long_detail, DEFAULT, NOW)
    assert isinstance(decision, Retry)
    assert decision.problem.title == ("connect: " + "z" * 600)[:TITLE_LIMIT]


def test_decisions_are_frozen() -> None:
    decision = decide(recipient(0), api(131000, "oops"), DEFAULT, NOW)
    assert isinstance(decision, Retry)
    with pytest.raises(AttributeError):
        decision.problem = Problem(RETRY, 1, "1", "changed")  # type: ignore[misc]
