"""Adaptive starts: what ``adaptive=`` saves against a cheap-first cascade and against
always starting on the strong tier, per task class, through the real path (openai SDK +
instructor over HTTP to the local ``ProviderServer``).

Two tiers priced as the GSM8K benchmark's (``compatible/mixtral`` at $0.70 / $0.70 per
million tokens, ``openai/gpt-4`` at $10 / $30), every request 1,000 tokens in and 200 out,
so the strong tier costs about 17 times the cheap one per call. The strong tier always
answers well; the cheap one passes a class's questions at that class's rate (question i
of a class passes or fails the same way on every side, so the sides differ only in where
they start). Classes: cheap pass rates from 0% to 60%, and ``drift``, three times as many
calls, which passes 60% for the first third and 2% after; the calls the adaptive side takes
to follow it are printed.

Sides: ``cascade`` (always cheapest first), ``strong`` (always the strong tier),
``adaptive`` (``AdaptiveStart()`` defaults: half-life 100, 5% exploration, 20
observations). Every answer is right in the end on every side, so the figure is the cost;
``cheap requests`` shows where the adaptive side spent its learning.

Run: ``python benchmarks/adaptive.py [--calls N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from escalate import AdaptiveStart, Price, Tier, escalating, options, receipt_of
from escalate.testing._server import ProviderServer, Reply

CLASSES = {"p00": 0.0, "p02": 0.02, "p05": 0.05, "p10": 0.10, "p30": 0.30, "p60": 0.60}
DRIFT = ("drift", 0.60, 0.02)
CHEAP, STRONG = Price(input="0.70", output="0.70"), Price(input="10", output="30")


class Answer(BaseModel):
    value: int


def _passes(task: str, index: int, calls: int) -> bool:
    rate = CLASSES.get(task)
    if rate is None:
        rate = DRIFT[1] if index < calls else DRIFT[2]
    return random.Random(f"{task}-{index}").random() < rate


def _settled(starts: list[bool], after: int, window: int = 20) -> int | None:
    """Calls after ``after`` until most of ``window`` calls in a row started strong."""
    for i in range(after, len(starts) - window + 1):
        if sum(starts[i : i + window]) >= 0.75 * window:
            return i - after
    return None


def _respond(calls: int) -> Any:
    def cheap(request: Any) -> Reply:
        task, index = request.last_user_text.split(":")[:2]
        good = _passes(task, int(index), calls)
        data = {"value": 1} if good else {"value": "unsure"}
        return Reply(data=data, input_tokens=1000, output_tokens=200)

    return cheap


def _run(server: ProviderServer, side: str, calls: int) -> dict[str, dict[str, Any]]:
    tiers = [
        Tier("openai/cheap", base_url=server.openai_base_url, api_key="k", price=CHEAP),
        Tier("openai/strong", base_url=server.openai_base_url, api_key="k", price=STRONG),
    ]
    adaptive = AdaptiveStart(seed_from_store=False, random=random.Random(1).random)

    def prompt(text: str) -> str:
        return text

    prompt.__qualname__ = f"solve_{side}"
    solve = escalating(
        tiers=tiers,
        response_model=Answer,
        task=lambda text: text.split(":")[0],
        adaptive=adaptive if side == "adaptive" else False,
    )(prompt)
    figures: dict[str, dict[str, Any]] = {}
    for task in [*CLASSES, DRIFT[0]]:
        cost, cheap_requests, starts = Decimal(0), 0, []
        count = 3 * calls if task == DRIFT[0] else calls  # drifts after `calls`
        for i in range(count):
            if side == "strong":
                with options(start_at="openai/strong"):
                    receipt = receipt_of(solve(f"{task}:{i}: solve it"))
            else:
                receipt = receipt_of(solve(f"{task}:{i}: solve it"))
            cost += receipt.cost_usd or Decimal(0)
            cheap_requests += sum(a.tier == "openai/cheap" for a in receipt.attempts)
            starts.append(receipt.route.start_tier == "openai/strong")
        figures[task] = {
            "calls": count,
            "cost_per_call_usd": cost / count,
            "cheap_requests": cheap_requests,
            "started_strong": sum(starts) / count,
        }
        if task == DRIFT[0]:
            figures[task]["calls_to_follow_drift"] = _settled(starts, calls)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=400, help="calls per task class and side")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with ProviderServer() as server:
        server.respond("cheap", _respond(args.calls))
        server.respond(
            "strong", lambda request: Reply(data={"value": 1}, input_tokens=1000, output_tokens=200)
        )
        results = {
            side: _run(server, side, args.calls) for side in ("cascade", "strong", "adaptive")
        }
    print(
        f"{args.calls} calls per class and side ({DRIFT[0]}: {3 * args.calls}, drifting from "
        f"{DRIFT[1]:.0%} to {DRIFT[2]:.0%} after {args.calls}); USD per call (share started strong)"
    )
    print(
        f"{'class':<8}{'cascade':>12}{'strong':>12}{'adaptive':>22}{'vs best':>10}{'cheap req':>11}"
    )
    for task in results["cascade"]:
        c, s, a = (results[side][task] for side in ("cascade", "strong", "adaptive"))
        best = min(c["cost_per_call_usd"], s["cost_per_call_usd"])
        over = a["cost_per_call_usd"] / best - 1
        print(
            f"{task:<8}{c['cost_per_call_usd']:>12.6f}{s['cost_per_call_usd']:>12.6f}"
            f"{a['cost_per_call_usd']:>14.6f} ({a['started_strong']:>4.0%}){over:>+10.1%}"
            f"{a['cheap_requests']:>11}"
        )
    followed = results["adaptive"][DRIFT[0]]["calls_to_follow_drift"]
    print(f"adaptive, {DRIFT[0]}: mostly starting strong {followed} calls after the drift")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, default=str, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
