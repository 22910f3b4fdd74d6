"""Replaying the cascade: the escalating function run for real over the evaluation set (at
its own threshold, or with the calibrated gate moved to another), tallied as a row of the
sweep is, so the table's prediction can be checked against what the cascade does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from escalate._results import receipt_of
from escalate.calibrate._collect import _map
from escalate.calibrate._economics import Row, _per_k
from escalate.calibrate._gates import _AtThreshold, _swap_gate
from escalate.calibrate._items import Grader, Item, _grader
from escalate.calibrate._render import wrap
from escalate.calibrate._running import (
    _Outcome,
    _path,
    _settle_async,
    _settle_sync,
)
from escalate.exceptions import EscalationFailed

__all__ = ["Replay", "replay"]


@dataclass(frozen=True)
class Replay:
    """The real cascade run over the evaluation set: what a table row predicts."""

    threshold: float | None
    items: int
    correct: int
    escalated: int
    failed: int
    cost_usd: Decimal

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.items if self.items else 0.0

    @property
    def cost_per_call_usd(self) -> Decimal:
        return self.cost_usd / self.items if self.items else Decimal(0)

    def mismatches(self, row: Row) -> list[str]:
        """How ``row`` differs from this replay (empty when it matches exactly)."""
        pairs = (
            ("items", row.items, self.items),
            ("correct", row.correct, self.correct),
            ("escalated", row.escalated, self.escalated),
            ("failed", row.failed, self.failed),
            ("cost_usd", row.cost_usd, self.cost_usd),
        )
        return [f"{name}: table {a}, replay {b}" for name, a, b in pairs if a != b]

    def describe(self, row: Row | None = None) -> str:
        at = "" if self.threshold is None else f" at {self.threshold!r}"
        text = (
            f"Replay of the cascade{at}"
            f" through @escalating: accuracy {self.accuracy:.1%} ({self.correct}/{self.items}), "
            f"{self.escalation_rate:.1%} escalated ({self.escalated}), "
            f"${_per_k(self.cost_per_call_usd)} per 1k calls (total ${self.cost_usd:.6f})"
        )
        if row is None:
            return text + "."
        problems = self.mismatches(row)
        if not problems:
            return wrap(text + ": matches the table's row exactly.")
        return wrap(
            text + ": DIFFERS from the table's row: " + "; ".join(problems) + " (a model that "
            "answers differently when asked again, or an assumption of the sweep unmet)"
        )


def replay(
    fn: Callable[..., Any],
    items: Sequence[Item],
    *,
    grade: Grader | None = None,
    expected_field: str | None = None,
    gate: str | None = None,
    threshold: float | None = None,
    concurrency: int = 8,
) -> Replay:
    """Run the cascade of ``fn`` over ``items`` for real and tally accuracy, escalations
    and cost, to check a row of a sweep.

    Without ``gate``, ``fn`` is called as it is. With ``gate`` and ``threshold``, the gate
    named ``gate`` is run at ``threshold`` instead of its own: it rejects an answer whose
    score (the one it records, or puts on its rejection) is below ``threshold``.
    """
    judge = _grader(grade, expected_field)
    if (gate is None) != (threshold is None):
        raise ValueError("give gate= and threshold= together")
    plan, path = _path(fn)
    if gate is not None and threshold is not None:
        at = threshold
        plan = _swap_gate(plan, gate, lambda g: _AtThreshold(g, at))[0]

    def sync_one(index: int, item: Item) -> _Outcome:
        if gate is None:
            try:
                value = fn(*item.args, **item.kwargs)
            except EscalationFailed as failure:
                return None, failure.receipt, False
            return value, receipt_of(value), True
        return _settle_sync(path, plan, item)

    async def async_one(index: int, item: Item) -> _Outcome:
        if gate is None:
            try:
                value = await fn(*item.args, **item.kwargs)
            except EscalationFailed as failure:
                return None, failure.receipt, False
            return value, receipt_of(value), True
        return await _settle_async(path, plan, item)

    outcomes: list[_Outcome] = _map(fn, items, sync_one, async_one, concurrency)
    return _tally(threshold, items, outcomes, judge)


def _tally(
    threshold: float | None, items: Sequence[Item], outcomes: Sequence[_Outcome], judge: Grader
) -> Replay:
    correct = escalated = failed = 0
    cost = Decimal(0)
    for item, (value, receipt, answered) in zip(items, outcomes, strict=True):
        correct += bool(answered and judge(value, item))
        escalated += receipt.escalated
        failed += not answered
        cost += receipt.known_cost_usd
    return Replay(threshold, len(items), correct, escalated, failed, cost)
