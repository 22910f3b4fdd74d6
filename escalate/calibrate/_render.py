"""Rendering a calibration: the terminal table of the sweep and the cost/accuracy plot.

Each piece takes the parts of a calibration it draws (rows, baselines, the pick), so this
module knows nothing of how a calibration is computed or stored.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from escalate.calibrate._collect import Observations
from escalate.calibrate._economics import Baseline, Economics, Objective, Row, _per_k

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "baseline_lines",
    "draw_plot",
    "head_lines",
    "label_width",
    "row_lines",
    "shown_rows",
    "verdict_lines",
    "wrap",
]


def wrap(text: str) -> str:
    return textwrap.fill(text, width=100, break_on_hyphens=False)


def _saving(row: Row) -> str:
    saving = row.saving
    return "-" if saving is None else f"{saving:.1%}"


def shown_rows(
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


# --- the table ------------------------------------------------------------------------------


def label_width(baselines: Sequence[Baseline]) -> int:
    """The width of the label column: the longest "<tier> alone", at least "picked ->"."""
    return max([len(b.tier) + 6 for b in baselines] + [len("picked ->"), 12])


def head_lines(obs: Observations, width: int) -> list[str]:
    header = (
        f"{'':<{width}}{'threshold':>11}{'escalated':>11}{'kept acc':>10}{'accuracy':>10}"
        f"{'USD/1k calls':>14}{'saving':>9}"
    )
    return [
        f"Calibration of gate {obs.gate!r} on {obs.function}: {len(obs.items)} items, "
        f"tiers {' -> '.join(obs.tiers)}",
        wrap(
            "A call escalates when the gate's score < threshold. kept acc: accuracy of "
            f"the answers kept on {obs.tiers[0]}. saving: against {obs.tiers[-1]} alone."
        ),
        "",
        header,
    ]


def baseline_lines(baselines: Sequence[Baseline], width: int) -> list[str]:
    lines = []
    strongest = baselines[-1]
    for baseline in baselines:
        saving = (
            f"{float(1 - baseline.cost_usd / strongest.cost_usd):>9.1%}"
            if strongest.cost_usd
            else f"{'-':>9}"
        )
        lines.append(
            f"{baseline.tier + ' alone':<{width}}{'-':>11}{'-':>11}{'-':>10}"
            f"{baseline.accuracy:>10.1%}{_per_k(baseline.cost_per_call_usd):>14}{saving}"
        )
    return lines


def row_lines(
    rows: Sequence[Row], shown: Sequence[Row], picked: Row | None, width: int, strongest: str
) -> list[str]:
    """The shown rows, with "..." where rows between them are left out."""
    lines = []
    previous: Row | None = None
    for row in shown:
        if previous is not None and rows.index(row) != rows.index(previous) + 1:
            lines.append(f"{'':<{width}}{'...':>11}")
        lines.append(_row_line(row, row is picked, width, strongest))
        previous = row
    return lines


def _row_line(row: Row, is_picked: bool, width: int, strongest: str) -> str:
    mark = "picked ->" if is_picked else ""
    kept = "-" if row.kept_accuracy is None else f"{row.kept_accuracy:.1%}"
    flag = ""
    if row.cost_usd > row.strongest_cost_usd:
        flag = f"  costs more than {strongest} alone"
    return (
        f"{mark:<{width}}{row.label:>11}{row.escalation_rate:>11.1%}{kept:>10}"
        f"{row.accuracy:>10.1%}{_per_k(row.cost_per_call_usd):>14}"
        f"{_saving(row):>9}{flag}"
    )


def verdict_lines(
    obs: Observations,
    economics: Economics,
    objective: Objective,
    key: str,
    picked: Row | None,
    unmet: str | None,
) -> list[str]:
    """The lines under the table: the break-even, the objective and what it picked."""
    rate = picked.escalation_rate if picked is not None else None
    lines = [wrap(economics.describe(rate)), wrap(f"Objective: {objective.describe()}.")]
    if picked is not None:
        lines.append(
            wrap(
                f"Picked: {key} = {picked.threshold!r}: accuracy {picked.accuracy:.1%}, "
                f"{picked.escalation_rate:.1%} escalated, ${_per_k(picked.cost_per_call_usd)} "
                f"per 1k calls ({_saving(picked)} saved against {obs.tiers[-1]} alone)."
            )
        )
    else:
        lines.append(wrap(f"No threshold picked: {unmet}"))
    lines.extend(wrap(f"Note: {note}") for note in obs.notes)
    return lines


# --- the plot -------------------------------------------------------------------------------


def draw_plot(
    path: str | os.PathLike[str],
    *,
    rows: Sequence[Row],
    baselines: Sequence[Baseline],
    picked: Row | None,
    gate: str,
    title: str,
) -> Path:
    """Draw cost per 1k calls against accuracy to a PNG (see ``Calibration.plot``)."""
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
    _draw_cascade(axes, rows, gate)
    _draw_baselines(axes, baselines)
    if picked is not None:
        _draw_pick(axes, picked)
    axes.set_xlabel("cost per 1,000 calls (USD)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title, fontsize=11)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target


def _draw_cascade(axes: Axes, rows: Sequence[Row], gate: str) -> None:
    ordered = sorted(rows, key=lambda r: (r.cost_usd, r.accuracy))
    axes.plot(
        [float(r.cost_per_call_usd) * 1000 for r in ordered],
        [r.accuracy * 100 for r in ordered],
        "o-",
        color="#4c72b0",
        markersize=3.5,
        linewidth=1,
        label=f"cascade, one point per threshold of {gate}",
    )


def _draw_baselines(axes: Axes, baselines: Sequence[Baseline]) -> None:
    markers = ["s", "D", "^", "v", "P"]
    for index, baseline in enumerate(baselines):
        axes.plot(
            [float(baseline.cost_per_call_usd) * 1000],
            [baseline.accuracy * 100],
            markers[index % len(markers)],
            color="#55a868" if index == 0 else "#c44e52",
            markersize=9,
            label=f"{baseline.tier} alone",
        )
    strongest = float(baselines[-1].cost_per_call_usd) * 1000
    axes.axvline(
        strongest,
        color="#c44e52",
        linestyle=":",
        linewidth=1,
        label=f"cost of {baselines[-1].tier} alone (break-even)",
    )


def _draw_pick(axes: Axes, row: Row) -> None:
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
