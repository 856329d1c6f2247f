"""The circuit breaker as a pure state machine (a clock passed in, no sleeping), the one rule of
which answers say the API is unwell, the decision for an answer during an outage, and the
OutageGuard that runs the breaker for the sender (events, figures, giving up)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.test_decisions import NOW, api, transport
from watui.engine import breaker as breaker_module
from watui.engine.breaker import (
    FIRST_WAIT,
    MAX_WAIT,
    TRIP_AFTER,
    BreakerState,
    Change,
    CircuitBreaker,
    Judgement,
)
from watui.engine.decisions import ApiUnwell, Problem, decide_in_outage
from watui.engine.metrics import EngineMetrics
from watui.engine.outage import Answer, OutageGuard
from watui.engine.window import FLOOR
from watui.rules import RecipientStatus, outage_line
from watui.storage.sending.outcomes import ClaimedRecipient
from watui.whatsapp.errors import api_unwell
from watui.whatsapp.results import Accepted, ErrorKind, SendResult, TransportFailure, TransportReason

ACCEPTED = Accepted("wamid.1", "15550000001", "accepted", 0.01)
REFUSED = TransportFailure(TransportReason.CONNECT, "connection refused", 0.01)


@pytest.mark.parametrize(("result", "unwell"), [
    (ACCEPTED, False),
    (REFUSED, True),
    (transport(TransportReason.READ_TIMEOUT), False),  # may have been accepted: in doubt
    (transport(TransportReason.RESET), False),
    (transport(TransportReason.OTHER), False),
    (api(None, status=500), True),
    (api(None, status=503), True),
    (api(None, status=429), False),
    (api(1, status=500), True),
    (api(2, status=500), True),
    (api(131000, status=500), True),
    (api(131016, status=503), True),
    (api(131026), False),
    (api(130429), False),
    (api(131048), False),
    (api(190, status=401), False),
])
def test_which_answers_say_the_api_is_unwell(result: SendResult, unwell: bool) -> None:
    assert api_unwell(result) is unwell


def closed_breaker() -> CircuitBreaker[str]:
    return CircuitBreaker()


def judge(
    breaker: CircuitBreaker[str], item: str, *, unwell: bool = True, evidence: bool = True,
    probe: bool = False, now: float = NOW, sent_at: float | None = None,
) -> Judgement[str]:
    """An answer at ``now`` to a request sent 10 ms before (or at ``sent_at``)."""
    return breaker.judge(item, unwell=unwell, evidence=evidence, probe=probe, now=now,
                         sent_at=now - 0.01 if sent_at is None else sent_at)


def trip(breaker: CircuitBreaker[str], now: float = NOW) -> Judgement[str]:
    judged: Judgement[str] = Judgement()
    for number in range(TRIP_AFTER):
        judged = judge(breaker, f"burst{number}", now=now)
    return judged


def test_trip_after_fits_the_smallest_window() -> None:
    """Held answers keep their window slots: a burst must fit in the smallest window."""
    assert TRIP_AFTER <= FLOOR


def test_a_lone_unwell_answer_is_held_then_the_recipients_own() -> None:
    breaker = closed_breaker()
    assert judge(breaker, "lone") == Judgement()
    assert breaker.held == 1
    assert judge(breaker, "next", unwell=False) == Judgement(own=("lone", "next"))
    assert breaker.state is BreakerState.CLOSED and breaker.held == 0


def test_a_burst_across_first_attempts_opens_and_is_the_apis() -> None:
    breaker = closed_breaker()
    judged = trip(breaker)
    assert judged == Judgement(api=tuple(f"burst{n}" for n in range(TRIP_AFTER)), change=Change.OPENED)
    assert breaker.state is BreakerState.OPEN and breaker.held == 0
    assert (breaker.opened_at, breaker.probe_at) == (NOW, NOW + FIRST_WAIT)


def test_a_success_sent_before_the_unwell_ones_does_not_clear_them() -> None:
    """Answers come out of order: a request sent before the API fell ill may succeed after
    the first failures came back; only a success sent after a failure shows it was lone."""
    breaker = closed_breaker()
    judge(breaker, "early", sent_at=NOW - 0.5)
    judge(breaker, "late", sent_at=NOW - 0.1)
    assert judge(breaker, "older ok", unwell=False, sent_at=NOW - 0.3) == Judgement(
        own=("early", "older ok"))
    assert breaker.held == 1
    for number in range(TRIP_AFTER - 1):
        judge(breaker, f"more{number}")
    assert breaker.state is BreakerState.OPEN, "the held one still counts toward the burst"


def test_a_healthy_answer_between_breaks_the_burst() -> None:
    breaker = closed_breaker()
    for number in range(TRIP_AFTER - 1):
        judge(breaker, f"a{number}")
    judge(breaker, "ok", unwell=False)
    for number in range(TRIP_AFTER - 1):
        assert judge(breaker, f"b{number}").change is None
    assert breaker.state is BreakerState.CLOSED


def test_retries_alone_never_open_it_but_go_back_with_a_burst() -> None:
    """Recipients already retried are weak evidence: ten failing on their own, retried
    together, are not an outage. Held with a burst of first attempts, they go back too."""
    breaker = closed_breaker()
    for number in range(TRIP_AFTER * 3):
        assert judge(breaker, f"retry{number}", evidence=False) == Judgement()
    assert breaker.state is BreakerState.CLOSED
    assert len(breaker.release_held()) == TRIP_AFTER * 3
    judge(breaker, "retry", evidence=False)
    judged = trip(breaker)
    assert judged.change is Change.OPENED and judged.api[0] == "retry"


def test_while_open_unwell_answers_are_the_apis_and_healthy_ones_the_recipients() -> None:
    breaker = closed_breaker()
    trip(breaker)
    assert judge(breaker, "late", now=NOW + 0.5) == Judgement(api=("late",))
    assert judge(breaker, "ok", unwell=False, now=NOW + 0.5) == Judgement(own=("ok",))
    assert breaker.state is BreakerState.OPEN, "only the probe's answer closes it"


def test_probes_wait_longer_each_time_up_to_a_minute() -> None:
    breaker = closed_breaker()
    trip(breaker)
    now = NOW
    waits = []
    for number in range(9):
        assert not breaker.start_probe(breaker.probe_at - 0.001)
        now = breaker.probe_at
        assert breaker.start_probe(now)
        assert breaker.state is BreakerState.PROBING
        assert not breaker.start_probe(now), "one probe at a time"
        assert judge(breaker, "old", now=now) == Judgement(api=("old",)), "not the probe's answer"
        judged = judge(breaker, f"probe{number}", probe=True, now=now + 0.1)
        assert judged == Judgement(api=(f"probe{number}",), change=Change.PROBE_FAILED)
        waits.append(breaker.probe_at - (now + 0.1))
    assert waits == [2, 4, 8, 16, 32, MAX_WAIT, MAX_WAIT, MAX_WAIT, MAX_WAIT]
    assert breaker.opened_at == NOW


def test_the_probes_healthy_answer_closes_it() -> None:
    breaker = closed_breaker()
    trip(breaker)
    assert breaker.start_probe(NOW + FIRST_WAIT)
    judged = judge(breaker, "probe", unwell=False, probe=True, now=NOW + 1.2)
    assert judged == Judgement(own=("probe",), change=Change.CLOSED)
    assert breaker.state is BreakerState.CLOSED
    assert trip(breaker, NOW + 5).change is Change.OPENED, "a new outage starts over"
    assert breaker.probe_at == NOW + 5 + FIRST_WAIT


def claimed(attempts: int, row_id: int = 7) -> ClaimedRecipient:
    return ClaimedRecipient(row_id, "+15550000007", {"body": ["Ana"]}, attempts)


@pytest.mark.parametrize(("attempts", "back_to"), [(0, RecipientStatus.QUEUED), (2, RecipientStatus.RETRY)])
def test_an_answer_during_an_outage_sends_the_recipient_back_as_it_was(
    attempts: int, back_to: RecipientStatus
) -> None:
    assert decide_in_outage(claimed(attempts), REFUSED) == ApiUnwell(
        back_to, Problem(ErrorKind.RETRY, None, "connect", "connect: connection refused")
    )
    assert decide_in_outage(claimed(attempts), api(131000)).problem.label == "131000"
    assert decide_in_outage(claimed(attempts), api(None, status=502)).problem.label == "HTTP 502"


def test_the_outage_line_says_since_when_and_when_next() -> None:
    line = outage_line(0.0, 12.2, 2.0)
    assert line.startswith("API unreachable since ") and line.endswith(", trying again in 11 s")
    assert outage_line(0.0, None, 2.0).endswith(", trying again now")


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


KEEP_EVERY = 40.0


async def nothing_to_keep() -> None:
    return None


def guard_with(
    clock: FakeClock, reasons: list[str], max_outage_s: float | None = None,
    keep_claims: Callable[[], Awaitable[None]] = nothing_to_keep,
) -> OutageGuard:
    return OutageGuard(
        EngineMetrics(wall_clock=clock), max_outage_s=max_outage_s, give_up=reasons.append,
        more_coming=lambda: True, keep_claims=keep_claims, keep_every=KEEP_EVERY, clock=clock,
        wall_clock=clock,
    )


def trip_guard(guard: OutageGuard) -> Judgement[Answer]:
    judged: Judgement[Answer] = Judgement()
    for row_id in range(TRIP_AFTER):
        judged = guard.record(claimed(0, row_id), REFUSED)
    return judged


async def test_the_guard_holds_sending_probes_once_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_wait = 0.2  # the real clock's part: how long the waiting dispatcher sleeps
    monkeypatch.setattr(breaker_module, "FIRST_WAIT", first_wait)
    clock, reasons = FakeClock(), list[str]()
    guard = guard_with(clock, reasons)
    await asyncio.wait_for(guard.wait_closed(1), 1)  # closed: at once
    assert len(trip_guard(guard).api) == TRIP_AFTER
    outage = guard.metrics.outage
    assert outage is not None and (outage.since, outage.retry_at) == (NOW, NOW + first_wait)
    waiting = asyncio.create_task(guard.wait_closed(100))
    await asyncio.sleep(0.05)
    assert not waiting.done(), "open: the dispatcher waits"
    clock.now += first_wait
    await asyncio.wait_for(waiting, first_wait + 1)  # the probe may go: row 100 is it
    assert guard.state is BreakerState.PROBING and guard.metrics.outage.retry_at is None  # type: ignore[union-attr]
    second = asyncio.create_task(guard.wait_closed(101))
    await asyncio.sleep(0.05)
    assert not second.done(), "one probe at a time"
    assert guard.record(claimed(0, 99), REFUSED).change is None, "not the probe's answer"
    clock.now += 63
    assert guard.record(claimed(0, 100), ACCEPTED).change is Change.CLOSED
    await asyncio.wait_for(second, 1)
    assert guard.metrics.outage is None
    texts = [event.text for event in guard.metrics.events_since(0) if event.kind == "outage"]
    assert texts[0].startswith("API unreachable since ") and "trying again in 1 s" in texts[0]
    assert "connection refused" in texts[0]
    assert texts[-1] == "API back after 63 s"
    assert reasons == []


async def test_the_guard_gives_up_after_max_outage_s_once() -> None:
    clock, reasons = FakeClock(), list[str]()
    guard = guard_with(clock, reasons, max_outage_s=30)
    trip_guard(guard)
    clock.now += 29
    waiting = asyncio.create_task(guard.wait_closed(100))  # the probe goes at once (1 s passed)
    await asyncio.wait_for(waiting, 1)
    guard.record(claimed(0, 100), api(None, status=503))
    assert reasons == [], "not yet"
    clock.now += 1
    waiting = asyncio.create_task(guard.wait_closed(101))
    await asyncio.sleep(0.05)
    assert len(reasons) == 1 and "send.max_outage_s (30 s)" in reasons[0]
    assert "nobody was charged" in reasons[0]
    assert not waiting.done(), "after giving up it sends nothing more"
    waiting.cancel()


async def test_held_answers_are_released_when_nothing_more_will_answer() -> None:
    clock = FakeClock()
    coming = {"more": True}
    guard = OutageGuard(EngineMetrics(), max_outage_s=None, give_up=lambda _r: None,
                        more_coming=lambda: coming["more"], keep_claims=nothing_to_keep,
                        keep_every=KEEP_EVERY, clock=clock, wall_clock=clock)
    assert guard.record(claimed(0, 1), api(131000)) == Judgement()
    coming["more"] = False
    judged = guard.record(claimed(0, 2), api(131000))
    assert [answer.row.id for answer in judged.own] == [1, 2] and judged.api == ()
    assert guard.record(claimed(0, 3), api(131000)) != Judgement()
    assert guard.settle() == ()


async def test_while_the_api_is_away_the_waiting_rows_keep_their_leases() -> None:
    clock, kept = FakeClock(), list[float]()

    async def keep_claims() -> None:
        kept.append(clock.now)

    guard = guard_with(clock, [], keep_claims=keep_claims)
    trip_guard(guard)
    clock.now = NOW + FIRST_WAIT
    await asyncio.wait_for(guard.wait_closed(100), 1)  # the first probe: too soon to renew
    guard.record(claimed(0, 100), REFUSED)
    assert kept == []
    clock.now = NOW + KEEP_EVERY + 5
    await asyncio.wait_for(guard.wait_closed(101), 1)  # renewed, then the next probe
    assert kept == [NOW + KEEP_EVERY + 5]
    assert guard.state is BreakerState.PROBING
