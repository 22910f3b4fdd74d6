"""Calibration hints: gates whose recorded scores suggest their threshold is off.

A gate that returns a score keeps it on the receipt, for passing answers and (when it
rejects with ``Rejected(..., score=...)``) for rejected ones. Two signs are read:

- **too strict**: most of the gate's rejections scored within a tenth of the scores'
  range below its lowest passing score (near misses), while the answers it passed drew
  no bad verdicts: a slightly lower threshold would pass them, and calls would stay on
  the cheap tier;
- **too lax**: of the passing answers that drew a bad verdict (thumbs down, a
  regeneration), at least half scored in the lowest quarter of its passing scores: a
  higher threshold (about that quarter's top) would have escalated them.

Hints are a prompt to run ``escalate calibrate`` with an evaluation set, not a verdict.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from escalate.store._figures import CalibrationHint, percentile
from escalate.store._query import Loaded

__all__ = ["MIN_SCORES", "hints"]

MIN_SCORES = 10
"""A gate needs this many scored answers before a hint is given."""


def _verdicts(data: Loaded) -> set[str]:
    """Calls a user judged bad: thumbs down (latest verdict) or regenerated."""
    bad = {cid for cid, rows in data.feedback.items() if not rows[-1].good}
    return bad | set(data.regenerated)


def hints(data: Loaded) -> list[CalibrationHint]:
    passing: dict[str, list[tuple[float, str]]] = defaultdict(list)
    rejected: dict[str, list[float]] = defaultdict(list)
    for call_id, rows in data.scores.items():
        for row in rows:
            if row.outcome == "answered":
                passing[row.name].append((row.value, call_id))
            elif row.outcome == "rejected" and row.gate == row.name:
                rejected[row.name].append(row.value)
    bad = _verdicts(data)
    found = []
    for gate in sorted(set(passing) | set(rejected)):
        hint = _hint(gate, passing.get(gate, []), rejected.get(gate, []), bad)
        if hint is not None:
            found.append(hint)
    return found


def _hint(
    gate: str, passing: list[tuple[float, str]], rejected: list[float], bad: set[str]
) -> CalibrationHint | None:
    if len(passing) + len(rejected) < MIN_SCORES or not passing:
        return None
    values = [v for v, _ in passing]
    lowest = min(values)
    highest_rejected = max(rejected, default=None)
    span = (max(values + rejected) - min(values + rejected)) or 1.0
    judged_bad = [v for v, cid in passing if cid in bad]
    base: dict[str, Any] = {
        "gate": gate,
        "passing": len(passing),
        "rejected": len(rejected),
        "lowest_passing": lowest,
        "highest_rejected": highest_rejected,
    }
    near = [v for v in rejected if lowest - 0.1 * span <= v < lowest]
    if rejected and len(near) * 2 > len(rejected) and not judged_bad:
        return CalibrationHint(
            verdict="too strict",
            detail=(
                f"{len(near)} of its {len(rejected)} rejections scored within a tenth of the "
                f"range below its lowest passing score {lowest:.3g}, and no answer it passed "
                f"was judged bad: a threshold near {min(near):.3g} would keep them on this tier"
            ),
            **base,
        )
    quarter = percentile(values, 25)
    if quarter is not None and judged_bad:
        low = [v for v in judged_bad if v <= quarter]
        if len(low) * 2 >= len(judged_bad):
            return CalibrationHint(
                verdict="too lax",
                detail=(
                    f"{len(low)} of the {len(judged_bad)} passing answers judged bad scored in "
                    f"its lowest quarter (<= {quarter:.3g}): a threshold near {quarter:.3g} "
                    "would have escalated them"
                ),
                **base,
            )
    return None
