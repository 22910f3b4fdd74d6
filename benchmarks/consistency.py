"""What a consistency gate's samples cost: n requests against one request with ``n``, and
the requests early stopping saves.

Through the real openai SDK, instructor and ``@escalating`` against a local
:class:`~escalate.testing._server.ProviderServer` playing Mixtral (an OpenAI-compatible tier,
Mistral's list price) with the GSM8K 8-shot prompt (``escalate.demo.gsm8k.few_shot_prompt``,
about 900 tokens with the tool schema): the server counts every token with cl100k, the
receipts price them.

What is real and what is synthetic:

- the prompt, the questions and the first sample of each are real: Mixtral's recorded 8-shot
  answer to that GSM8K question (RouteLLM's data, ``escalate.demo.data.gsm8k``), and whether
  it was right;
- the further samples are synthetic, since the data has one greedy answer per question: on a
  question Mixtral got right (an *easy* one) every sample repeats its recorded answer; on one
  it got wrong (a *hard* one) the samples rotate through its recorded wrong answer, the gold
  answer and two other wrong numbers, so they disagree. The recorded mix of easy and hard
  questions is kept (about 64% easy).

Part 1 prints, for n = 3, 5 and 10, the cheap tier's input and output tokens and USD per call
with ``consistency(n, one_request=False)`` (n requests) and ``consistency(n)`` (one request,
``n`` choices). Part 2 prints the requests per call with and without ``stop_early=True``.

Run: ``python benchmarks/consistency.py [--limit N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from escalate import Tier, escalating, receipt_of
from escalate.demo import CHEAP, Solution, mixtral_price, strong_tier
from escalate.demo.answers import final_answer
from escalate.demo.gsm8k import Problem, few_shot_prompt, load_problems
from escalate.gates import consistency
from escalate.testing._server import Choice, ProviderServer, Reply, Request

_QUESTION = re.compile(r"Question: (?P<q>.*)\nAnswer:\s*$", re.DOTALL)


def _samples(problem: Problem, count: int) -> list[dict[str, Any]]:
    """The recorded answer, then the synthetic further samples (see the module docs)."""
    text = problem.cheap_response
    recorded = final_answer(text)
    first = {"reasoning": text, "answer": None if recorded is None else str(recorded)}
    if problem.cheap_correct:
        return [first] * count
    rotation = [recorded, problem.gold, problem.gold + 1, problem.gold * 2]
    out = [first]
    for i in range(1, count):
        value = rotation[i % len(rotation)]
        out.append({"reasoning": f"(synthetic sample {i})", "answer": str(value)})
    return out


def serve(server: ProviderServer, problems: list[Problem]) -> None:
    by_question = {p.question: p for p in problems}
    drawn: dict[str, int] = {}
    lock = threading.Lock()

    def reply(request: Request) -> Reply:
        match = _QUESTION.search(request.last_user_text.rsplit("\n\n", 1)[-1])
        problem = by_question[match.group("q")] if match else None
        assert problem is not None, "a question the benchmark did not ask"
        if request.n > 1:
            return Reply(choices=[Choice(data=d) for d in _samples(problem, request.n)])
        with lock:
            index = drawn.get(problem.question, 0)
            drawn[problem.question] = index + 1
        return Reply(data=_samples(problem, index + 1)[index])

    server.respond(CHEAP, reply)
    server.respond("gpt-4-1106-preview", lambda request: Reply(data={"reasoning": "#### 0"}))

    def reset() -> None:
        with lock:
            drawn.clear()

    serve.reset = reset  # type: ignore[attr-defined]


@dataclass
class Figures:
    calls: int
    requests: int
    input_tokens: int
    output_tokens: int
    usd: Decimal

    def per_call(self) -> dict[str, Any]:
        return {
            "requests": self.requests / self.calls,
            "input_tokens": self.input_tokens / self.calls,
            "output_tokens": self.output_tokens / self.calls,
            "usd": float(self.usd / self.calls),
        }


def run(server: ProviderServer, problems: list[Problem], gate: Any) -> Figures:
    cheap = Tier(
        f"compatible/{CHEAP}",
        name="mixtral",
        base_url=server.openai_base_url,
        price=mixtral_price(),
        gates=[gate],
    )

    @escalating(tiers=[cheap, strong_tier(server)], response_model=Solution)
    def solve(question: str) -> str:
        return few_shot_prompt(question)

    serve.reset()  # type: ignore[attr-defined]
    figures = Figures(len(problems), 0, 0, 0, Decimal(0))
    for problem in problems:
        receipt = receipt_of(solve(problem.question))
        for attempt in receipt.attempts:
            if attempt.tier != "mixtral":
                continue
            figures.requests += 1
            figures.input_tokens += attempt.input_tokens or 0
            figures.output_tokens += attempt.output_tokens or 0
            figures.usd += attempt.cost_usd or Decimal(0)
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=60, help="questions (default 60)")
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    problems = load_problems()[: args.limit]
    easy = sum(p.cheap_correct for p in problems)
    out: dict[str, Any] = {"questions": len(problems), "easy": easy, "one_request": {}}
    print(f"{len(problems)} GSM8K questions, {easy} easy (Mixtral right), 8-shot prompt")
    with ProviderServer() as server:
        serve(server, problems)
        print("\nPart 1: the cheap tier per call, n requests vs one request with n")
        print(f"{'n':>3} {'how':<12} {'req':>4} {'input tok':>10} {'output tok':>10} {'USD':>11}")
        for n in (3, 5, 10):
            row = {}
            for how, gate in (
                ("n requests", consistency(n, field="answer", one_request=False)),
                ("one request", consistency(n, field="answer", one_request=True)),
            ):
                f = run(server, problems, gate).per_call()
                row[how] = f
                print(
                    f"{n:>3} {how:<12} {f['requests']:>4.1f} {f['input_tokens']:>10.0f} "
                    f"{f['output_tokens']:>10.0f} {f['usd']:>11.7f}"
                )
            saved = 1 - row["one request"]["usd"] / row["n requests"]["usd"]
            print(f"{'':>3} one request costs {saved:.0%} less")
            out["one_request"][str(n)] = row
        print("\nPart 2: early stopping (separate requests), requests per call")
        out["stop_early"] = {}
        for n in (5, 10):
            full = run(server, problems, consistency(n, field="answer", one_request=False))
            early = run(server, problems, consistency(n, field="answer", stop_early=True))
            f, e = full.per_call(), early.per_call()
            print(
                f"n={n:>2}: all samples {f['requests']:.2f} requests, ${f['usd']:.7f}; "
                f"stop_early {e['requests']:.2f} requests, ${e['usd']:.7f} "
                f"({1 - early.requests / full.requests:.0%} fewer requests)"
            )
            out["stop_early"][str(n)] = {"all": f, "stop_early": e}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(out, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
