"""Alerts: a watch over a rolling window of stored receipts.

A :class:`Watch` covers one function, one task class, or every call, and holds when, over
its last ``window``:

- the escalation rate is above ``ceiling`` (past 30-40% a cascade's saving is usually gone);
- the escalation rate is more than ``max_drift_points`` percentage points off its
  baseline: ``baseline`` if given, else the rate over the ``baseline_windows`` windows
  before this one;
- the cheap tier's quality (the share of its feedback that is good) is below
  ``min_cheap_quality``;
- the cost per hour is above ``budget_usd_per_hour``.

A rate is judged only over at least ``min_calls`` calls (a quality over at least
``min_feedback`` verdicts). Each alert is a WARNING log record and an
:class:`~escalate.events.AlertRaised` event for the global hooks and the watch's own;
``escalate report --check`` exits non-zero while one holds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from escalate.events import AlertRaised, Hook, get_hooks
from escalate.store._query import Filters, Loaded, load
from escalate.store._store import Store

__all__ = ["Watch", "check_watches"]

logger = logging.getLogger("escalate.store")


@dataclass(frozen=True)
class Watch:
    """What to watch, over which window, and the band it must stay in."""

    function: str | None = None
    task: str | None = None
    window: timedelta = timedelta(hours=1)
    ceiling: float | None = 0.4
    max_drift_points: float | None = None
    baseline: float | None = None
    baseline_windows: int = 6
    min_cheap_quality: float | None = None
    cheap_tier: str | None = None
    """The tier whose quality is watched; default: the tier the calls start on most."""
    budget_usd_per_hour: Decimal | float | None = None
    min_calls: int = 20
    min_feedback: int = 5
    hooks: Sequence[Hook] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        if self.function:
            return f"function {self.function}"
        return f"task {self.task}" if self.task else "all calls"

    def check(self, store: Store, *, now: datetime | None = None) -> list[AlertRaised]:
        """The alerts that hold now; each is logged and handed to the hooks."""
        end = now or datetime.now(UTC)
        start = end - self.window
        data = load(store, Filters(start, end, self.function, self.task))
        found = [
            *self._rates(store, data, start, end),
            *self._quality(data, start, end),
            *self._cost(data, start, end),
        ]
        for alert in found:
            self._raise(alert)
        return found

    def _alert(
        self, kind: str, message: str, value: float, limit: float, start: datetime, end: datetime
    ) -> AlertRaised:
        return AlertRaised(
            self.function or "", kind, f"{self.label}: {message}", value, limit, start, end
        )

    def _rates(
        self, store: Store, data: Loaded, start: datetime, end: datetime
    ) -> list[AlertRaised]:
        calls = len(data.calls)
        if calls < self.min_calls:
            return []
        rate = sum(bool(c.escalated) for c in data.calls) / calls
        found = []
        if self.ceiling is not None and rate > self.ceiling:
            found.append(
                self._alert(
                    "escalation_ceiling",
                    f"{rate:.1%} of {calls} calls escalated, above the ceiling {self.ceiling:.0%}",
                    rate,
                    self.ceiling,
                    start,
                    end,
                )
            )
        baseline = self._baseline(store, start)
        if self.max_drift_points is not None and baseline is not None:
            off = (rate - baseline) * 100
            if abs(off) > self.max_drift_points:
                found.append(
                    self._alert(
                        "escalation_drift",
                        f"{rate:.1%} escalated, {off:+.1f} points off its baseline "
                        f"{baseline:.1%} (band +/-{self.max_drift_points:g} points)",
                        rate,
                        baseline,
                        start,
                        end,
                    )
                )
        return found

    def _baseline(self, store: Store, start: datetime) -> float | None:
        if self.baseline is not None:
            return self.baseline
        since = start - self.window * self.baseline_windows
        before = load(store, Filters(since, start, self.function, self.task))
        if len(before.calls) < self.min_calls:
            return None
        return sum(bool(c.escalated) for c in before.calls) / len(before.calls)

    def _quality(self, data: Loaded, start: datetime, end: datetime) -> list[AlertRaised]:
        if self.min_cheap_quality is None or not data.calls:
            return []
        cheap = self.cheap_tier
        if cheap is None:
            starts = [c.start_tier for c in data.calls]
            cheap = max(set(starts), key=starts.count)
        verdicts = [
            data.feedback[c.id][-1].good
            for c in data.calls
            if c.answered_by == cheap and c.id in data.feedback
        ]
        if len(verdicts) < self.min_feedback:
            return []
        quality = sum(verdicts) / len(verdicts)
        if quality >= self.min_cheap_quality:
            return []
        return [
            self._alert(
                "cheap_quality",
                f"{quality:.1%} of {len(verdicts)} verdicts on {cheap}'s answers were good, "
                f"below {self.min_cheap_quality:.0%}",
                quality,
                self.min_cheap_quality,
                start,
                end,
            )
        ]

    def _cost(self, data: Loaded, start: datetime, end: datetime) -> list[AlertRaised]:
        if self.budget_usd_per_hour is None:
            return []
        budget = Decimal(str(self.budget_usd_per_hour))
        spent = sum((c.known_cost_usd for c in data.calls), Decimal(0))
        per_hour = spent / Decimal(str(self.window.total_seconds() / 3600))
        if per_hour <= budget:
            return []
        return [
            self._alert(
                "cost_per_hour",
                f"${per_hour:.4f} per hour over the last {self.window}, above the budget ${budget}",
                float(per_hour),
                float(budget),
                start,
                end,
            )
        ]

    def _raise(self, alert: AlertRaised) -> None:
        logger.warning("escalate alert (%s): %s", alert.kind, alert.message)
        for hook in (*self.hooks, *get_hooks()):
            try:
                hook(alert)
            except Exception:
                logger.warning("escalate: hook %r failed on an alert", hook, exc_info=True)


def check_watches(
    store: Store, watches: Sequence[Watch], *, now: datetime | None = None
) -> list[AlertRaised]:
    """Every alert that holds now, over all ``watches``."""
    return [alert for watch in watches for alert in watch.check(store, now=now)]
