"""The offline demo: recorded GSM8K answers of a cheap and a strong model.

Real answers of Mixtral-8x7B (cheap) and GPT-4 (strong) to GSM8K questions (see
``data/gsm8k/NOTICE.md``) are served by escalate's local provider server in the OpenAI
wire format, so the whole stack runs for real: the openai SDK, instructor, the tier walk,
gates, pricing and receipts. No key, no network.

What the server does with a recorded answer: it serves the recorded text as the
``reasoning`` field and the number it states as ``answer`` (null when it states none),
the way a model asked for ``Solution`` would fill it. Tokens are counted with cl100k.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Literal

from pydantic import BaseModel

from escalate import (
    AllTiersFailed,
    Price,
    Tier,
    configure,
    escalating,
    feedback,
    receipt_of,
)
from escalate.demo.answers import final_answer, has_answer_line
from escalate.demo.arithmetic import arithmetic_errors
from escalate.demo.gsm8k import Problem, few_shot_prompt, load_problems
from escalate.gates import GateContext, Rejected
from escalate.testing._server import ProviderServer, Reply, Request

__all__ = [
    "CASCADE",
    "CHEAP",
    "STRONG",
    "Solution",
    "answer_line",
    "build_solver",
    "mixtral_price",
    "right_arithmetic",
    "run_demo",
    "serve_recorded",
    "whole_number",
]

CHEAP = "mixtral-8x7b"
STRONG = "gpt-4-1106-preview"


class Solution(BaseModel):
    """A worked solution: the reasoning, and the final number it arrives at."""

    reasoning: str
    answer: Decimal | None = None


# --- the gates a user would write for this task (mechanical, free) -----------------------


def answer_line(solution: Solution, context: GateContext) -> None:
    """The reasoning ends in a stated final answer (``#### N`` or "The answer is N")."""
    if solution.answer is None or not has_answer_line(solution.reasoning):
        raise Rejected("no final answer line: the reasoning does not state its answer")


def right_arithmetic(solution: Solution, context: GateContext) -> None:
    """Every calculation written in the reasoning is right."""
    errors = arithmetic_errors(solution.reasoning)
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise Rejected("wrong arithmetic: " + "; ".join(errors[:3]) + more)


def whole_number(solution: Solution, context: GateContext) -> None:
    """GSM8K answers are whole, non-negative numbers."""
    answer = solution.answer
    if answer is not None and (answer != answer.to_integral_value() or answer < 0):
        raise Rejected(f"the answer {answer} is not a whole non-negative number")


CHEAP_GATES = (answer_line, right_arithmetic, whole_number)


# --- serving the recorded answers ---------------------------------------------------------

_QUESTION = re.compile(r"Question: (?P<q>.*)\nAnswer:\s*$", re.DOTALL)


def serve_recorded(server: ProviderServer, problems: Sequence[Problem]) -> None:
    """Make ``server`` answer each question with the model's recorded response."""
    by_question = {p.question: p for p in problems}

    def recorded(pick: Callable[[Problem], str]) -> Callable[[Request], Reply]:
        def reply(request: Request) -> Reply:
            prompt = request.last_user_text
            match = _QUESTION.search(prompt.rsplit("\n\n", 1)[-1])
            problem = by_question.get(match.group("q")) if match else None
            if problem is None:
                return Reply(text="(no recorded answer for this question)")
            text = pick(problem)
            answer = final_answer(text)
            return Reply(
                data={"reasoning": text, "answer": None if answer is None else str(answer)}
            )

        return reply

    server.respond(CHEAP, recorded(lambda p: p.cheap_response))
    server.respond(STRONG, recorded(lambda p: p.strong_response))


@functools.cache
def mixtral_price() -> Price:
    """Mistral's list price for open-mixtral-8x7b, as genai-prices has it."""
    import genai_prices

    def per_million(input_tokens: int, output_tokens: int) -> Decimal:
        usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        price = genai_prices.calc_price(usage, "open-mixtral-8x7b", provider_id="mistral")
        return Decimal(price.total_price)

    return Price(input=per_million(1_000_000, 0), output=per_million(0, 1_000_000))


def cheap_tier(
    server: ProviderServer,
    *,
    gates: Sequence[object] = CHEAP_GATES,
    timeout: float | None = None,
) -> Tier:
    """Mixtral as an OpenAI-compatible tier, priced at Mistral's list price."""
    return Tier(
        f"compatible/{CHEAP}",
        name="mixtral",
        base_url=server.openai_base_url,
        price=mixtral_price(),
        gates=list(gates),
        timeout=timeout,
    )


def strong_tier(server: ProviderServer, *, timeout: float | None = None) -> Tier:
    """GPT-4 Turbo, priced by genai-prices ($10 in, $30 out per million tokens)."""
    return Tier(
        f"openai/{STRONG}",
        name="gpt-4",
        base_url=server.openai_base_url,
        api_key="-",
        timeout=timeout,
    )


def build_solver(
    tiers: Sequence[Tier], *, name: str | None = None, task: str | None = None
) -> Callable[[str], Solution]:
    """The decorated function a user would write: the 8-shot prompt, a Solution back.
    ``name`` files its receipts as ``escalate.demo.NAME`` (the store keeps the cascade's)."""

    def solve(question: str) -> str:
        return few_shot_prompt(question)

    if name is not None:
        solve.__name__ = solve.__qualname__ = name
    return escalating(tiers=tiers, response_model=Solution, task=task)(solve)


CASCADE = "solve_gsm8k"
"""The name the demo's cascade files its receipts under: ``escalate.demo.solve_gsm8k``."""


# --- the demo -------------------------------------------------------------------------------


@dataclass
class Tally:
    """Accuracy and measured cost of one way of answering, over the sample."""

    name: str
    right: int = 0
    calls: int = 0
    cost: Decimal = Decimal(0)
    escalated: int = 0

    def add(self, correct: bool, cost: Decimal | None, escalated: bool = False) -> None:
        self.calls += 1
        self.right += correct
        self.cost += cost or 0
        self.escalated += escalated

    @property
    def accuracy(self) -> float:
        return self.right / self.calls if self.calls else 0.0


def sample(limit: int | None) -> list[Problem]:
    """``limit`` questions spread evenly over the uncontaminated dev split (all if None)."""
    problems = load_problems()
    if limit is None or limit >= len(problems):
        return problems
    step = len(problems) / limit
    return [problems[int(i * step)] for i in range(limit)]


def _solve(
    solver: Callable[[str], Solution], problem: Problem, tally: Tally, *, judge: bool = False
) -> str:
    try:
        solution = solver(problem.question)
    except AllTiersFailed as error:
        tally.add(False, error.receipt.known_cost_usd)
        return "failed"
    receipt = receipt_of(solution)
    correct = solution.answer == problem.gold
    tally.add(correct, receipt.cost_usd, receipt.escalated)
    if judge:
        # The demo plays a user who checks each answer against GSM8K's gold answer: the
        # verdicts feed the store's quality by tier.
        feedback(receipt, good=correct, reason=None if correct else f"gold is {problem.gold}")
    if receipt.escalated:
        move = receipt.escalations[0]
        return f"mixtral -> gpt-4   ({move.reason})"
    return f"{receipt.answered_by}"


def run_demo(
    limit: int | None = 40, *, out: IO[str], verbose: bool = True, store: str | None = None
) -> dict[Literal["mixtral", "gpt-4", "cascade"], Tally]:
    """Run the cascade over a sample and print each call and the summary. With ``store``
    (a database URL or a SQLite file), the cascade's receipts are written there, each
    answer's verdict against the gold answer is recorded as feedback, and the report's
    summary is printed after the demo's."""
    problems = sample(limit)
    tallies = {name: Tally(name) for name in ("mixtral", "gpt-4", "cascade")}
    with ProviderServer() as server:
        serve_recorded(server, problems)
        cheap_alone = build_solver([cheap_tier(server, gates=())])
        strong_alone = build_solver([strong_tier(server)])
        cascade = build_solver(
            [cheap_tier(server), strong_tier(server)], name=CASCADE, task="gsm8k"
        )
        if store is not None:
            configure(store=store, functions=[cascade])
        print(
            f"escalate demo: {len(problems)} GSM8K questions, recorded answers served by a "
            f"local OpenAI-compatible server at {server.url}\n",
            file=out,
        )
        for number, problem in enumerate(problems, 1):
            _solve(cheap_alone, problem, tallies["mixtral"])
            _solve(strong_alone, problem, tallies["gpt-4"])
            before = tallies["cascade"].right
            path = _solve(cascade, problem, tallies["cascade"], judge=store is not None)
            if verbose:
                mark = "right" if tallies["cascade"].right > before else "WRONG"
                print(f"  #{number:<3} {mark:<5}  {_short(path, 96)}", file=out)
        if store is not None:
            configure(store=None, functions=[cascade])
    print(_summary(tallies), file=out)
    if store is not None:
        _store_summary(store, out)
    return tallies  # type: ignore[return-value]


def _store_summary(store: str, out: IO[str]) -> None:
    from escalate.store import Filters, Store, build_report, summary_lines

    report = build_report(Store(store), Filters(function=f"escalate.demo.{CASCADE}"))
    print(f"\nThe cascade's receipts are in {store}:", file=out)
    for line in summary_lines(report):
        print(f"  {line}", file=out)
    print(
        f"  escalate report --store {store}       every table\n"
        f"  escalate dashboard --store {store} --out dashboard.html   the dashboard",
        file=out,
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary(tallies: dict[str, Tally]) -> str:
    strong = tallies["gpt-4"]
    lines = [
        "",
        f"{'':<22}{'accuracy':>10}{'cost (USD)':>13}{'per 1k calls':>14}{'escalated':>11}",
    ]
    for name, label in (
        ("mixtral", "Mixtral-8x7B alone"),
        ("gpt-4", "GPT-4 alone"),
        ("cascade", "cascade (escalate)"),
    ):
        tally = tallies[name]
        per_k = tally.cost / tally.calls * 1000 if tally.calls else Decimal(0)
        escalated = f"{tally.escalated}/{tally.calls}" if name == "cascade" else ""
        lines.append(
            f"{label:<22}{tally.accuracy:>10.1%}{tally.cost:>13.4f}{per_k:>14.3f}{escalated:>11}"
        )
    cascade = tallies["cascade"]
    if strong.cost and strong.accuracy:
        lines.append(
            f"\nThe cascade costs {cascade.cost / strong.cost:.0%} of always-GPT-4 and keeps "
            f"{cascade.accuracy / strong.accuracy:.0%} of its accuracy."
        )
    lines.append(
        "Accuracy: the returned answer equals GSM8K's gold answer. Costs: measured from the "
        "receipts (tokens counted with cl100k; GPT-4 priced by genai-prices, Mixtral at "
        "Mistral's list price)."
    )
    return "\n".join(lines)
