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

The rooms: ``_items`` (evaluation items, grading), ``_gates`` (the score gate, the
threshold disabled or moved), ``_running`` (one call under calibration: the only reach
into the call path), ``_collect`` (observations), ``_economics`` (the sweep,
the pick and the break-even, pure maths), ``_analysis`` (:class:`Calibration`),
``_render`` (its table and plot), ``_thresholds`` (the thresholds file), ``_replay``.

A worked example on real recorded answers of GSM8K, ``escalate calibrate --gsm8k``, is in
:mod:`escalate.demo.calibration`; see ``docs/calibration.md``.
"""

from __future__ import annotations

from escalate.calibrate._analysis import Calibration, analyse, calibrate
from escalate.calibrate._collect import Observations, collect
from escalate.calibrate._economics import (
    Baseline,
    Economics,
    NoThresholdMeets,
    Objective,
    Row,
    TierRun,
    break_even_rate,
)
from escalate.calibrate._gates import ScoreGate, score_gate
from escalate.calibrate._items import Grader, Item, load_items
from escalate.calibrate._replay import Replay, replay
from escalate.calibrate._thresholds import (
    DEFAULT_DIR,
    THRESHOLDS_ENV,
    load_thresholds,
    save_threshold,
    threshold,
    thresholds_path,
)

__all__ = [
    "DEFAULT_DIR",
    "THRESHOLDS_ENV",
    "Baseline",
    "Calibration",
    "Economics",
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
    "collect",
    "load_items",
    "load_thresholds",
    "replay",
    "save_threshold",
    "score_gate",
    "threshold",
    "thresholds_path",
]
