"""GSM8K through the whole stack: does a Mixtral -> GPT-4 cascade with mechanical gates reach
GPT-4's accuracy at half of GPT-4's cost?

The answers are real: RouteLLM's recorded 8-shot answers of Mixtral-8x7B-Instruct (the cheap
tier) and gpt-4-1106-preview (the strong tier) to the GSM8K dev split shipped in
``escalate.demo.gsm8k``. A local :class:`~escalate.testing._server.ProviderServer` plays both
models: asked a question, each serves its own recorded answer as the structured output
``{"reasoning": <recorded text>, "answer": <final_answer(text)>}``. Everything else is real:
the openai SDK, instructor, ``@escalating``, the gates, the receipts, token counts (the server
counts the 8-shot prompt, the tool schema and the answer with cl100k) and prices (genai-prices,
Mistral's list price for Mixtral).

Four strategies are compared on every uncontaminated question:

- Mixtral alone and GPT-4 alone: ``@escalating`` with that one tier, no gates;
- the cascade: ``tiers=[mixtral, gpt4]`` with the gates on the Mixtral tier that a user
  would write for this task (``escalate.demo.CHEAP_GATES``, the demo's own): the reasoning
  states a final answer line, the arithmetic written in it is right, and the answer is a
  whole number (GSM8K's answers all are);
- a perfect cascade (an oracle that knows which Mixtral answers are wrong): Mixtral's cost on
  every question plus GPT-4's on those it gets wrong, from the two single-tier runs' receipts.

Accuracy is judged by ``escalate.demo.answers.is_correct`` (the final number of the returned
answer's reasoning equals the gold answer); RouteLLM's own labels, which misread answers such
as ``$18.00``, are shown in brackets.

Run: ``python benchmarks/gsm8k_cascade.py [--limit N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from escalate import Receipt, receipt_of
from escalate.demo import (
    Solution,
    build_solver,
    cheap_tier,
    serve_recorded,
    strong_tier,
)
from escalate.demo.answers import is_correct
from escalate.demo.gsm8k import Problem, load_problems
from escalate.testing._server import ProviderServer

CONCURRENCY = 32
"""Questions in flight at once (threads: the sync face; see the README for why not asyncio)."""
TIMEOUT = 60.0
"""Seconds per request: the local server answers in milliseconds, so this only bounds a hang."""


# --- running ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    problem: Problem
    solution: Solution
    receipt: Receipt

    @property
    def by_strong(self) -> bool:
        return self.receipt.answered_by == "gpt-4"

    @property
    def correct(self) -> bool:
        return is_correct(self.solution.reasoning, self.problem.gold)

    @property
    def label(self) -> bool:
        """RouteLLM's label of the answer returned."""
        return self.problem.strong_correct if self.by_strong else self.problem.cheap_correct

    @property
    def cost(self) -> Decimal:
        """The measured cost; an attempt of unknown cost (a timeout) counts as nothing and is
        reported as unpriced."""
        return self.receipt.known_cost_usd

    @property
    def unpriced(self) -> int:
        return sum(a.cost_usd is None for a in self.receipt.attempts)


def run_all(solve: Callable[[str], Solution], problems: Sequence[Problem]) -> list[Outcome]:
    """Every question, ``CONCURRENCY`` at a time, in dataset order."""

    def one(problem: Problem) -> Outcome:
        solution = solve(problem.question)
        return Outcome(problem, solution, receipt_of(solution))

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, problems))


def benchmark(problems: Sequence[Problem], server: ProviderServer) -> dict[str, Any]:
    """Run the three strategies through ``@escalating`` and summarise their receipts."""
    serve_recorded(server, problems)
    mixtral = cheap_tier(server, gates=(), timeout=TIMEOUT)
    gpt4 = strong_tier(server, timeout=TIMEOUT)
    gated = cheap_tier(server, timeout=TIMEOUT)  # the demo's gates, on the cheap tier only

    runs: dict[str, list[Outcome]] = {}
    for name, tiers in (("mixtral", [mixtral]), ("gpt4", [gpt4]), ("cascade", [gated, gpt4])):
        runs[name] = run_all(build_solver(tiers), problems)
    return summarise(problems, runs)


def summarise(problems: Sequence[Problem], runs: dict[str, list[Outcome]]) -> dict[str, Any]:
    n = len(problems)

    def row(correct: int, labelled: int, cost: Decimal, **extra: Any) -> dict[str, Any]:
        return {
            "accuracy": correct / n,
            "accuracy_labels": labelled / n,
            "cost_usd": float(cost),
            "cost_per_1k_usd": float(cost / n * 1000),
            **extra,
        }

    rows = {}
    for name in ("mixtral", "gpt4", "cascade"):
        outcomes = runs[name]
        rows[name] = row(
            sum(o.correct for o in outcomes),
            sum(o.label for o in outcomes),
            sum((o.cost for o in outcomes), Decimal(0)),
        )
    cascade = runs["cascade"]
    escalated = [o for o in cascade if o.receipt.escalated]
    rows["cascade"]["escalation_rate"] = len(escalated) / n
    # The oracle: GPT-4 exactly where Mixtral is wrong, at the costs measured above.
    oracle_correct = oracle_labels = 0
    oracle_cost = Decimal(0)
    for cheap, strong in zip(runs["mixtral"], runs["gpt4"], strict=True):
        oracle_cost += cheap.cost
        if cheap.correct:
            oracle_correct += 1
        else:
            oracle_cost += strong.cost
            oracle_correct += strong.correct
        oracle_labels += cheap.label if cheap.correct else strong.label
    rows["oracle"] = row(oracle_correct, oracle_labels, oracle_cost)
    rows["oracle"]["escalation_rate"] = sum(not o.correct for o in runs["mixtral"]) / n

    wrong = {o.problem.index for o in runs["mixtral"] if not o.correct}
    escalated_ids = {o.problem.index for o in escalated}
    triggers: dict[str, int] = {}
    for o in escalated:
        gate = (o.receipt.attempts[0].reason or "?").partition(":")[0]
        triggers[gate] = triggers.get(gate, 0) + 1
    gpt4 = rows["gpt4"]
    return {
        "questions": n,
        "input_tokens_per_question": sum(o.receipt.input_tokens for o in runs["mixtral"]) / n,
        "rows": rows,
        "cascade_cost_fraction_of_gpt4": rows["cascade"]["cost_usd"] / gpt4["cost_usd"],
        "cascade_accuracy_fraction_of_gpt4": rows["cascade"]["accuracy"] / gpt4["accuracy"],
        "unpriced_attempts": sum(o.unpriced for outcomes in runs.values() for o in outcomes),
        "requests": sum(len(o.receipt.attempts) for outcomes in runs.values() for o in outcomes),
        "gates": {
            "mixtral_wrong": len(wrong),
            "escalated": len(escalated_ids),
            "wrong_and_escalated": len(wrong & escalated_ids),
            "right_but_escalated": len(escalated_ids - wrong),
            "wrong_and_passed": len(wrong - escalated_ids),
            "rejections_by_gate": triggers,
        },
    }


def aim_met(result: dict[str, Any]) -> bool:
    """GPT-4's accuracy (to within half a point) at half of GPT-4's cost or less."""
    rows = result["rows"]
    return bool(
        rows["cascade"]["accuracy"] >= rows["gpt4"]["accuracy"] - 0.005
        and result["cascade_cost_fraction_of_gpt4"] <= 0.5
    )


def report(result: dict[str, Any], seconds: float) -> str:
    rows, gates = result["rows"], result["gates"]
    gpt4 = rows["gpt4"]
    names = {
        "mixtral": "Mixtral-8x7B alone",
        "gpt4": "GPT-4 alone",
        "cascade": "cascade (gates)",
        "oracle": "perfect cascade",
    }
    lines = [
        f"GSM8K dev split, {result['questions']} uncontaminated questions, 8-shot prompt "
        f"({result['input_tokens_per_question']:.0f} input tokens per request)",
        "accuracy: escalate.demo.answers.is_correct (RouteLLM's labels in brackets)",
        "",
        f"{'':<20} {'accuracy':>16} {'cost USD':>10} {'per 1k q':>10} "
        f"{'escalated':>10} {'acc/GPT-4':>10} {'cost/GPT-4':>10}",
    ]
    for key, name in names.items():
        r = rows[key]
        escalated = f"{r['escalation_rate']:.1%}" if "escalation_rate" in r else "-"
        lines.append(
            f"{name:<20} {r['accuracy']:>7.1%} ({r['accuracy_labels']:>5.1%}) "
            f"{r['cost_usd']:>10.4f} {r['cost_per_1k_usd']:>10.3f} {escalated:>10} "
            f"{r['accuracy'] / gpt4['accuracy']:>10.1%} {r['cost_usd'] / gpt4['cost_usd']:>10.1%}"
        )
    by_gate = ", ".join(f"{k} {v}" for k, v in sorted(gates["rejections_by_gate"].items()))
    lines += [
        "",
        f"gates: escalated {gates['escalated']} ({by_gate}); of Mixtral's "
        f"{gates['mixtral_wrong']} wrong answers they caught {gates['wrong_and_escalated']} and "
        f"passed {gates['wrong_and_passed']}; {gates['right_but_escalated']} right answers "
        "escalated needlessly",
        f"cascade: {result['cascade_accuracy_fraction_of_gpt4']:.1%} of GPT-4's accuracy at "
        f"{result['cascade_cost_fraction_of_gpt4']:.1%} of its cost",
        "aim (GPT-4's accuracy, to 0.5 point, at <= 50% of GPT-4's cost): "
        + ("MET" if aim_met(result) else "NOT MET"),
        f"({result['requests']} requests through openai + instructor + @escalating, "
        f"{seconds:.1f} s)",
    ]
    if result["unpriced_attempts"]:
        lines.append(
            f"warning: {result['unpriced_attempts']} attempt(s) timed out; their cost is unknown "
            "and not counted"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--limit", type=int, default=None, help="the first N questions only")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    problems = load_problems()[: args.limit]
    started = time.perf_counter()
    with ProviderServer() as server:
        result = benchmark(problems, server)
    seconds = time.perf_counter() - started
    print(report(result, seconds))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({**result, "aim_met": aim_met(result), "seconds": seconds}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
