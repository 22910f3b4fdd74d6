"""The economics of a cascade, computed from observations alone: no model is called here.

An *observation* is what each tier, run alone, did with one evaluation item: whether its
answer was right, what it cost, the calibrated gate's score, and whether something other
than the threshold (a validation error, another gate, a provider failure) refused it.
From those, :func:`sweep` replays the tier walk for every threshold in memory, and
:func:`pick` chooses a threshold by a stated :class:`Objective`.

A gate *rejects* an answer whose score is below the threshold (``score < threshold``), as
the built-in gates do; a rejected answer moves the call up a tier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = [
    "Baseline",
    "Economics",
    "NoThresholdMeets",
    "Objective",
    "Row",
    "TierRun",
    "baselines",
    "break_even_rate",
    "economics",
    "pick",
    "sweep",
    "thresholds_of",
]


@dataclass(frozen=True)
class TierRun:
    """What one tier, run alone, did with one evaluation item."""

    tier: str
    answered: bool
    """An answer came back that parsed and validated (whatever the gates said of it)."""
    correct: bool
    """That answer was right (always False without an answer)."""
    cost_usd: Decimal
    """What the tier's requests for this item cost (known costs only)."""
    score: float | None
    """The calibrated gate's score of the answer; None when the gate did not score it."""
    blocked: str | None = None
    """Why this tier's answer is refused whatever the threshold (a validation error,
    another gate's rejection, a provider failure); None when only the threshold decides."""
    cost_known: bool = True
    votes: tuple[str | None, ...] | None = None
    """A consistency gate's votes on this answer, in the order drawn (``None``: a failed
    sample), when the calibrated gate samples; None otherwise."""
    vote_correct: tuple[tuple[str, bool], ...] = ()
    """(vote, whether a sample with that vote was right) for every vote cast."""
    cost_at: tuple[Decimal, ...] = ()
    """What this run would have cost with only the first 1, 2, ... samples drawn."""


@dataclass(frozen=True)
class Row:
    """The cascade at one threshold, over the whole evaluation set."""

    threshold: float
    label: str
    """The threshold as printed (``>1`` for the row that escalates every scored answer)."""
    items: int
    escalated: int
    """Calls that moved up at least once."""
    kept: int
    """Calls answered by the cheapest tier."""
    kept_correct: int
    correct: int
    failed: int
    """Calls that got no answer from any tier (they count as wrong)."""
    cost_usd: Decimal
    """Total cost over the set, the rejected attempts of escalated calls included."""
    strongest_cost_usd: Decimal
    """Total cost of the strongest tier alone over the same set."""

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.items if self.items else 0.0

    @property
    def kept_accuracy(self) -> float | None:
        """Accuracy of the answers kept on the cheapest tier (None when none was kept)."""
        return self.kept_correct / self.kept if self.kept else None

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0

    @property
    def cost_per_call_usd(self) -> Decimal:
        return self.cost_usd / self.items if self.items else Decimal(0)

    @property
    def saving(self) -> float | None:
        """The saving against always using the strongest tier (negative: it costs more)."""
        if not self.strongest_cost_usd:
            return None
        return float(1 - self.cost_usd / self.strongest_cost_usd)


@dataclass(frozen=True)
class Baseline:
    """One tier used alone for every call, its answers taken as they come."""

    tier: str
    items: int
    correct: int
    cost_usd: Decimal

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0

    @property
    def cost_per_call_usd(self) -> Decimal:
        return self.cost_usd / self.items if self.items else Decimal(0)


@dataclass(frozen=True)
class Economics:
    """When a cascade pays: measured per-call costs of the cheapest and strongest tiers.

    A two-tier cascade that escalates a share ``r`` of its calls costs about
    ``c_cheap + r * c_strong`` per call against ``c_strong`` for the strongest tier alone:
    it costs more as soon as ``r > 1 - c_cheap / c_strong``, the *break-even escalation
    rate*. (With more tiers this counts every escalation as going straight to the top.)
    """

    cheapest: str
    strongest: str
    cheapest_cost_per_call_usd: Decimal
    strongest_cost_per_call_usd: Decimal

    @property
    def break_even_escalation_rate(self) -> float | None:
        return break_even_rate(self.cheapest_cost_per_call_usd, self.strongest_cost_per_call_usd)

    def describe(self, escalation_rate: float | None = None) -> str:
        """The break-even in words, against a measured escalation rate if given."""
        per_k = _per_k
        rate = self.break_even_escalation_rate
        text = (
            f"{self.cheapest} costs ${per_k(self.cheapest_cost_per_call_usd)} and "
            f"{self.strongest} ${per_k(self.strongest_cost_per_call_usd)} per 1k calls "
            "(measured). "
        )
        if rate is None:
            return text + "Without a known cost of the strongest tier there is no break-even."
        text += (
            f"Break-even escalation rate: 1 - {per_k(self.cheapest_cost_per_call_usd)} / "
            f"{per_k(self.strongest_cost_per_call_usd)} = {rate:.1%}: beyond it the cascade "
            f"costs more than {self.strongest} alone."
        )
        if escalation_rate is not None:
            margin = "below" if escalation_rate < rate else "AT OR ABOVE"
            text += f" Measured at the picked threshold: {escalation_rate:.1%} ({margin} it)."
        return text


def _per_k(cost: Decimal) -> str:
    return f"{cost * 1000:.3f}"


def break_even_rate(cheap_cost_per_call: Decimal, strong_cost_per_call: Decimal) -> float | None:
    """``1 - cheap / strong``: the escalation rate beyond which a cascade costs more than the
    strong tier alone (None when the strong tier's cost is zero or unknown)."""
    if strong_cost_per_call <= 0:
        return None
    return float(1 - cheap_cost_per_call / strong_cost_per_call)


def _walk(
    runs: Sequence[TierRun], threshold: float, when_unmet: Literal["raise", "best_effort"]
) -> tuple[int | None, bool, bool, Decimal]:
    """(the index of the tier whose answer was kept or None, whether the call returned an
    answer, whether it is right, cost): the engine's tier walk for one item, from the
    tiers' recorded runs."""
    cost = Decimal(0)
    best: TierRun | None = None
    for index, run in enumerate(runs):
        cost += run.cost_usd
        if run.blocked is None and (run.score is None or run.score >= threshold):
            return index, True, run.correct, cost
        if run.answered:
            best = run  # a gate refused a well-formed answer: the engine keeps it as "best"
    if when_unmet == "best_effort" and best is not None:
        return None, True, best.correct, cost
    return None, False, False, cost


def thresholds_of(observations: Iterable[Sequence[TierRun]]) -> list[float]:
    """Every distinct score observed, ascending, then one just above the highest (the row
    that escalates every scored answer). Each threshold between two of these gives the same
    cascade as the next one up."""
    scores = sorted({run.score for runs in observations for run in runs if run.score is not None})
    if not scores:
        return [0.0]
    return [*scores, math.nextafter(scores[-1], math.inf)]


def _label(threshold: float, previous: float | None) -> str:
    if previous is not None and threshold == math.nextafter(previous, math.inf):
        return f">{previous:.6g}"
    return f"{threshold:.6g}"


def baselines(observations: Sequence[Sequence[TierRun]], tiers: Sequence[str]) -> list[Baseline]:
    """Each tier alone, for every item."""
    out = []
    for index, tier in enumerate(tiers):
        runs = [item[index] for item in observations]
        out.append(
            Baseline(
                tier,
                len(runs),
                sum(run.correct for run in runs),
                sum((run.cost_usd for run in runs), Decimal(0)),
            )
        )
    return out


def economics(observations: Sequence[Sequence[TierRun]], tiers: Sequence[str]) -> Economics:
    """The break-even of the cheapest against the strongest tier, from measured costs."""
    alone = baselines(observations, tiers)
    return Economics(
        alone[0].tier, alone[-1].tier, alone[0].cost_per_call_usd, alone[-1].cost_per_call_usd
    )


def sweep(
    observations: Sequence[Sequence[TierRun]],
    *,
    when_unmet: Literal["raise", "best_effort"] = "raise",
    thresholds: Sequence[float] | None = None,
) -> list[Row]:
    """The cascade at every threshold (default: :func:`thresholds_of`), in memory.

    ``observations[i][k]`` is tier ``k``'s run on item ``i``, cheapest tier first. Each
    item walks the tiers as the engine would: a tier's answer is kept when nothing else
    refused it and its score (if the gate scored it) is at least the threshold; every
    tier tried is paid for; when no tier's answer is kept, the call fails, or with
    ``when_unmet="best_effort"`` returns the latest answer a gate refused.
    """
    items = list(observations)
    if not items:
        raise ValueError("no observations to sweep: the evaluation set is empty")
    strongest = sum((runs[-1].cost_usd for runs in items), Decimal(0))
    grid = sorted(set(thresholds)) if thresholds is not None else thresholds_of(items)
    rows = []
    previous: float | None = None
    for threshold in grid:
        escalated = kept = kept_correct = correct = failed = 0
        cost = Decimal(0)
        for runs in items:
            index, answered, right, spent = _walk(runs, threshold, when_unmet)
            cost += spent
            correct += right
            escalated += index != 0
            failed += not answered
            if index == 0:
                kept += 1
                kept_correct += right
        rows.append(
            Row(
                threshold=threshold,
                label=_label(threshold, previous),
                items=len(items),
                escalated=escalated,
                kept=kept,
                kept_correct=kept_correct,
                correct=correct,
                failed=failed,
                cost_usd=cost,
                strongest_cost_usd=strongest,
            )
        )
        previous = threshold
    return rows


@dataclass(frozen=True, kw_only=True)
class Objective:
    """How to pick a threshold from a sweep.

    With an accuracy target (``min_accuracy``, or ``min_accuracy_of_strongest``: a share of
    the strongest tier's accuracy alone), the *cheapest* threshold that meets it and every
    other limit. Without one, the *most accurate* threshold within the limits
    (``max_escalation_rate``, ``max_cost_per_call_usd``, ``max_cost_of_strongest``: a share
    of what the strongest tier alone costs). Ties go to the cheaper, then the
    lower threshold. A threshold whose cascade costs more than the strongest tier alone
    and is no more accurate is never picked: the strongest tier alone would do better.

    ``Objective()`` with no field: the most accurate threshold that costs no more than the
    strongest tier alone.
    """

    min_accuracy: float | None = None
    min_accuracy_of_strongest: float | None = None
    max_escalation_rate: float | None = None
    max_cost_per_call_usd: Decimal | float | str | None = None
    max_cost_of_strongest: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "min_accuracy",
            "min_accuracy_of_strongest",
            "max_escalation_rate",
            "max_cost_of_strongest",
        ):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise ValueError(f"Objective.{name} must be a number >= 0, got {value!r}")
        if self.max_cost_per_call_usd is not None:
            cost = Decimal(str(self.max_cost_per_call_usd))
            if not cost.is_finite() or cost < 0:
                raise ValueError(
                    "Objective.max_cost_per_call_usd must be >= 0, "
                    f"got {self.max_cost_per_call_usd!r}"
                )
            object.__setattr__(self, "max_cost_per_call_usd", cost)

    @property
    def targets_accuracy(self) -> bool:
        return self.min_accuracy is not None or self.min_accuracy_of_strongest is not None

    def describe(self) -> str:
        """The objective in words."""
        limits = []
        if self.max_escalation_rate is not None:
            limits.append(f"escalation rate <= {self.max_escalation_rate:.1%}")
        if self.max_cost_per_call_usd is not None:
            cost = Decimal(str(self.max_cost_per_call_usd))
            limits.append(f"cost <= ${cost * 1000:.3f} per 1k calls")
        if self.max_cost_of_strongest is not None:
            limits.append(f"cost <= {self.max_cost_of_strongest:.0%} of the strongest tier's")
        targets = []
        if self.min_accuracy is not None:
            targets.append(f"accuracy >= {self.min_accuracy:.1%}")
        if self.min_accuracy_of_strongest is not None:
            targets.append(
                f"accuracy >= {self.min_accuracy_of_strongest:.1%} of the strongest tier's"
            )
        if targets:
            return "the cheapest threshold with " + " and ".join(targets + limits)
        if limits:
            return "the most accurate threshold with " + " and ".join(limits)
        return "the most accurate threshold that costs no more than the strongest tier alone"


class NoThresholdMeets(ValueError):
    """No threshold of the sweep meets the objective."""


def pick(rows: Sequence[Row], objective: Objective, strongest: Baseline) -> Row:
    """The row the objective chooses (see :class:`Objective`); :class:`NoThresholdMeets`
    when none qualifies."""
    target = objective.min_accuracy
    if objective.min_accuracy_of_strongest is not None:
        relative = objective.min_accuracy_of_strongest * strongest.accuracy
        target = relative if target is None else max(target, relative)
    cap = objective.max_cost_per_call_usd
    if objective.max_cost_of_strongest is not None:
        share = Decimal(str(objective.max_cost_of_strongest)) * strongest.cost_per_call_usd
        cap = share if cap is None else min(Decimal(str(cap)), share)
    if target is None and cap is None and objective.max_escalation_rate is None:
        cap = strongest.cost_per_call_usd
    feasible = [
        row
        for row in rows
        if not (row.cost_usd > strongest.cost_usd and row.accuracy <= strongest.accuracy)
        and (target is None or row.accuracy >= target - 1e-12)
        and (
            objective.max_escalation_rate is None
            or row.escalation_rate <= objective.max_escalation_rate + 1e-12
        )
        and (cap is None or row.cost_per_call_usd <= Decimal(str(cap)))
    ]
    if not feasible:
        best = max(rows, key=lambda r: (r.accuracy, -r.cost_usd), default=None)
        closest = (
            f"; the most accurate threshold, {best.label}, reaches {best.accuracy:.1%} at "
            f"${best.cost_per_call_usd * 1000:.3f} per 1k calls with "
            f"{best.escalation_rate:.1%} escalated"
            if best is not None
            else ""
        )
        raise NoThresholdMeets(
            f"no threshold meets the objective ({objective.describe()}){closest}; the "
            f"strongest tier alone ({strongest.tier}) reaches {strongest.accuracy:.1%} at "
            f"${strongest.cost_per_call_usd * 1000:.3f} per 1k calls"
        )
    if target is not None:
        return min(feasible, key=lambda r: (r.cost_usd, -r.accuracy, r.threshold))
    return min(feasible, key=lambda r: (-r.correct, r.cost_usd, r.threshold))
