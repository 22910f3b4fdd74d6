"""Calibration of the GSM8K worked example: every threshold of a mechanical score, picked by
an objective, checked against a replay of the cascade at the pick.

``escalate calibrate --gsm8k`` over all 654 uncontaminated dev questions: each tier
(Mixtral, then GPT-4, recorded answers served through the local provider server and the
real openai SDK and instructor) answers every question once; the sweep of every threshold
of ``gsm8k_score`` on the Mixtral tier is computed from those answers; the objective picks
one; the cascade is rebuilt with the gate at that threshold and run again, and its
accuracy, escalations and cost must equal the table's row. Then the same observations are
picked from again under other objectives, without calling any model.

Writes ``benchmarks/out/gsm8k-calibration/`` (calibration.json, calibration.png,
thresholds.json). Run: ``python benchmarks/calibrate_gsm8k.py [--limit N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from escalate.calibrate import Calibration, Objective, analyse
from escalate.cli import main as escalate

OUT = Path(__file__).resolve().parent / "out" / "gsm8k-calibration"

OTHER_OBJECTIVES = (
    Objective(min_accuracy=0.80),
    Objective(max_escalation_rate=0.20),
    Objective(max_cost_per_call_usd="0.004"),
    Objective(min_accuracy_of_strongest=0.90),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="questions (default: all 654)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    command = ["calibrate", "--gsm8k", "--out", str(OUT), "--quiet"]
    if args.limit:
        command += ["--limit", str(args.limit)]
    print("$ escalate " + " ".join(command))
    status = escalate(command)
    calibration = Calibration.load(OUT / "calibration.json")
    print("\nThe same observations, other objectives (no model called):")
    for objective in OTHER_OBJECTIVES:
        row = analyse(calibration.observations, objective).picked
        picked = (
            "none meets it"
            if row is None
            else f"threshold {row.label}: accuracy {row.accuracy:.1%}, {row.escalation_rate:.1%} "
            f"escalated, ${row.cost_per_call_usd * 1000:.3f} per 1k calls"
        )
        print(f"  {objective.describe()}: {picked}")
    print(f"({time.perf_counter() - started:.1f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
