"""Collecting observations: every tier of an escalating function, run alone on every item
of an evaluation set, with what it answered, whether that was right, what it cost and the
calibrated gate's score (its threshold disabled). Observations are plain data: a sweep of
thresholds is computed from them, and they are written to and read from JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from escalate._plan import Plan
from escalate.calibrate._economics import TierRun
from escalate.calibrate._gates import _swap_gate, _Unthresholded
from escalate.calibrate._items import Grader, Item, _grader
from escalate.calibrate._running import (
    _is_async,
    _Outcome,
    _path,
    _settle_async,
    _settle_sync,
)

__all__ = ["Observations", "collect"]


@dataclass(frozen=True)
class Observations:
    """What every tier of a function, run alone, did with every item of an evaluation set:
    everything a sweep needs, so thresholds can be tried again without calling a model."""

    function: str
    gate: str
    tiers: tuple[str, ...]
    gated: tuple[bool, ...]
    """Whether the calibrated gate runs on each tier."""
    when_unmet: Literal["raise", "best_effort"]
    items: tuple[str, ...]
    """The items' ids."""
    runs: tuple[tuple[TierRun, ...], ...]
    """``runs[i][k]``: tier ``k`` on item ``i``."""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "gate": self.gate,
            "tiers": list(self.tiers),
            "gated": list(self.gated),
            "when_unmet": self.when_unmet,
            "notes": list(self.notes),
            "items": [
                {"id": item, "tiers": [_run_dict(run) for run in runs]}
                for item, runs in zip(self.items, self.runs, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observations:
        return cls(
            function=str(data["function"]),
            gate=str(data["gate"]),
            tiers=tuple(data["tiers"]),
            gated=tuple(bool(g) for g in data["gated"]),
            when_unmet=_when_unmet(data.get("when_unmet")),
            items=tuple(str(item["id"]) for item in data["items"]),
            runs=tuple(tuple(_run_from(run) for run in item["tiers"]) for item in data["items"]),
            notes=tuple(data.get("notes", ())),
        )


def _when_unmet(value: object) -> Literal["raise", "best_effort"]:
    # Observations saved before the rename say "best".
    return "best_effort" if value in ("best", "best_effort") else "raise"


def _run_dict(run: TierRun) -> dict[str, Any]:
    return {
        "tier": run.tier,
        "answered": run.answered,
        "correct": run.correct,
        "cost_usd": str(run.cost_usd),
        "cost_known": run.cost_known,
        "score": run.score,
        "blocked": run.blocked,
    }


def _run_from(data: Mapping[str, Any]) -> TierRun:
    score = data.get("score")
    return TierRun(
        tier=str(data["tier"]),
        answered=bool(data["answered"]),
        correct=bool(data["correct"]),
        cost_usd=Decimal(str(data["cost_usd"])),
        score=None if score is None else float(score),
        blocked=data.get("blocked"),
        cost_known=bool(data.get("cost_known", True)),
    )


def _tier_run(
    tier: str, gate: str, outcome: _Outcome, item: Item, grade: Grader, run_gate: bool
) -> TierRun:
    value, receipt, answered = outcome
    last = receipt.attempts[-1] if receipt.attempts else None
    blocked = None
    if receipt.outcome != "answered":
        blocked = (last.reason if last is not None else None) or receipt.outcome
    score = last.scores.get(gate) if (last is not None and answered and run_gate) else None
    return TierRun(
        tier=tier,
        answered=answered,
        correct=bool(answered and grade(value, item)),
        cost_usd=receipt.known_cost_usd,
        score=score,
        blocked=blocked,
        cost_known=receipt.cost_usd is not None,
    )


def collect(
    fn: Callable[..., Any],
    items: Sequence[Item],
    *,
    gate: str,
    grade: Grader | None = None,
    expected_field: str | None = None,
    concurrency: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> Observations:
    """Run each tier of the escalating function ``fn`` alone on every item, and record
    each answer's correctness, cost and the score of the gate named ``gate`` (with its
    threshold disabled: see :mod:`escalate.calibrate`).

    Correctness is ``grade(answer, item)``; or, with ``expected_field``, that field of the
    answer against ``item.expected``; else the whole answer against ``item.expected``
    (numbers compare by value, a model by its JSON dump). A sync ``fn`` runs the items in
    order; an async one runs ``concurrency`` at a time. ``progress(done, total)`` is
    called after each item.
    """
    if not items:
        raise ValueError("the evaluation set is empty")
    judge = _grader(grade, expected_field)
    plan, path = _path(fn)
    if len(plan.tiers) < 2:
        raise ValueError(f"{plan.function} has one tier: there is nothing to escalate to")
    swapped, gated = _swap_gate(plan, gate, _Unthresholded)
    singles = _alone(swapped)
    names = tuple(tier.name for tier in plan.tiers)
    tick = _ticker(progress, len(items))

    def sync_one(index: int, item: Item) -> tuple[TierRun, ...]:
        runs = tuple(
            _tier_run(names[k], gate, _settle_sync(path, single, item), item, judge, gated[k])
            for k, single in enumerate(singles)
        )
        tick()
        return runs

    async def async_one(index: int, item: Item) -> tuple[TierRun, ...]:
        runs = []
        for k, single in enumerate(singles):
            outcome = await _settle_async(path, single, item)
            runs.append(_tier_run(names[k], gate, outcome, item, judge, gated[k]))
        tick()
        return tuple(runs)

    runs = _map(fn, items, sync_one, async_one, concurrency)
    notes = _notes(plan, runs, names)
    return Observations(
        function=plan.function,
        gate=gate,
        tiers=names,
        gated=tuple(gated),
        when_unmet=plan.when_unmet,
        items=tuple(item.id if item.id is not None else str(i) for i, item in enumerate(items)),
        runs=tuple(runs),
        notes=tuple(notes),
    )


def _alone(plan: Plan) -> list[Plan]:
    """One plan per tier with that tier alone: every gate in place, a refused answer still
    returned (``when_unmet="best_effort"``), and nothing that would stop or skip the tier."""
    return [
        dataclasses.replace(
            plan,
            tiers=(tier,),
            when_unmet="best_effort",
            budget_usd=None,
            route=None,
            on_provider_exhausted="escalate",
        )
        for tier in plan.tiers
    ]


def _ticker(progress: Callable[[int, int], None] | None, total: int) -> Callable[[], None]:
    """A callback counting finished items into ``progress(done, total)``; the lock keeps
    the count right when an async function runs items concurrently."""
    lock = threading.Lock()
    done = [0]

    def tick() -> None:
        if progress is not None:
            with lock:
                done[0] += 1
                progress(done[0], total)

    return tick


def _notes(plan: Plan, runs: Sequence[Sequence[TierRun]], names: Sequence[str]) -> list[str]:
    notes = []
    for k, name in enumerate(names):
        unknown = sum(not item[k].cost_known for item in runs)
        if unknown:
            notes.append(
                f"tier {name}: {unknown} of {len(runs)} answers have no known price; their "
                "costs count as 0 (give the tier a Price)"
            )
    if plan.carry_failure:
        notes.append(
            "carry_failure=True: the real cascade shows the next tier the refused answer; "
            "the sweep uses each tier's answer to the original prompt"
        )
    if plan.budget_usd is not None:
        notes.append("the function's budget_usd is not applied by the sweep")
    if plan.route is not None:
        notes.append("the sweep starts every call at the cheapest tier, ignoring route=")
    return notes


def _map(
    fn: Callable[..., Any],
    items: Sequence[Item],
    sync_one: Callable[[int, Item], Any],
    async_one: Callable[[int, Item], Awaitable[Any]],
    concurrency: int,
) -> list[Any]:
    """Run every item, in order for a sync function, ``concurrency`` at a time for an
    async one (in a fresh event loop)."""
    if not _is_async(fn):
        return [sync_one(index, item) for index, item in enumerate(items)]
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")

    async def run_all() -> list[Any]:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(index: int, item: Item) -> Any:
            async with semaphore:
                return await async_one(index, item)

        return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))

    return asyncio.run(run_all())
