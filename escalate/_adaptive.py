"""Adaptive starts, the pure part: what a receipt says about each tier it reached, the
decayed evidence per tier, the Beta posterior of a tier's pass rate, and the start that
costs least in expectation. No I/O, no lock, no SDK (the state and the store are
``_adapting``'s).

What counts, per tier a call reached (the tiers from its start up):

- a *pass*: the call was answered by that tier (``outcome="answered"``) without moving up;
- a *fail*: the tier moved the call up after a quality failure (validation, a gate, a
  refusal, a truncation, ``on=``, a self-escalation, too slow), or the call ended on that
  tier without an answer (``failed`` or ``best_effort``) after the tier rejected one;
- *neither*: the tier only failed at the provider (moved up with
  ``on_provider_exhausted="escalate"``, or its breakers were open), or the call stopped
  by a budget before the tier said anything. A sideways move inside a tier changes
  nothing: the tier's answer, from whichever deployment, is what counts.

Calls that ended with an error or were cancelled teach nothing. A tier above the start
is judged on the calls that reached it, which are the harder ones (its rate is a
conservative estimate of how it does from a cold start); a tier below the start is not
judged at all. Audits (``purpose="audit"``) are not part of the walk and are left out.

Costs: the cost per call of a tier is what the call's attempts on that tier cost (its
re-asks, retries, samples and follow-ups included), averaged over the calls that reached
it with every cost known. Until a tier's cost is measured its expected costs are unknown,
and a call never starts higher on a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from escalate._beta import beta_interval
from escalate._receipt import QUALITY_TRIGGERS, Adaptive
from escalate.exceptions import ConfigurationError

__all__ = [
    "EXPLORES",
    "AdaptiveStart",
    "Decision",
    "Evidence",
    "TierEvidence",
    "TierSeen",
    "as_adaptive",
    "decide",
    "seen_in",
]

_NO_LESSON = ("error", "cancelled")
EXPLORES = "but this call explores"
"""What an explored call's route reason says (the report counts explored calls by it)."""


@dataclass(frozen=True)
class AdaptiveStart:
    """``escalating(adaptive=AdaptiveStart(...))``: start each call where its task class
    is likely to end, learned from the function's receipts (``adaptive=True`` takes these
    defaults).

    - ``half_life``: how fast old calls are forgotten, in calls: a call's weight halves
      each ``half_life`` later calls observing the same tier (so drift is followed).
    - ``explore``: the share of the calls the estimate would start higher that start on
      the cheapest tier anyway, so its pass rate stays current.
    - ``prior``: the Beta prior ``(a, b)`` of every tier's pass rate (``(1, 1)``: uniform).
    - ``min_observations``: the weight of evidence a tier needs before a call may skip
      it; until then calls start on it.
    - ``usd_per_second``: what a second of waiting is worth to you; adds each tier's
      measured latency to its cost (0: cost alone decides).
    - ``seed_from_store``: with a receipt store configured, learn at first use from the
      store's most recent ``seed_limit`` receipts of the task class (one query, in the
      background: until it is read, calls start as if nothing were known).
    - ``random``: a source of floats in [0, 1) for the exploration draw (tests pass a
      seeded ``random.Random(...).random``).
    """

    half_life: float = 100.0
    explore: float = 0.05
    prior: tuple[float, float] = (1.0, 1.0)
    min_observations: float = 20.0
    usd_per_second: Decimal | float | str = 0
    seed_from_store: bool = True
    seed_limit: int = 1000
    random: Callable[[], float] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = "AdaptiveStart"
        if not _positive(self.half_life):
            raise ConfigurationError(
                f"{where}: half_life is a number of calls > 0, got {self.half_life!r}"
            )
        if not _number(self.explore) or not 0 <= self.explore < 1:
            raise ConfigurationError(
                f"{where}: explore is the share of calls kept cheap, in [0, 1), "
                f"got {self.explore!r}"
            )
        prior = self.prior
        if not isinstance(prior, tuple) or len(prior) != 2 or not all(map(_positive, prior)):
            raise ConfigurationError(
                f"{where}: prior is a Beta prior (a, b) with a, b > 0, got {prior!r}"
            )
        if not _number(self.min_observations) or self.min_observations < 0:
            raise ConfigurationError(
                f"{where}: min_observations is a number of calls >= 0, "
                f"got {self.min_observations!r}"
            )
        most = 1.0 / (1.0 - self.decay)  # the weight a steady stream of calls levels off at
        if self.min_observations >= most:
            raise ConfigurationError(
                f"{where}: min_observations={self.min_observations!r} can never be reached with "
                f"half_life={self.half_life!r}: the decayed weight of evidence levels off at "
                f"{most:.1f} calls; lower it or raise half_life"
            )
        try:
            per_second = Decimal(str(self.usd_per_second))
        except ArithmeticError:
            per_second = Decimal("NaN")
        if isinstance(self.usd_per_second, bool) or not per_second.is_finite() or per_second < 0:
            raise ConfigurationError(
                f"{where}: usd_per_second is dollars per second of latency, >= 0, "
                f"got {self.usd_per_second!r}"
            )
        if not isinstance(self.seed_from_store, bool):
            raise ConfigurationError(
                f"{where}: seed_from_store is True or False, got {self.seed_from_store!r}"
            )
        if isinstance(self.seed_limit, bool) or not isinstance(self.seed_limit, int):
            raise ConfigurationError(
                f"{where}: seed_limit is a number of receipts, got {self.seed_limit!r}"
            )
        if self.seed_limit < 1:
            raise ConfigurationError(f"{where}: seed_limit must be >= 1, got {self.seed_limit}")
        if self.random is not None and not callable(self.random):
            raise ConfigurationError(
                f"{where}: random is a function returning a float in [0, 1), got {self.random!r}"
            )

    @property
    def decay(self) -> float:
        """The factor an observation's weight is multiplied by at each later one."""
        return float(0.5 ** (1.0 / self.half_life))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: object) -> bool:
    return _number(value) and value > 0  # type: ignore[operator]


def as_adaptive(value: object) -> AdaptiveStart | None:
    """The decorator's ``adaptive=`` as a checked setting, or None when off."""
    if value is None or value is False:
        return None
    if value is True:
        return AdaptiveStart()
    if isinstance(value, AdaptiveStart):
        return value
    raise ConfigurationError(
        f"adaptive must be True, False or an AdaptiveStart(...), got {value!r}"
    )


# --- what a receipt says about each tier ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierSeen:
    """One tier as one call saw it."""

    tier: str
    passed: bool | None
    """True: answered here; False: a quality failure here; None: no verdict."""
    cost: Decimal | None
    """What the call's attempts on this tier cost; None when any cost is unknown."""
    latency_s: float


def seen_in(
    start_tier: str,
    outcome: str,
    answered_by: str | None,
    attempts: Sequence[Any],
    moves: Iterable[Any],
) -> tuple[TierSeen, ...]:
    """Each tier a call reached, from its start up, with its verdict and cost. Works on a
    receipt's attempts and moves and on the store's rows alike (the same attribute names)."""
    if outcome in _NO_LESSON:
        return ()
    walked = [a for a in attempts if a.purpose != "audit"]
    order = list(dict.fromkeys(a.tier for a in walked))
    if start_tier in order:
        order = order[order.index(start_tier) :]
    failed_up = {m.from_tier for m in moves if m.kind == "up" and m.trigger in QUALITY_TRIGGERS}
    seen = []
    for position, tier in enumerate(order):
        own = [a for a in walked if a.tier == tier]
        if outcome == "answered" and answered_by == tier:
            passed: bool | None = True
        elif tier in failed_up:
            passed = False
        elif position == len(order) - 1 and any(a.outcome == "rejected" for a in own):
            passed = False  # ended here unanswered (failed or best effort) after a rejection
        else:
            passed = None
        costs = [a.cost_usd for a in own if a.outcome != "skipped"]
        cost = None if any(c is None for c in costs) else sum(costs, Decimal(0))
        latency = sum(float(a.latency_s or 0.0) for a in own)
        seen.append(TierSeen(tier, passed, cost, latency))
    return tuple(seen)


# --- the evidence, decayed --------------------------------------------------------------------


@dataclass
class TierEvidence:
    """A tier's decayed tallies in one task class. Verdicts and costs decay separately,
    each at its own observations."""

    passes: float = 0.0
    fails: float = 0.0
    verdicts: int = 0
    """Verdicts seen (undecayed): how many observations merged seeds must decay by."""
    cost_sum: float = 0.0
    latency_sum: float = 0.0
    cost_weight: float = 0.0
    costs: int = 0

    @property
    def observations(self) -> float:
        return self.passes + self.fails

    def add(self, seen: TierSeen, decay: float) -> None:
        if seen.passed is not None:
            self.passes = self.passes * decay + seen.passed
            self.fails = self.fails * decay + (not seen.passed)
            self.verdicts += 1
        if seen.cost is not None:
            self.cost_sum = self.cost_sum * decay + float(seen.cost)
            self.latency_sum = self.latency_sum * decay + seen.latency_s
            self.cost_weight = self.cost_weight * decay + 1.0
            self.costs += 1

    def merged_under(self, newer: TierEvidence, decay: float) -> TierEvidence:
        """This (older) evidence with ``newer`` observed after it: the older weights decay
        by the newer observations' count, as if they had been seen in order."""
        v, c = decay**newer.verdicts, decay**newer.costs
        return TierEvidence(
            self.passes * v + newer.passes,
            self.fails * v + newer.fails,
            self.verdicts + newer.verdicts,
            self.cost_sum * c + newer.cost_sum,
            self.latency_sum * c + newer.latency_sum,
            self.cost_weight * c + newer.cost_weight,
            self.costs + newer.costs,
        )


Evidence = dict[str, TierEvidence]
"""Tier name -> its evidence, in one task class."""


def learn(evidence: Evidence, seen: Iterable[TierSeen], decay: float) -> None:
    for one in seen:
        evidence.setdefault(one.tier, TierEvidence()).add(one, decay)


# --- the decision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    start: int
    adaptive: Adaptive
    reason: str


def _usd(value: float) -> str:
    if value <= 0:
        return "$0"
    digits = max(4, 2 - math.floor(math.log10(value)))
    return f"${value:.{digits}f}"


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(f"{value:.12g}")


def decide(
    config: AdaptiveStart,
    task_class: str,
    tiers: Sequence[str],
    evidence: Mapping[str, TierEvidence],
    draw: Callable[[], float],
) -> Decision:
    """Where to start: the tier with the lowest expected cost per call, once the tiers it
    skips have ``min_observations`` and every cost it needs is measured; a share
    ``explore`` of the calls that would start higher start cheapest anyway."""
    a, b = config.prior
    found = [evidence.get(t, TierEvidence()) for t in tiers]
    rates = [(a + e.passes) / (a + b + e.observations) for e in found]
    per_second = float(Decimal(str(config.usd_per_second)))
    costs = [
        (e.cost_sum + per_second * e.latency_sum) / e.cost_weight if e.cost_weight > 0 else None
        for e in found
    ]
    expected: list[float | None] = [None] * len(tiers)
    after: float | None = 0.0
    for k in reversed(range(len(tiers))):  # E_k = c_k + (1 - p_k) * E_{k+1}
        c = costs[k]
        after = None if c is None or after is None else c + (1 - rates[k]) * after
        expected[k] = after
    cheap, first = tiers[0], found[0]
    low, high = beta_interval(a + first.passes, b + first.fails)
    said = (
        f"{cheap} passes {rates[0]:.0%} (90%: {low * 100:.0f}-{high:.0%}, "
        f"{first.observations:.0f} calls)"
    )
    start, explored, reason = 0, False, ""
    if len(tiers) == 1:
        reason = f"{cheap} is the only tier"
    elif first.observations < config.min_observations:
        reason = (
            f"{said}: too few calls to skip {cheap} (needs {config.min_observations:g}): "
            f"starting on {cheap}"
        )
    elif expected[0] is None:
        unknown = [t for t, c in zip(tiers, costs, strict=True) if c is None]
        reason = (
            f"{said}, but the cost per call of {', '.join(unknown)} is not measured yet: "
            f"starting on {cheap}, never higher on a guess"
        )
    else:
        start = _cheapest_start(config, found, expected)
        best, cheap_cost = expected[start], expected[0]
        assert best is not None
        if start == 0:
            rival = min(
                (k for k in range(1, len(tiers)) if expected[k] is not None),
                key=lambda k: expected[k] or 0.0,
                default=None,
            )
            rival_cost = None if rival is None else expected[rival]
            if rival is not None and rival_cost is not None and rival_cost < (cheap_cost or 0.0):
                short = next(
                    t
                    for t, e in zip(tiers[:rival], found, strict=False)
                    if e.observations < config.min_observations
                )
                reason = (
                    f"{said}: starting on {tiers[rival]} would cost {_usd(rival_cost)} "
                    f"expected vs {_usd(cheap_cost or 0.0)}, but {short} has too few calls to "
                    f"skip (needs {config.min_observations:g}): starting on {cheap}"
                )
            else:
                vs = "" if rival is None else f" vs {_usd(rival_cost or 0.0)} on {tiers[rival]}"
                reason = f"{said}: starting on {cheap} costs {_usd(cheap_cost or 0.0)} expected{vs}"
        else:
            reason = (
                f"{said}: starting on {tiers[start]} costs {_usd(best)} expected "
                f"vs {_usd(cheap_cost)}"
            )
            if config.explore > 0 and draw() < config.explore:
                reason += f", {EXPLORES}: starting on {cheap}"
                start, explored = 0, True
    return Decision(
        start,
        Adaptive(
            task_class=task_class,
            tier=cheap,
            pass_rate=rates[0],
            low=low,
            high=high,
            observations=first.observations,
            cost_start_cheap=_decimal(expected[0]),
            cost_start_higher=_decimal(expected[1]) if len(tiers) > 1 else None,
            explored=explored,
            expected_costs={
                t: d for t, e in zip(tiers, expected, strict=True) if (d := _decimal(e)) is not None
            }
            or None,
        ),
        reason,
    )


def _cheapest_start(
    config: AdaptiveStart, found: Sequence[TierEvidence], expected: Sequence[float | None]
) -> int:
    """The start with the lowest expected cost among those whose skipped tiers are all
    known well enough (ties go to the cheaper start)."""
    best, best_cost = 0, expected[0]
    for k in range(1, len(expected)):
        if found[k - 1].observations < config.min_observations:
            break
        cost = expected[k]
        if cost is not None and best_cost is not None and cost < best_cost:
            best, best_cost = k, cost
    return best
