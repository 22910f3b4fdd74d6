"""The gates of calibration: a score function as a gate, and the calibrated gate's
threshold disabled (to gather scores) or moved (to replay the cascade at another one).

A calibratable gate rejects exactly when ``score < threshold`` and puts its score on the
rejection (``Rejected(reason, score=...)``); a rejection without a score does not depend
on the threshold, so it stands whatever the threshold.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from escalate._plan import Plan
from escalate.gates import GateContext, Rejected, gate_name

__all__ = ["ScoreGate", "score_gate"]


@dataclass(frozen=True)
class ScoreGate:
    """A gate from a score function: the score is kept on every answer (passing or not),
    and an answer scoring below ``threshold`` is rejected (see :func:`score_gate`)."""

    score: Callable[[Any, GateContext], float]
    threshold: float
    name: str

    def __call__(self, answer: Any, context: GateContext, /) -> float:
        value = float(self.score(answer, context))
        if value < self.threshold:
            raise Rejected(f"score {value:.4g} < {self.threshold:.4g}", score=value)
        return value


def score_gate(
    score: Callable[[Any, GateContext], float], threshold: float, *, name: str | None = None
) -> ScoreGate:
    """Turn ``score(answer, context) -> float`` into a calibratable gate: it rejects when
    ``score < threshold`` and records the score on the receipt either way
    (``attempt.scores[name]``; the name defaults to the function's)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"score_gate: threshold must be a number, got {threshold!r}")
    return ScoreGate(score, float(threshold), name or str(getattr(score, "__name__", "score")))


seen_samples: contextvars.ContextVar[list[tuple[Any, ...]] | None] = contextvars.ContextVar(
    "escalate_calibrate_samples", default=None
)
"""Where the calibrated gate's wrapper puts the samples it was shown, for the collection in
progress in this thread or task (to grade each sample: see ``_collect``)."""


class _Unthresholded:
    """The calibrated gate with its threshold disabled: a rejection that carries a score
    becomes that score (and the answer passes on); one without a score stands.

    Every capability of the gate (``samples`` and ``choose`` of a sampling gate, a
    ``follow_up`` question, ``check_tier``, ``request_kwargs``, a consistency gate's
    ``key``, ``one_request``, ``stop_early``) is the gate's own, so the engine samples and
    asks follow-ups under calibration exactly as it does in a real call."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.name = gate_name(gate)

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "gate":  # not set yet (unpickling): no recursion
            raise AttributeError(attribute)
        return getattr(self.gate, attribute)

    @property
    def stop_early(self) -> bool:
        """Never under calibration: every sample is drawn, so smaller ``n`` can be replayed
        from the one collection (``Observations.at_samples``)."""
        return False

    def __call__(self, answer: Any, context: GateContext, /) -> Any:
        seen = seen_samples.get()
        if seen is not None and context.samples:
            seen.append(tuple(context.samples))
        try:
            result = self.gate(answer, context)
        except Rejected as rejection:
            if rejection.score is None:
                raise
            return float(rejection.score)
        if inspect.isawaitable(result):
            return self._settle(result)
        return result

    async def _settle(self, result: Awaitable[Any]) -> Any:
        try:
            return await result
        except Rejected as rejection:
            if rejection.score is None:
                raise
            return float(rejection.score)


class _AtThreshold(_Unthresholded):
    """The calibrated gate at another threshold: rejects when its score is below it."""

    def __init__(self, gate: Any, threshold: float) -> None:
        super().__init__(gate)
        self.threshold = threshold

    def __call__(self, answer: Any, context: GateContext, /) -> Any:
        result = super().__call__(answer, context)
        if inspect.isawaitable(result):
            return self._judge_later(result)
        return self._judge(result)

    async def _judge_later(self, result: Awaitable[Any]) -> Any:
        return self._judge(await result)

    def _judge(self, score: Any) -> Any:
        if isinstance(score, (int, float)) and score < self.threshold:
            raise Rejected(f"score {score:.4g} < {self.threshold:.4g}", score=float(score))
        return score


def _swap_gate(plan: Plan, gate: str, make: Callable[[Any], Any]) -> tuple[Plan, list[bool]]:
    """``plan`` with every gate named ``gate`` replaced by ``make(gate)``, and which tiers
    it runs on; ValueError when the plan has no such gate."""

    def swap(gates: Iterable[Any]) -> tuple[Any, ...]:
        return tuple(make(g) if gate_name(g) == gate else g for g in gates)

    found = {gate_name(g) for g in plan.gates}
    tiers, gated = [], []
    for tier in plan.tiers:
        own = tuple(getattr(tier, "gates", ()))
        found |= {gate_name(g) for g in own}
        runs_here = any(gate_name(g) == gate for g in (*plan.gates, *own))
        gated.append(runs_here)
        if runs_here and int(getattr(tier, "gate_reasks", 0)):
            raise ValueError(
                f"tier {tier.name!r} re-asks on a gate's rejection (gate_reasks="
                f"{tier.gate_reasks}): a sweep cannot predict re-asked answers; calibrate "
                "with gate_reasks=0"
            )
        if any(gate_name(g) == gate for g in own):
            tier = dataclasses.replace(tier, gates=swap(own))  # type: ignore[type-var]
        tiers.append(tier)
    if gate not in found:
        raise ValueError(
            f"{plan.function} has no gate named {gate!r}; its gates: "
            f"{', '.join(sorted(found)) or '(none)'}"
        )
    return dataclasses.replace(plan, tiers=tuple(tiers), gates=swap(plan.gates)), gated
