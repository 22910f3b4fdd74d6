"""The report's figures as plain data: what each table of a report holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "AdaptiveClass",
    "CalibrationHint",
    "Firing",
    "Funnel",
    "PathCost",
    "Quality",
    "ReasonCount",
    "Saving",
    "percentile",
]


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


@dataclass
class Funnel:
    """Calls of one group (a function, a task class, a path, an hour of day, ...)."""

    key: str
    calls: int = 0
    escalated: int = 0
    answered_by: dict[str, int] = field(default_factory=dict)
    best_effort: int = 0
    failed: int = 0
    """Ended without an answer: failed, error or cancelled."""
    known_cost_usd: Decimal = Decimal(0)
    unknown_cost_calls: int = 0

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.calls if self.calls else 0.0

    @property
    def cost_per_call_usd(self) -> Decimal | None:
        return self.known_cost_usd / self.calls if self.calls else None

    def add(self, call: Any) -> None:
        self.calls += 1
        self.escalated += bool(call.escalated)
        if call.outcome == "answered" and call.answered_by:
            self.answered_by[call.answered_by] = self.answered_by.get(call.answered_by, 0) + 1
        elif call.outcome == "best_effort":
            self.best_effort += 1
        else:
            self.failed += 1
        self.known_cost_usd += call.known_cost_usd
        self.unknown_cost_calls += call.cost_usd is None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "escalation_rate": self.escalation_rate,
            "cost_per_call_usd": self.cost_per_call_usd,
        }


@dataclass
class Firing:
    """How often one gate (or trigger) rejected an answer, and the moves up it caused."""

    key: str
    rejections: int = 0
    calls: int = 0
    escalations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PathCost:
    """Cost and latency of the calls that took one tier path."""

    path: str
    calls: int
    known_cost_usd: Decimal
    cost_per_call_usd: Decimal
    latency_p50_s: float | None
    latency_p90_s: float | None
    latency_p99_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Saving:
    """One function's cost against always using its strongest tier (an estimate)."""

    function: str
    calls: int
    strongest_tier: str | None
    strongest_model: str | None
    price_source: str | None
    priced_calls: int
    actual_usd: Decimal
    always_strongest_usd: Decimal | None
    escalation_rate: float
    break_even_rate: float | None
    note: str | None = None

    @property
    def saving_usd(self) -> Decimal | None:
        if self.always_strongest_usd is None:
            return None
        return self.always_strongest_usd - self.actual_usd

    @property
    def saving_share(self) -> float | None:
        if not self.always_strongest_usd:
            return None
        return float(1 - self.actual_usd / self.always_strongest_usd)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "saving_usd": self.saving_usd, "saving_share": self.saving_share}


@dataclass
class Quality:
    """Users' verdicts on the answers one tier gave: feedback and regenerations."""

    tier: str
    answers: int = 0
    rated_good: int = 0
    rated_bad: int = 0
    regenerated: int = 0

    @property
    def bad_share(self) -> float | None:
        """Answers rated bad or regenerated, of the answers that got any verdict."""
        judged = self.rated_good + self.rated_bad + self.regenerated
        return (self.rated_bad + self.regenerated) / judged if judged else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bad_share": self.bad_share}


@dataclass
class ReasonCount:
    """How often calls moved up for one kind of reason."""

    trigger: str
    gate: str | None
    reason: str
    """The kind of reason: its particulars (numbers, field values) left out."""
    count: int
    example: str
    """One such reason in full."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CalibrationHint:
    """A gate whose recorded scores suggest its threshold is off."""

    gate: str
    verdict: str
    """``too strict`` or ``too lax``."""
    detail: str
    passing: int
    rejected: int
    lowest_passing: float | None
    highest_rejected: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AdaptiveClass:
    """One task class that started adaptively (``escalating(adaptive=...)``): where its
    calls started, and its cheapest tier's pass rate over the window (every call of the
    class that reached that tier, undecayed, a uniform prior)."""

    function: str
    task: str | None
    calls: int
    adaptive_calls: int
    """Calls whose start the adaptive estimate chose (the others: options or route=)."""
    starts: dict[str, int]
    """Start tier -> calls, every call of the class."""
    explored: int
    """Adaptive calls that started cheapest on purpose though the estimate said higher."""
    cheap_tier: str | None
    passes: int
    fails: int
    pass_rate: float | None
    low: float | None
    high: float | None
    """The 90% credible interval of ``pass_rate``."""
    latest: str | None = None
    """The latest adaptive decision's reason, in words (the estimate as it stands)."""

    def start_share(self, tier: str) -> float:
        return self.starts.get(tier, 0) / self.calls if self.calls else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "start_shares": {tier: self.start_share(tier) for tier in self.starts},
        }
