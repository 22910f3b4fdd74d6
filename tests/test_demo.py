"""The offline demo runs the real stack over recorded answers; its figures must agree
with the same answers judged directly from the data."""

from __future__ import annotations

import io
import subprocess
import sys
from decimal import Decimal

from escalate.demo import CHEAP_GATES, Solution, run_demo, sample
from escalate.demo.answers import final_answer
from escalate.gates import GateContext, Rejected


def _flagged(text: str) -> bool:
    answer = final_answer(text)
    solution = Solution(reasoning=text, answer=answer)
    context = GateContext([], "mixtral", "mixtral", "compatible", "mixtral-8x7b", None, None)
    for gate in CHEAP_GATES:
        try:
            gate(solution, context)
        except Rejected:
            return True
    return False


def test_the_demo_agrees_with_the_data() -> None:
    problems = sample(25)
    out = io.StringIO()

    tallies = run_demo(25, out=out)

    cheap_right = sum(final_answer(p.cheap_response) == p.gold for p in problems)
    strong_right = sum(final_answer(p.strong_response) == p.gold for p in problems)
    flagged = [p for p in problems if _flagged(p.cheap_response)]
    cascade_right = sum(
        final_answer(p.strong_response if p in flagged else p.cheap_response) == p.gold
        for p in problems
    )
    assert (tallies["mixtral"].right, tallies["gpt-4"].right) == (cheap_right, strong_right)
    assert tallies["cascade"].escalated == len(flagged) > 0
    assert tallies["cascade"].right == cascade_right
    assert Decimal(0) < tallies["mixtral"].cost < tallies["cascade"].cost < tallies["gpt-4"].cost
    text = out.getvalue()
    assert text.count("mixtral -> gpt-4") == len(flagged)
    assert "cascade (escalate)" in text and "of always-GPT-4" in text


def test_the_demo_command_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "escalate", "demo", "--limit", "3", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "GPT-4 alone" in done.stdout and "cascade (escalate)" in done.stdout
