"""What the mock Cloud API does: limits, latency, injected failures. Changeable at runtime."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Failure classes injectable by rate: name -> what the mock does.
FAILURE_CLASSES = ("permanent", "transient", "http500", "reset", "slow")


@dataclass
class MockConfig:
    """Behaviour of the mock. ``rate_limit``/``pair_limit_seconds`` of 0 disable those limits."""

    access_token: str = "mock-token"
    rate_limit: float = 80.0  # messages per phone number per sliding second (130429 beyond)
    pair_limit_seconds: float = 6.0  # least gap between two messages to one recipient (131056)
    latency_min: float = 0.10
    latency_max: float = 0.25
    failure_rates: dict[str, float] = field(default_factory=dict)  # class -> probability
    failures_by_suffix: dict[str, int] = field(default_factory=dict)  # "13" -> 131026
    spam_after: int | None = None  # 131048 from the Nth accepted message on
    slow_seconds: float = 60.0  # how long a "slow" answer sleeps (beyond the client timeout)
    seed: int | None = None
    webhook_url: str | None = None
    app_secret: str = "mock-app-secret"
    page_size: int = 2  # templates per page, small so that paging is exercised

    def __post_init__(self) -> None:
        unknown = set(self.failure_rates) - set(FAILURE_CLASSES)
        if unknown:
            raise ValueError(f"unknown failure classes {sorted(unknown)}; use {FAILURE_CLASSES}")
        if self.latency_min < 0 or self.latency_max < self.latency_min:
            raise ValueError("latency must satisfy 0 <= min <= max")

    def to_public_dict(self) -> dict[str, Any]:
        """The config without its secrets, for /_mock/stats."""
        data = asdict(self)
        data.pop("access_token")
        data.pop("app_secret")
        return data

    def updated(self, changes: dict[str, Any]) -> MockConfig:
        """A copy with ``changes`` applied; unknown names raise ValueError."""
        names = {item.name for item in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown mock settings {sorted(unknown)}")
        return MockConfig(**{**asdict(self), **changes})
