"""Calibration: pick a gate's threshold with numbers, not by feel.

Run an escalating function's tiers over an evaluation set once, keep what each tier
answered, whether it was right, what it cost and the calibrated gate's score, then sweep
every threshold in memory (no model is called again) and pick one by a stated objective::

    from escalate.calibrate import Item, Objective, calibrate, threshold

    items = [Item(args=(question,), expected=gold) for question, gold in dataset]
    result = calibrate(solve, items, gate="confidence", expected_field="answer",
                       objective=Objective(min_accuracy=0.85))
    print(result.table())            # every threshold: escalation, accuracy, cost, saving
    result.save("escalate-calibration/calibration.json")
    result.plot("escalate-calibration/calibration.png")      # needs escalate[plot]
    result.write_threshold()         # escalate-calibration/thresholds.json

    # where the function is defined:
    gate = self_reported("confidence", threshold("solve.confidence", default=0.8))

How the scores are gathered. Each tier runs alone on each item (a plan with that one tier,
every gate in place, ``when_unmet="best_effort"`` so a refused answer still comes back). The
calibrated gate runs with its threshold *disabled*: when it raises
``Rejected(reason, score=...)``, the score is recorded and the answer passes on to the
gates after it. A rejection without a score does not depend on the threshold, so it
stands. A gate therefore needs to put its score on its rejections (the built-in
``logprob_confidence`` and ``self_reported`` do, and so does :func:`score_gate`), and to
reject exactly when ``score < threshold``.

What the sweep assumes: the cascade starts at the cheapest tier (no ``route=``), the
calibrated gate's tiers have no ``gate_reasks``, the next tier sees the original prompt
(no ``carry_failure``) and no budget stops the walk. :func:`replay` runs the real cascade
at a threshold to check a row of the table.

The worked example, :func:`calibrate_gsm8k` (``escalate calibrate --gsm8k``), calibrates a
mechanical score of GSM8K solutions over recorded answers of Mixtral and GPT-4; see
``docs/calibration.md``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import json
import math
import os
import re
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel

from escalate._call import CallPath, path_of
from escalate._economics import (
    Baseline,
    Economics,
    NoThresholdMeets,
    Objective,
    Row,
    TierRun,
    baselines,
    break_even_rate,
    economics,
    pick,
    sweep,
)
from escalate._plan import Plan
from escalate._receipt import Receipt
from escalate._results import receipt_of
from escalate.exceptions import EscalationFailed
from escalate.gates import GateContext, Rejected, gate_name

__all__ = [
    "THRESHOLDS_ENV",
    "Baseline",
    "Calibration",
    "Economics",
    "GSM8KResult",
    "Grader",
    "Item",
    "NoThresholdMeets",
    "Objective",
    "Observations",
    "Replay",
    "Row",
    "ScoreGate",
    "TierRun",
    "analyse",
    "break_even_rate",
    "calibrate",
    "calibrate_gsm8k",
    "collect",
    "gsm8k_score",
    "load_items",
    "load_thresholds",
    "replay",
    "save_threshold",
    "score_gate",
    "solution_score",
    "threshold",
    "thresholds_path",
]

DEFAULT_DIR = Path("escalate-calibration")
"""Where the command line writes by default: ``calibration.json``, ``calibration.png``
and ``thresholds.json``."""

THRESHOLDS_ENV = "ESCALATE_THRESHOLDS"
"""An environment variable naming the thresholds file, read by :func:`threshold`."""


# --- evaluation items and grading ------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One evaluation item: the escalating function's arguments and the expected output."""

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = None
    id: str | None = None


Grader = Callable[[Any, Item], bool]
"""``grade(answer, item) -> bool``: whether the answer to ``item`` is right."""


def load_items(path: str | os.PathLike[str]) -> list[Item]:
    """Items from a JSONL file, one object a line: ``{"args": [...], "kwargs": {...},
    "expected": ..., "id": ...}``; ``{"input": x}`` is short for ``{"args": [x]}``."""
    items = []
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}:{number}: an item is a JSON object, got {line[:60]!r}")
        args = data.get("args", [data["input"]] if "input" in data else [])
        kwargs = data.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError(f"{path}:{number}: 'args' must be a list and 'kwargs' an object")
        item_id = data.get("id")
        items.append(
            Item(
                tuple(args),
                kwargs,
                data.get("expected"),
                str(item_id) if item_id is not None else None,
            )
        )
    return items


def _field(answer: Any, path: str) -> Any:
    value = answer
    for name in path.split("."):
        value = value[name] if isinstance(value, Mapping) else getattr(value, name)
    return value


def _same(value: Any, expected: Any) -> bool:
    """Equality as a JSON evaluation set means it: ``Decimal("18") == 18 == "18.0"``, and a
    model equals its JSON dump."""
    if isinstance(value, BaseModel) and not isinstance(expected, BaseModel):
        return bool(value.model_dump(mode="json") == expected)
    try:
        if value == expected:
            return True
    except Exception:
        return False
    numeric = (int, float, Decimal, str)
    if (
        isinstance(value, numeric)
        and isinstance(expected, numeric)
        and not isinstance(value, bool)
        and not isinstance(expected, bool)
    ):
        try:
            return Decimal(str(value).strip()) == Decimal(str(expected).strip())
        except ArithmeticError:
            return False
    return False


def _grader(grade: Grader | None, expected_field: str | None) -> Grader:
    if grade is not None and expected_field is not None:
        raise ValueError("give grade= or expected_field=, not both")
    if grade is not None:
        return grade
    if expected_field is not None:
        return lambda answer, item: _same(_field(answer, expected_field), item.expected)
    return lambda answer, item: _same(answer, item.expected)


# --- gates for calibration -----------------------------------------------------------------


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


class _Unthresholded:
    """The calibrated gate with its threshold disabled: a rejection that carries a score
    becomes that score (and the answer passes on); one without a score stands."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.name = gate_name(gate)

    def __call__(self, answer: Any, context: GateContext, /) -> Any:
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


# --- running the function --------------------------------------------------------------------


def _path(fn: Callable[..., Any]) -> tuple[Plan, CallPath]:
    path = path_of(fn)
    return path.current_plan(), path


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


_Outcome = tuple[Any, Receipt, bool]
"""(value, receipt, whether an answer came back)."""


def _settle_sync(path: CallPath, plan: Plan, item: Item) -> _Outcome:
    settled = path.with_plan(plan).settle_sync(tuple(item.args), dict(item.kwargs))
    return settled.value, settled.receipt, settled.answered


async def _settle_async(path: CallPath, plan: Plan, item: Item) -> _Outcome:
    settled = await path.with_plan(plan).settle_async(tuple(item.args), dict(item.kwargs))
    return settled.value, settled.receipt, settled.answered


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


# --- collecting observations ---------------------------------------------------------------


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
            when_unmet="best_effort"
            if data.get("when_unmet") in ("best", "best_effort")
            else "raise",
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
    threshold disabled: see the module docstring).

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
    singles = [
        dataclasses.replace(
            swapped,
            tiers=(tier,),
            when_unmet="best_effort",
            budget_usd=None,
            route=None,
            on_provider_exhausted="escalate",
        )
        for tier in swapped.tiers
    ]
    names = tuple(tier.name for tier in plan.tiers)
    lock = threading.Lock()
    done = [0]

    def tick() -> None:
        if progress is not None:
            with lock:
                done[0] += 1
                progress(done[0], len(items))

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


# --- the analysis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """A sweep of every threshold of one gate, the pick by an objective and the economics.

    ``picked`` is None when no threshold meets the objective (``unmet`` says why).
    """

    observations: Observations
    objective: Objective
    key: str
    """The name the threshold is written under (``"<function>.<gate>"`` by default)."""
    rows: tuple[Row, ...]
    baselines: tuple[Baseline, ...]
    economics: Economics
    picked: Row | None
    unmet: str | None = None

    @property
    def threshold(self) -> float:
        """The picked threshold; :class:`NoThresholdMeets` when there is none."""
        if self.picked is None:
            raise NoThresholdMeets(self.unmet or "no threshold was picked")
        return self.picked.threshold

    def row_at(self, threshold: float) -> Row:
        """The row of the cascade at ``threshold`` (any value, not only a swept one)."""
        return sweep(
            self.observations.runs,
            when_unmet=self.observations.when_unmet,
            thresholds=[threshold],
        )[0]

    # -- text ---------------------------------------------------------------------------------

    def table(self, *, all_rows: bool = False, max_rows: int = 30) -> str:
        """The sweep as a terminal table, with each tier alone, the pick and the economics.

        Up to ``max_rows`` rows are printed in full; past that, the thresholds on the
        cost/accuracy frontier (none cheaper and at least as accurate), the first, the last
        and the picked one (``all_rows`` prints every one; the JSON has them all).
        """
        obs = self.observations
        shown = _shown_rows(self.rows, self.picked, all_rows=all_rows, max_rows=max_rows)
        width = max([len(b.tier) + 6 for b in self.baselines] + [len("picked ->"), 12])
        header = (
            f"{'':<{width}}{'threshold':>11}{'escalated':>11}{'kept acc':>10}{'accuracy':>10}"
            f"{'USD/1k calls':>14}{'saving':>9}"
        )
        lines = [
            f"Calibration of gate {obs.gate!r} on {obs.function}: {len(obs.items)} items, "
            f"tiers {' -> '.join(obs.tiers)}",
            _wrap(
                "A call escalates when the gate's score < threshold. kept acc: accuracy of "
                f"the answers kept on {obs.tiers[0]}. saving: against {obs.tiers[-1]} alone."
            ),
            "",
            header,
        ]
        strongest = self.baselines[-1]
        for baseline in self.baselines:
            saving = (
                f"{float(1 - baseline.cost_usd / strongest.cost_usd):>9.1%}"
                if strongest.cost_usd
                else f"{'-':>9}"
            )
            lines.append(
                f"{baseline.tier + ' alone':<{width}}{'-':>11}{'-':>11}{'-':>10}"
                f"{baseline.accuracy:>10.1%}{_per_k(baseline.cost_per_call_usd):>14}{saving}"
            )
        previous: Row | None = None
        for row in shown:
            if previous is not None and self.rows.index(row) != self.rows.index(previous) + 1:
                lines.append(f"{'':<{width}}{'...':>11}")
            lines.append(self._row_line(row, width))
            previous = row
        lines.append("")
        if len(shown) < len(self.rows):
            lines.append(
                f"({len(shown)} of {len(self.rows)} thresholds shown: the cost/accuracy "
                "frontier; every one is in the JSON)"
            )
        rate = self.picked.escalation_rate if self.picked is not None else None
        lines.append(_wrap(self.economics.describe(rate)))
        lines.append(_wrap(f"Objective: {self.objective.describe()}."))
        if self.picked is not None:
            row = self.picked
            lines.append(
                _wrap(
                    f"Picked: {self.key} = {row.threshold!r}: accuracy {row.accuracy:.1%}, "
                    f"{row.escalation_rate:.1%} escalated, ${_per_k(row.cost_per_call_usd)} "
                    f"per 1k calls ({_saving(row)} saved against {obs.tiers[-1]} alone)."
                )
            )
        else:
            lines.append(_wrap(f"No threshold picked: {self.unmet}"))
        lines.extend(_wrap(f"Note: {note}") for note in obs.notes)
        return "\n".join(lines)

    def _row_line(self, row: Row, width: int) -> str:
        mark = "picked ->" if row is self.picked else ""
        kept = "-" if row.kept_accuracy is None else f"{row.kept_accuracy:.1%}"
        flag = ""
        if row.cost_usd > row.strongest_cost_usd:
            flag = f"  costs more than {self.observations.tiers[-1]} alone"
        return (
            f"{mark:<{width}}{row.label:>11}{row.escalation_rate:>11.1%}{kept:>10}"
            f"{row.accuracy:>10.1%}{_per_k(row.cost_per_call_usd):>14}"
            f"{_saving(row):>9}{flag}"
        )

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-able data: the rows (read back, they are recomputed from
        the observations), the pick, the economics and the observations themselves."""
        econ = self.economics
        return {
            "key": self.key,
            "gate": self.observations.gate,
            "function": self.observations.function,
            "tiers": list(self.observations.tiers),
            "items": len(self.observations.items),
            "objective": _objective_dict(self.objective),
            "objective_text": self.objective.describe(),
            "picked": None if self.picked is None else _row_dict(self.picked),
            "unmet": self.unmet,
            "economics": {
                "cheapest": econ.cheapest,
                "strongest": econ.strongest,
                "cheapest_cost_per_call_usd": str(econ.cheapest_cost_per_call_usd),
                "strongest_cost_per_call_usd": str(econ.strongest_cost_per_call_usd),
                "break_even_escalation_rate": econ.break_even_escalation_rate,
            },
            "baselines": [
                {
                    "tier": b.tier,
                    "accuracy": b.accuracy,
                    "correct": b.correct,
                    "cost_usd": str(b.cost_usd),
                    "cost_per_call_usd": str(b.cost_per_call_usd),
                }
                for b in self.baselines
            ],
            "rows": [_row_dict(row) for row in self.rows],
            "observations": self.observations.to_dict(),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Read back :meth:`to_dict`: the sweep and the pick are recomputed from the
        observations (so a file edited by hand cannot disagree with itself)."""
        thresholds = [float(row["threshold"]) for row in data["rows"]]
        return analyse(
            Observations.from_dict(data["observations"]),
            _objective_from(data.get("objective") or {}),
            key=str(data["key"]),
            thresholds=thresholds,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Calibration:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` (folders made as needed)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def write_threshold(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the picked threshold under :attr:`key` into the thresholds file that
        :func:`threshold` reads (default: :func:`thresholds_path`); other keys are kept."""
        row = self.picked
        if row is None:
            raise NoThresholdMeets(self.unmet or "no threshold was picked")
        return save_threshold(
            self.key,
            row.threshold,
            path=path,
            source={
                "objective": self.objective.describe(),
                "items": row.items,
                "accuracy": row.accuracy,
                "escalation_rate": row.escalation_rate,
                "cost_per_call_usd": str(row.cost_per_call_usd),
                "break_even_escalation_rate": self.economics.break_even_escalation_rate,
                "calibrated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    # -- the plot -----------------------------------------------------------------------------

    def plot(self, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
        """Draw cost per 1k calls against accuracy to a PNG: one point per threshold, each
        tier alone, the picked threshold highlighted. Needs matplotlib
        (``pip install 'escalate[plot]'``); draws off-screen, without touching pyplot."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError(
                "Calibration.plot needs matplotlib: pip install 'escalate[plot]'"
            ) from None
        figure = Figure(figsize=(8, 5.5), dpi=120)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        ordered = sorted(self.rows, key=lambda r: (r.cost_usd, r.accuracy))
        axes.plot(
            [float(r.cost_per_call_usd) * 1000 for r in ordered],
            [r.accuracy * 100 for r in ordered],
            "o-",
            color="#4c72b0",
            markersize=3.5,
            linewidth=1,
            label=f"cascade, one point per threshold of {self.observations.gate}",
        )
        markers = ["s", "D", "^", "v", "P"]
        for index, baseline in enumerate(self.baselines):
            axes.plot(
                [float(baseline.cost_per_call_usd) * 1000],
                [baseline.accuracy * 100],
                markers[index % len(markers)],
                color="#55a868" if index == 0 else "#c44e52",
                markersize=9,
                label=f"{baseline.tier} alone",
            )
        strongest = float(self.baselines[-1].cost_per_call_usd) * 1000
        axes.axvline(
            strongest,
            color="#c44e52",
            linestyle=":",
            linewidth=1,
            label=f"cost of {self.baselines[-1].tier} alone (break-even)",
        )
        if self.picked is not None:
            row = self.picked
            x, y = float(row.cost_per_call_usd) * 1000, row.accuracy * 100
            axes.plot(
                [x],
                [y],
                "*",
                color="#dd8452",
                markersize=18,
                markeredgecolor="black",
                label=f"picked: threshold {row.label}",
            )
            axes.annotate(
                f"  {row.label}: {row.accuracy:.1%}, {row.escalation_rate:.0%} escalated",
                (x, y),
                textcoords="offset points",
                xytext=(8, -14),
                fontsize=9,
            )
        axes.set_xlabel("cost per 1,000 calls (USD)")
        axes.set_ylabel("accuracy (%)")
        axes.set_title(
            title or f"{self.key}: cost against accuracy over {len(self.observations.items)} items",
            fontsize=11,
        )
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
        figure.tight_layout()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png")
        return target


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100, break_on_hyphens=False)


def _per_k(cost: Decimal) -> str:
    return f"{cost * 1000:.3f}"


def _saving(row: Row) -> str:
    saving = row.saving
    return "-" if saving is None else f"{saving:.1%}"


def _shown_rows(
    rows: Sequence[Row], picked: Row | None, *, all_rows: bool, max_rows: int
) -> list[Row]:
    if all_rows or len(rows) <= max_rows:
        return list(rows)
    frontier = {
        id(row)
        for row in rows
        if not any(
            other.cost_usd <= row.cost_usd
            and other.correct >= row.correct
            and (other.cost_usd < row.cost_usd or other.correct > row.correct)
            for other in rows
        )
    }
    keep = {id(rows[0]), id(rows[-1]), *frontier}
    if picked is not None:
        keep.add(id(picked))
    return [row for row in rows if id(row) in keep]


def _row_dict(row: Row) -> dict[str, Any]:
    return {
        "threshold": row.threshold,
        "label": row.label,
        "items": row.items,
        "escalated": row.escalated,
        "escalation_rate": row.escalation_rate,
        "kept": row.kept,
        "kept_accuracy": row.kept_accuracy,
        "correct": row.correct,
        "accuracy": row.accuracy,
        "failed": row.failed,
        "cost_usd": str(row.cost_usd),
        "cost_per_call_usd": str(row.cost_per_call_usd),
        "saving_vs_strongest": row.saving,
        "costs_more_than_strongest": row.cost_usd > row.strongest_cost_usd,
    }


def _objective_dict(objective: Objective) -> dict[str, Any]:
    cost = objective.max_cost_per_call_usd
    return {
        "min_accuracy": objective.min_accuracy,
        "min_accuracy_of_strongest": objective.min_accuracy_of_strongest,
        "max_escalation_rate": objective.max_escalation_rate,
        "max_cost_per_call_usd": None if cost is None else str(cost),
    }


def _objective_from(data: Mapping[str, Any]) -> Objective:
    return Objective(
        min_accuracy=data.get("min_accuracy"),
        min_accuracy_of_strongest=data.get("min_accuracy_of_strongest"),
        max_escalation_rate=data.get("max_escalation_rate"),
        max_cost_per_call_usd=data.get("max_cost_per_call_usd"),
    )


def analyse(
    observations: Observations,
    objective: Objective | None = None,
    *,
    key: str | None = None,
    thresholds: Sequence[float] | None = None,
) -> Calibration:
    """Sweep the thresholds over ``observations`` and pick one by ``objective`` (default:
    ``Objective()``). No model is called: run it again with another objective at will."""
    objective = objective or Objective()
    runs = observations.runs
    rows = tuple(sweep(runs, when_unmet=observations.when_unmet, thresholds=thresholds))
    alone = tuple(baselines(runs, observations.tiers))
    picked: Row | None = None
    unmet = None
    try:
        picked = pick(rows, objective, alone[-1])
    except NoThresholdMeets as error:
        unmet = str(error)
    return Calibration(
        observations=observations,
        objective=objective,
        key=key or f"{observations.function.rpartition('.')[2]}.{observations.gate}",
        rows=rows,
        baselines=alone,
        economics=economics(runs, observations.tiers),
        picked=picked,
        unmet=unmet,
    )


def calibrate(
    fn: Callable[..., Any],
    items: Sequence[Item],
    *,
    gate: str,
    grade: Grader | None = None,
    expected_field: str | None = None,
    objective: Objective | None = None,
    key: str | None = None,
    concurrency: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> Calibration:
    """:func:`collect` the observations of ``fn`` over ``items``, then :func:`analyse`
    them: the sweep of every threshold of ``gate``, the pick by ``objective`` and the
    economics. ``key`` names the threshold in the thresholds file (default
    ``"<function name>.<gate>"``)."""
    observations = collect(
        fn,
        items,
        gate=gate,
        grade=grade,
        expected_field=expected_field,
        concurrency=concurrency,
        progress=progress,
    )
    return analyse(observations, objective, key=key)


# --- the thresholds file ------------------------------------------------------------------


def thresholds_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The thresholds file: ``path`` if given, else ``$ESCALATE_THRESHOLDS``, else
    ``escalate-calibration/thresholds.json`` under the working directory."""
    if path is not None:
        return Path(path)
    env = os.environ.get(THRESHOLDS_ENV)
    return Path(env) if env else DEFAULT_DIR / "thresholds.json"


def load_thresholds(path: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Every threshold in the file (empty when there is no file)."""
    target = thresholds_path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = json.loads(text)
    values = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(values, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()
    ):
        raise ValueError(f"{target} is not a thresholds file: no 'thresholds' object of numbers")
    return {str(k): float(v) for k, v in values.items()}


def threshold(key: str, *, default: float, path: str | os.PathLike[str] | None = None) -> float:
    """The calibrated threshold named ``key``, or ``default`` when the file or the key is
    absent; use it where the gate is built::

        gate = self_reported("confidence", threshold("solve.self_reported", default=0.8))

    The file is :func:`thresholds_path` (``path``, ``$ESCALATE_THRESHOLDS``, or
    ``escalate-calibration/thresholds.json``), written by ``escalate calibrate`` and
    :meth:`Calibration.write_threshold`. A file that is not a thresholds file raises.
    """
    return load_thresholds(path).get(key, float(default))


def save_threshold(
    key: str,
    value: float,
    *,
    path: str | os.PathLike[str] | None = None,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``key = value`` into the thresholds file, keeping its other keys; ``source``
    (what it was calibrated on) is kept beside it for readers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"a threshold is a finite number, got {value!r}")
    target = thresholds_path(path)
    data: dict[str, Any] = {"thresholds": {}, "sources": {}}
    if target.exists():
        loaded = json.loads(target.read_text(encoding="utf-8"))
        load_thresholds(target)  # refuse to overwrite a file of another kind
        data.update(loaded)
    data["thresholds"] = {**data.get("thresholds", {}), key: float(value)}
    data["sources"] = {**data.get("sources", {}), key: dict(source or {})}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


# --- replaying the cascade -----------------------------------------------------------------


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
            return _wrap(text + ": matches the table's row exactly.")
        return _wrap(
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
    correct = escalated = failed = 0
    cost = Decimal(0)
    for item, (value, receipt, answered) in zip(items, outcomes, strict=True):
        correct += bool(answered and judge(value, item))
        escalated += receipt.escalated
        failed += not answered
        cost += receipt.known_cost_usd
    return Replay(threshold, len(items), correct, escalated, failed, cost)


# --- the worked example: GSM8K ------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.,])\$?(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?")
_QUESTION = re.compile(r"Question: (?P<q>.*)\nAnswer:\s*$", re.DOTALL)


def _numbers(text: str) -> set[Decimal]:
    return {
        Decimal(m.group(1).replace(",", "") + (m.group(2) or "")).normalize()
        for m in _NUMBER.finditer(text)
    }


def solution_score(question: str, reasoning: str, answer: Decimal | None) -> float:
    """A mechanical score of a worked solution to a word problem, from 0 to 1; nothing
    but the text is read, no model is asked.

    - 0 when no final answer is stated (``#### N`` or "the answer is N"), or the answer is
      not a whole non-negative number (GSM8K's answers all are);
    - else each wrong calculation written in the reasoning
      (:func:`escalate.demo.arithmetic.arithmetic_errors`) halves the score, and a reasoning
      that leaves some of the question's numbers unused loses up to half:
      ``0.5 ** wrong * (1 + share of the question's numbers used) / 2``.

    Rounded to 4 decimals, so equal scores print alike.
    """
    from escalate.demo.answers import has_answer_line
    from escalate.demo.arithmetic import arithmetic_errors

    if answer is None or not has_answer_line(reasoning):
        return 0.0
    if answer != answer.to_integral_value() or answer < 0:
        return 0.0
    wrong = len(arithmetic_errors(reasoning))
    given = _numbers(question)
    used = len(given & _numbers(reasoning)) / len(given) if given else 1.0
    return round(0.5**wrong * (1 + used) / 2, 4)


def gsm8k_score(solution: Any, context: GateContext) -> float:
    """:func:`solution_score` of a ``Solution`` (``reasoning``, ``answer``), the question
    read from the call's first argument, else from the prompt's last ``Question:``."""
    if context.args and isinstance(context.args[0], str):
        question = context.args[0]
    else:
        last = next(
            (str(m.get("content", "")) for m in reversed(context.messages) if m["role"] == "user"),
            "",
        )
        match = _QUESTION.search(last.rsplit("\n\n", 1)[-1])
        question = match.group("q") if match else ""
    return solution_score(question, solution.reasoning, solution.answer)


@dataclass(frozen=True)
class GSM8KResult:
    """The worked example's calibration, and the replay of the cascade at its pick."""

    calibration: Calibration
    replay: Replay | None

    @property
    def matches(self) -> bool:
        """Whether the replay agrees with the picked row exactly."""
        picked = self.calibration.picked
        return picked is not None and self.replay is not None and not self.replay.mismatches(picked)

    def report(self, *, all_rows: bool = False) -> str:
        text = self.calibration.table(all_rows=all_rows)
        if self.replay is not None:
            text += "\n" + self.replay.describe(self.calibration.picked)
        return text


GSM8K_GATE = "gsm8k_score"


def calibrate_gsm8k(
    *,
    limit: int | None = None,
    objective: Objective | None = None,
    replay_pick: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> GSM8KResult:
    """The worked example: calibrate :func:`gsm8k_score` on the Mixtral tier of a Mixtral
    -> GPT-4 cascade over real recorded GSM8K answers (``limit`` questions spread over the
    654 uncontaminated dev questions; all by default), served through the local provider
    server and the real openai SDK and instructor. With ``replay_pick``, the cascade is then
    rebuilt with the gate at the picked threshold and run again, to check the table."""
    from escalate.demo import build_solver, cheap_tier, sample, serve_recorded, strong_tier
    from escalate.testing._server import ProviderServer

    problems = sample(limit)
    items = [Item(args=(p.question,), expected=p.gold, id=str(p.index)) for p in problems]
    with ProviderServer() as server:
        serve_recorded(server, problems)

        def solver(at: float) -> Callable[[str], Any]:
            gate = score_gate(gsm8k_score, at, name=GSM8K_GATE)
            return build_solver([cheap_tier(server, gates=[gate]), strong_tier(server)])

        # The threshold the function is built with does not matter: collect() disables it.
        calibration = calibrate(
            solver(0.9),
            items,
            gate=GSM8K_GATE,
            expected_field="answer",
            objective=objective,
            progress=progress,
        )
        checked = None
        if replay_pick and calibration.picked is not None:
            at = calibration.picked.threshold
            checked = replay(solver(at), items, expected_field="answer")
            checked = dataclasses.replace(checked, threshold=at)
    return GSM8KResult(calibration, checked)


def import_function(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` to the function (for the command line)."""
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise ValueError(f"expected module:function, got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


def print_progress(out: IO[str]) -> Callable[[int, int], None]:
    """A ``progress`` callback printing every tenth of the way to ``out``."""

    def report(done: int, total: int) -> None:
        step = max(total // 10, 1)
        if done % step == 0 or done == total:
            print(f"  ran every tier on {done}/{total} items", file=out, flush=True)

    return report
