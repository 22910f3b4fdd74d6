"""The economics of the sweep: picking a threshold by objective, the break-even escalation
rate, and a call that returns the best refused answer."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from escalate.calibrate import (
    NoThresholdMeets,
    Objective,
    Observations,
    TierRun,
    analyse,
    break_even_rate,
)


def test_picking_by_objective(observed: Observations) -> None:
    def picked(objective: Objective) -> str:
        row = analyse(observed, objective).picked
        assert row is not None
        return row.label

    # Default: the most accurate threshold costing no more than the strongest tier alone.
    assert picked(Objective()) == "0.95"
    assert picked(Objective(min_accuracy=0.8)) == "0.95"
    assert picked(Objective(min_accuracy=0.6)) == "0.3"  # the cheapest that reaches it
    assert picked(Objective(min_accuracy_of_strongest=0.8)) == "0.3"  # 0.8 * 5/6
    assert picked(Objective(max_escalation_rate=0.5)) == "0.3"  # ties on accuracy: cheapest
    rows = {row.label: row for row in analyse(observed).rows}
    budget = rows["0.95"].cost_per_call_usd
    assert picked(Objective(max_cost_per_call_usd=budget)) == "0.95"
    assert picked(Objective(max_cost_per_call_usd=budget - Decimal("1e-9"))) == "0.3"
    # A share of the strongest tier's cost is a budget too; the tighter of two budgets holds.
    strongest = analyse(observed).baselines[-1].cost_per_call_usd
    share = float(budget / strongest)
    assert picked(Objective(max_cost_of_strongest=share * (1 + 1e-9))) == "0.95"
    assert picked(Objective(max_cost_of_strongest=share * (1 - 1e-6))) == "0.3"
    both = Objective(max_cost_of_strongest=1.0, max_cost_per_call_usd=budget - Decimal("1e-9"))
    assert picked(both) == "0.3"
    assert "of the strongest tier's" in Objective(max_cost_of_strongest=0.5).describe()
    with pytest.raises(ValueError, match="max_cost_of_strongest"):
        Objective(max_cost_of_strongest=-0.5)
    unmet = analyse(observed, Objective(min_accuracy=0.9))
    assert unmet.picked is None and unmet.unmet is not None
    assert "no threshold meets" in unmet.unmet and "strongest tier alone" in unmet.unmet
    with pytest.raises(NoThresholdMeets):
        _ = unmet.threshold
    with pytest.raises(ValueError, match="min_accuracy"):
        Objective(min_accuracy=-1)


def _uniform(scores: list[float], cheap: str = "1", strong: str = "10") -> Observations:
    runs = tuple(
        (
            TierRun("cheap", True, True, Decimal(cheap), score),
            TierRun("strong", True, True, Decimal(strong), None),
        )
        for score in scores
    )
    return Observations(
        "solve",
        "g",
        ("cheap", "strong"),
        (True, False),
        "raise",
        tuple(str(i) for i in range(len(scores))),
        runs,
    )


def test_break_even_escalation_rate() -> None:
    assert break_even_rate(Decimal(1), Decimal(10)) == pytest.approx(0.9)
    assert break_even_rate(Decimal(1), Decimal(0)) is None
    result = analyse(_uniform([i / 20 for i in range(20)]))
    rate = result.economics.break_even_escalation_rate
    assert rate == pytest.approx(0.9)
    for row in result.rows:
        # With uniform costs the cascade costs more than the strong tier exactly past it.
        assert (row.cost_usd > row.strongest_cost_usd) == (row.escalation_rate > rate + 1e-9)
    text = " ".join(result.table().split())
    assert "Break-even escalation rate: 1 - 1000.000 / 10000.000 = 90.0%" in text


def test_when_unmet_best_returns_the_refused_answer() -> None:
    base = _uniform([0.2, 0.9])
    # Item 0: the cheap answer scores below 0.5; the strong one, right, is refused by a gate.
    refused = (base.runs[0][0], TierRun("strong", True, True, Decimal(10), None, blocked="x"))
    runs = (refused, base.runs[1])
    strict = analyse(dataclasses.replace(base, runs=runs, when_unmet="raise")).row_at(0.5)
    best = analyse(dataclasses.replace(base, runs=runs, when_unmet="best_effort")).row_at(0.5)
    assert (strict.failed, strict.correct, strict.escalated) == (1, 1, 1)
    # Best effort returns the latest answer a gate refused: the strong one.
    assert (best.failed, best.correct, best.escalated) == (0, 2, 1)
    assert strict.cost_usd == best.cost_usd == Decimal(1 + 10 + 1)
