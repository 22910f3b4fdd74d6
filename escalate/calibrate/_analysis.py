"""The analysis: every threshold of the calibrated gate swept over the observations, one
picked by an objective, the economics beside them; a :class:`Calibration` holds it all,
prints it, plots it, writes it to JSON and reads it back. No model is called here except
by :func:`calibrate`, which collects first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from escalate.calibrate._collect import Observations, collect
from escalate.calibrate._economics import (
    Baseline,
    Economics,
    NoThresholdMeets,
    Objective,
    Row,
    baselines,
    economics,
    pick,
    sweep,
)
from escalate.calibrate._items import Grader, Item
from escalate.calibrate._render import (
    baseline_lines,
    draw_plot,
    head_lines,
    label_width,
    row_lines,
    shown_rows,
    verdict_lines,
)
from escalate.calibrate._thresholds import save_threshold

__all__ = ["Calibration", "analyse", "calibrate"]


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
        shown = shown_rows(self.rows, self.picked, all_rows=all_rows, max_rows=max_rows)
        width = label_width(self.baselines)
        lines = [
            *head_lines(obs, width),
            *baseline_lines(self.baselines, width),
            *row_lines(self.rows, shown, self.picked, width, obs.tiers[-1]),
            "",
        ]
        if len(shown) < len(self.rows):
            lines.append(
                f"({len(shown)} of {len(self.rows)} thresholds shown: the cost/accuracy "
                "frontier; every one is in the JSON)"
            )
        lines += verdict_lines(
            obs, self.economics, self.objective, self.key, self.picked, self.unmet
        )
        return "\n".join(lines)

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
        return draw_plot(
            path,
            rows=self.rows,
            baselines=self.baselines,
            picked=self.picked,
            gate=self.observations.gate,
            title=title
            or f"{self.key}: cost against accuracy over {len(self.observations.items)} items",
        )


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
    data: dict[str, Any] = {
        "min_accuracy": objective.min_accuracy,
        "min_accuracy_of_strongest": objective.min_accuracy_of_strongest,
        "max_escalation_rate": objective.max_escalation_rate,
        "max_cost_per_call_usd": None if cost is None else str(cost),
    }
    # Added later: written only when set, so files of earlier objectives stay as they were.
    if objective.max_cost_of_strongest is not None:
        data["max_cost_of_strongest"] = objective.max_cost_of_strongest
    return data


def _objective_from(data: Mapping[str, Any]) -> Objective:
    return Objective(
        min_accuracy=data.get("min_accuracy"),
        min_accuracy_of_strongest=data.get("min_accuracy_of_strongest"),
        max_escalation_rate=data.get("max_escalation_rate"),
        max_cost_per_call_usd=data.get("max_cost_per_call_usd"),
        max_cost_of_strongest=data.get("max_cost_of_strongest"),
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
