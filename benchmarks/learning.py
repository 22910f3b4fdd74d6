"""GSM8K with a learned gate: does Mixtral -> GPT-4 with the demo's gates plus a gate
learned from labelled answers keep 95% of GPT-4's accuracy at no more than half its cost,
on questions it did not learn from?

The worked example ``escalate.demo.learning.learn_gsm8k`` (``escalate learn --gsm8k``):
the 654 uncontaminated dev questions dealt into folds; in each round one fold is tested,
the next one calibrates the learned gate's threshold (``escalate.calibrate``, objective:
the most accurate threshold costing at most half of GPT-4 alone, or with
``--objective accuracy`` the cheapest keeping 95% of GPT-4's accuracy) and the rest train
it. Every row is measured through the local provider server, the real openai SDK,
instructor and ``@escalating`` on the same questions, and every question is tested once.

Rows: Mixtral alone, GPT-4 alone, the demo's gates, the gates plus the calibrated
mechanical score (``gsm8k_score``, calibrated fold by fold the same way), the gates plus
the learned gate, the perfect cascade (Mixtral when it is right, else GPT-4).

Run: ``python benchmarks/learning.py [--limit N] [--folds K] [--seeds 0 1 2]
[--objective budget|accuracy] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from escalate.calibrate import Objective
from escalate.demo.learning import GSM8KLearning, learn_gsm8k

OBJECTIVES = {
    "budget": Objective(max_cost_of_strongest=0.5),
    "accuracy": Objective(min_accuracy_of_strongest=0.95),
}


def _shares(result: GSM8KLearning, name: str) -> tuple[float, float]:
    strong, row = result.outcome("GPT-4 alone"), result.outcome(name)
    return row.accuracy / strong.accuracy, float(row.cost_usd / strong.cost_usd)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="questions (default: all 654)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="split seeds")
    parser.add_argument("--objective", choices=sorted(OBJECTIVES), default="budget")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    runs = []
    for seed in args.seeds:
        started = time.perf_counter()
        result = learn_gsm8k(
            limit=args.limit,
            folds=args.folds,
            seed=seed,
            C=args.C,
            objective=OBJECTIVES[args.objective],
            progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True),
        )
        print(f"\n== split seed {seed} ({time.perf_counter() - started:.0f} s)")
        print(result.report())
        runs.append(result)
    names = [o.name for o in runs[0].outcomes]
    if len(runs) > 1:
        print(f"\nOver {len(runs)} splits (mean, min-max), share of GPT-4 alone:")
        for name in names:
            acc = [_shares(r, name)[0] for r in runs]
            cost = [_shares(r, name)[1] for r in runs]
            print(
                f"  {name:<30} accuracy {statistics.mean(acc):6.1%} "
                f"({min(acc):.1%}-{max(acc):.1%})   cost {statistics.mean(cost):6.1%} "
                f"({min(cost):.1%}-{max(cost):.1%})"
            )
    if args.json:
        data = [
            {
                "seed": seed,
                "objective": OBJECTIVES[args.objective].describe(),
                "folds": [list(f) for f in r.folds],
                "rows": [
                    {
                        "name": o.name,
                        "items": o.items,
                        "correct": o.correct,
                        "escalated": o.escalated,
                        "cost_usd": str(o.cost_usd),
                        "accuracy_of_gpt4": _shares(r, o.name)[0],
                        "cost_of_gpt4": _shares(r, o.name)[1],
                        "thresholds": o.thresholds,
                    }
                    for o in r.outcomes
                ],
            }
            for seed, r in zip(args.seeds, runs, strict=True)
        ]
        with open(args.json, "w") as file:
            json.dump(data, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
