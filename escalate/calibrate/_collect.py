"""Collecting observations: every tier of an escalating function, run alone on every item
of an evaluation set, with what it answered, whether that was right, what it cost and the
calibrated gate's score (its threshold disabled). Observations are plain data: a sweep of
thresholds is computed from them, and they are written to and read from JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from escalate._call import CallPath
from escalate._plan import Plan
from escalate._receipt import Attempt, Receipt
from escalate.calibrate._economics import TierRun
from escalate.calibrate._gates import _swap_gate, _Unthresholded, seen_samples
from escalate.calibrate._items import Grader, Item, _grader
from escalate.calibrate._running import (
    _is_async,
    _Outcome,
    _path,
    _settle_async,
    _settle_sync,
)
from escalate.gates import gate_name

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

    def at_samples(
        self, n: int, *, over: Literal["answered", "asked"] = "answered"
    ) -> Observations:
        """These observations as if the consistency gate had drawn only its first ``n``
        samples: each sampled run's majority, agreement score, correctness and cost are
        recomputed from its votes, without calling a model. Collect once at the largest
        ``n``; sweep thresholds at each smaller one (``analyse(obs.at_samples(3))``).
        ``over`` is the gate's agreement measure (see ``consistency(over=...)``)."""
        if n < 2:
            raise ValueError(f"at_samples needs n >= 2, got {n}")
        runs = tuple(tuple(_fewer(run, n, over) for run in item) for item in self.runs)
        note = f"replayed at n={n} from the votes collected"
        return dataclasses.replace(self, runs=runs, notes=(*self.notes, note))

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


def _fewer(run: TierRun, n: int, over: str) -> TierRun:
    """One run as if only its first ``n`` samples had been drawn."""
    if run.votes is None or not run.answered or run.score is None:
        return run
    if len(run.votes) < n:
        raise ValueError(
            f"tier {run.tier} was collected with {len(run.votes)} samples: at_samples({n}) "
            "needs a collection at least that large"
        )
    votes = run.votes[:n]
    cast = [vote for vote in votes if vote is not None]
    cost = run.cost_at[n - 1] if len(run.cost_at) >= n else run.cost_usd
    if len(cast) < 2:  # the gate rejects: too few samples answered
        return dataclasses.replace(run, score=0.0, votes=votes, cost_usd=cost)
    counts = Counter(cast)
    top = max(counts.values())
    majority = next(vote for vote in cast if counts[vote] == top)
    score = top / (len(votes) if over == "asked" else len(cast))
    right = dict(run.vote_correct)
    correct = right.get(majority, run.correct if majority == _majority(run.votes) else False)
    return dataclasses.replace(
        run, score=score, correct=correct, votes=votes, cost_usd=cost, cost_at=run.cost_at[:n]
    )


def _majority(votes: Sequence[str | None]) -> str | None:
    cast = [vote for vote in votes if vote is not None]
    if not cast:
        return None
    counts = Counter(cast)
    return next(vote for vote in cast if counts[vote] == max(counts.values()))


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
        **(
            {
                "votes": list(run.votes),
                "vote_correct": [list(pair) for pair in run.vote_correct],
                "cost_at": [str(cost) for cost in run.cost_at],
            }
            if run.votes is not None
            else {}
        ),
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
        votes=None if data.get("votes") is None else tuple(data["votes"]),
        vote_correct=tuple((str(v), bool(c)) for v, c in data.get("vote_correct", ())),
        cost_at=tuple(Decimal(str(cost)) for cost in data.get("cost_at", ())),
    )


def _answer_attempt(receipt: Receipt) -> Attempt | None:
    """The attempt the engine stamps the gates' scores on: the tier's answer, which comes
    before its samples and follow-ups."""
    extra = ("sample", "follow_up")
    return next((a for a in reversed(receipt.attempts) if a.purpose not in extra), None)


def _tier_run(
    tier: str,
    gate: Any,
    outcome: _Outcome,
    item: Item,
    grade: Grader,
    run_gate: bool,
    seen: Sequence[tuple[Any, ...]] = (),
) -> TierRun:
    value, receipt, answered = outcome
    last = receipt.attempts[-1] if receipt.attempts else None
    answer = _answer_attempt(receipt)
    blocked = None
    if receipt.outcome != "answered":
        blocked = (last.reason if last is not None else None) or receipt.outcome
    name = gate_name(gate)
    score = answer.scores.get(name) if (answer is not None and answered and run_gate) else None
    votes = answer.votes if (answer is not None and run_gate) else None
    return TierRun(
        tier=tier,
        answered=answered,
        correct=bool(answered and grade(value, item)),
        cost_usd=receipt.known_cost_usd,
        score=score,
        blocked=blocked,
        cost_known=receipt.cost_usd is not None,
        votes=votes,
        vote_correct=_vote_correct(gate, seen, item, grade) if votes else (),
        cost_at=_cost_at(receipt, len(votes)) if votes else (),
    )


def _vote_correct(
    gate: Any, seen: Sequence[tuple[Any, ...]], item: Item, grade: Grader
) -> tuple[tuple[str, bool], ...]:
    """Every vote the samples cast, with whether a sample casting it was right."""
    key = getattr(gate, "key", None)
    found: dict[str, bool] = {}
    for samples in seen:
        for sample in samples:
            try:
                vote = str(key(sample)) if callable(key) else repr(sample)
            except Exception:  # a sample the key cannot read casts no vote
                continue
            if vote not in found:
                found[vote] = bool(grade(sample, item))
    return tuple(found.items())


def _cost_at(receipt: Receipt, n: int) -> tuple[Decimal, ...]:
    """The run's cost had only the first 1..n samples been drawn: separate samples drop
    off one by one; the choices of one request share its input, and its output is split
    evenly between them (priced at the attempt's average price per token)."""
    known = [(a.purpose, a.cost_usd) for a in receipt.attempts if a.cost_usd is not None]
    base = sum((cost for purpose, cost in known if purpose != "sample"), Decimal(0))
    samples = [cost for purpose, cost in known if purpose == "sample"]
    answer = _answer_attempt(receipt)
    if answer is not None and answer.choices and answer.cost_usd is not None:
        tokens_in, tokens_out = answer.input_tokens or 0, answer.output_tokens or 0
        whole = tokens_in + tokens_out
        base -= answer.cost_usd
        costs = []
        for m in range(1, n + 1):
            share = Decimal(tokens_in + tokens_out * m / n) / whole if whole else Decimal(1)
            costs.append(base + answer.cost_usd * share)
        return tuple(costs)
    return tuple(base + sum(samples[: m - 1], Decimal(0)) for m in range(1, n + 1))


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

    the_gate = _the_gate(swapped, gate)
    sync_one, async_one = _runners(path, singles, names, the_gate, judge, gated, tick)
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


def _runners(
    path: CallPath,
    singles: Sequence[Plan],
    names: Sequence[str],
    the_gate: Any,
    judge: Grader,
    gated: Sequence[bool],
    tick: Callable[[], None],
) -> tuple[Callable[[int, Item], tuple[TierRun, ...]], Callable[[int, Item], Awaitable[Any]]]:
    """One item's runs on every tier alone, the sync way and the async way."""

    def sync_one(index: int, item: Item) -> tuple[TierRun, ...]:
        runs = []
        for k, single in enumerate(singles):
            seen: list[tuple[Any, ...]] = []
            token = seen_samples.set(seen)
            try:
                outcome = _settle_sync(path, single, item)
            finally:
                seen_samples.reset(token)
            runs.append(_tier_run(names[k], the_gate, outcome, item, judge, gated[k], seen))
        tick()
        return tuple(runs)

    async def async_one(index: int, item: Item) -> tuple[TierRun, ...]:
        runs = []
        for k, single in enumerate(singles):
            seen: list[tuple[Any, ...]] = []
            token = seen_samples.set(seen)
            try:
                outcome = await _settle_async(path, single, item)
            finally:
                seen_samples.reset(token)
            runs.append(_tier_run(names[k], the_gate, outcome, item, judge, gated[k], seen))
        tick()
        return tuple(runs)

    return sync_one, async_one


def _the_gate(plan: Plan, name: str) -> Any:
    """The calibrated gate (wrapped) of ``plan``, from the function's gates or a tier's."""
    every = (*plan.gates, *(g for tier in plan.tiers for g in getattr(tier, "gates", ())))
    return next(g for g in every if gate_name(g) == name)


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
