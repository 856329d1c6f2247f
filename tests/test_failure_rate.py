"""The failure-rate rule, fed outcomes one by one: when it says to pause, and what it says.

``S`` is a recipient sent or retried, ``F`` one that failed. The sender pauses at the first
outcome the rule returns a rate for; the rest of a run is checked in test_engine_logic.py.
"""

from __future__ import annotations

import random

import pytest

from watui.engine.safety import FailureRateRule, interleaved
from watui.settings import SafetySettings


def first_pause(rule: FailureRateRule, outcomes: str) -> tuple[int, float] | None:
    """(index of the outcome that crossed the limit, the rate) or None."""
    for index, outcome in enumerate(outcomes):
        rate = rule.record(outcome == "F")
        if rate is not None:
            return index, rate
    return None


def rule(limit: float, window: int, min_outcomes: int) -> FailureRateRule:
    return FailureRateRule(
        SafetySettings(max_failure_rate=limit, window=window, min_outcomes=min_outcomes)
    )


# (why, limit, window, min_outcomes, outcomes, first pause)
ROWS: list[tuple[str, float, int, int, str, tuple[int, float] | None]] = [
    ("all sent never pauses", 0.2, 10, 5, "S" * 30, None),
    ("at the limit is not above it", 0.2, 10, 5, "SSSSF", None),
    ("above the limit pauses at the failure", 0.2, 10, 5, "SSSFF", (4, 0.4)),
    ("nothing before the fewest outcomes", 0.2, 10, 5, "FFFF", None),
    ("failures first: the outcome that reaches the fewest pauses, even a success",
     0.2, 10, 5, "FFFFS", (4, 0.8)),
    ("the rate is over the window only: old failures slide out",
     0.5, 10, 10, "FFFFF" + "SSSSS" + "SSSSS" + "FFFFF", None),
    ("the window slides over a failure burst", 0.5, 10, 10, "SSSSSSSSSS" + "FFFFFF", (15, 0.6)),
    ("with a window smaller than the fewest outcomes the rule never decides",
     0.1, 10, 20, "F" * 40, None),
    ("a limit of 1 never pauses", 1.0, 10, 1, "F" * 20, None),
    ("the fewest outcomes is at least one", 0.5, 10, 1, "F", (0, 1.0)),
]


@pytest.mark.parametrize(
    ("limit", "window", "min_outcomes", "outcomes", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_when_the_failure_rate_pauses(
    limit: float, window: int, min_outcomes: int, outcomes: str,
    expected: tuple[int, float] | None,
) -> None:
    assert first_pause(rule(limit, window, min_outcomes), outcomes) == expected


def naive_first_pause(
    limit: float, window: int, min_outcomes: int, outcomes: str
) -> tuple[int, float] | None:
    """The rule as its settings word it, recomputed from scratch at every outcome."""
    for index in range(len(outcomes)):
        recent = outcomes[max(0, index + 1 - window):index + 1]
        if len(recent) >= min_outcomes and recent.count("F") / len(recent) > limit:
            return index, recent.count("F") / len(recent)
    return None


@pytest.mark.parametrize("seed", range(40))
def test_checking_only_after_failures_pauses_where_checking_always_would(seed: int) -> None:
    """The rule skips its check after most successes (a success never raises the rate): the
    first pause is still exactly where a check at every outcome puts it."""
    chance = random.Random(seed)
    limit = chance.choice([0.1, 0.2, 0.3, 0.5])
    window = chance.randint(10, 40)
    min_outcomes = chance.randint(1, window)
    share = chance.uniform(0.0, 0.6)
    outcomes = "".join("F" if chance.random() < share else "S" for _ in range(300))
    assert first_pause(rule(limit, window, min_outcomes), outcomes) == naive_first_pause(
        limit, window, min_outcomes, outcomes
    )


def test_the_reason_says_the_rate_the_count_the_limit_and_the_commonest_error() -> None:
    failing = rule(0.2, 10, 5)
    found = first_pause(failing, "SSSFF")
    assert found == (4, 0.4)
    assert failing.reason(0.4, "131026") == (
        "failure rate 40% over the last 5 sends is above 20% (most common: 131026)"
    )
    assert failing.reason(0.4, None) == "failure rate 40% over the last 5 sends is above 20%"


@pytest.mark.parametrize(
    ("failed", "succeeded", "most", "expected"),
    [
        (1, 3, 10, "SSSF"),
        (2, 2, 10, "SFSF"),
        (0, 3, 10, "SSS"),
        (3, 0, 10, "FFF"),
        (10, 90, 20, "SSSSSSSSSFSSSSSSSSSF"),  # 100 outcomes, 20 kept: the same 10% share
        (0, 0, 10, ""),
    ],
)
def test_counts_arriving_together_are_spread_evenly(
    failed: int, succeeded: int, most: int, expected: str
) -> None:
    assert "".join("F" if f else "S" for f in interleaved(failed, succeeded, most)) == expected


def test_a_redelivered_bunch_at_its_own_share_does_not_pause_but_a_storm_does() -> None:
    """Statuses held back by a receiver outage arrive at once: 50 failures among 950 deliveries
    (5%) stay under a 20% limit; 60 among 40 (60%) pause. As a run of 50 failures appended to a
    window of 200 successes (their sends), the bunch alone read as 25%: that paused campaigns."""
    bunch = rule(0.2, 200, 50)
    assert first_pause(bunch, "".join("F" if f else "S" for f in interleaved(50, 950, 200))) is None
    storm = rule(0.2, 200, 50)
    assert first_pause(storm, "".join("F" if f else "S" for f in interleaved(60, 40, 200))) is not None
    appended = rule(0.2, 200, 50)
    assert first_pause(appended, "S" * 200 + "F" * 50) is not None
