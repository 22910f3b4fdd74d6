"""The worked example of calibration: a mechanical score of GSM8K solutions, calibrated on
the Mixtral tier of a Mixtral -> GPT-4 cascade over their real recorded answers
(``escalate calibrate --gsm8k``; see ``docs/calibration.md``).

The recorded answers carry no logprobs, so the calibrated signal is a score a user could
write: :func:`solution_score` reads only the text of a solution, no model is asked.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from escalate.calibrate import (
    Calibration,
    Item,
    Objective,
    Replay,
    calibrate,
    replay,
    score_gate,
)
from escalate.demo import build_solver, cheap_tier, sample, serve_recorded, strong_tier
from escalate.demo.answers import has_answer_line
from escalate.demo.arithmetic import arithmetic_errors
from escalate.gates import GateContext
from escalate.testing._server import ProviderServer

__all__ = ["GSM8K_GATE", "GSM8KResult", "calibrate_gsm8k", "gsm8k_score", "solution_score"]

_NUMBER = re.compile(r"(?<![\w.,])\$?(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?")
_QUESTION = re.compile(r"Question: (?P<q>.*)\nAnswer:\s*$", re.DOTALL)


def _numbers(text: str) -> set[Decimal]:
    return {
        Decimal(m.group(1).replace(",", "") + (m.group(2) or "")).normalize()
        for m in _NUMBER.finditer(text)
    }


def solution_score(question: str, reasoning: str, answer: Decimal | None) -> float:
    """A mechanical score of a worked solution to a word problem, from 0 to 1; nothing
    but the text is read, no model is asked.

    - 0 when no final answer is stated (``#### N`` or "the answer is N"), or the answer is
      not a whole non-negative number (GSM8K's answers all are);
    - else each wrong calculation written in the reasoning
      (:func:`escalate.demo.arithmetic.arithmetic_errors`) halves the score, and a reasoning
      that leaves some of the question's numbers unused loses up to half:
      ``0.5 ** wrong * (1 + share of the question's numbers used) / 2``.

    Rounded to 4 decimals, so equal scores print alike.
    """
    if answer is None or not has_answer_line(reasoning):
        return 0.0
    if answer != answer.to_integral_value() or answer < 0:
        return 0.0
    wrong = len(arithmetic_errors(reasoning))
    given = _numbers(question)
    used = len(given & _numbers(reasoning)) / len(given) if given else 1.0
    return round(0.5**wrong * (1 + used) / 2, 4)


def gsm8k_score(solution: Any, context: GateContext) -> float:
    """:func:`solution_score` of a ``Solution`` (``reasoning``, ``answer``), the question
    read from the call's first argument, else from the prompt's last ``Question:``."""
    if context.args and isinstance(context.args[0], str):
        question = context.args[0]
    else:
        last = next(
            (str(m.get("content", "")) for m in reversed(context.messages) if m["role"] == "user"),
            "",
        )
        match = _QUESTION.search(last.rsplit("\n\n", 1)[-1])
        question = match.group("q") if match else ""
    return solution_score(question, solution.reasoning, solution.answer)


@dataclass(frozen=True)
class GSM8KResult:
    """The worked example's calibration, and the replay of the cascade at its pick."""

    calibration: Calibration
    replay: Replay | None

    @property
    def matches(self) -> bool:
        """Whether the replay agrees with the picked row exactly."""
        picked = self.calibration.picked
        return picked is not None and self.replay is not None and not self.replay.mismatches(picked)

    def report(self, *, all_rows: bool = False) -> str:
        text = self.calibration.table(all_rows=all_rows)
        if self.replay is not None:
            text += "\n" + self.replay.describe(self.calibration.picked)
        return text


GSM8K_GATE = "gsm8k_score"


def calibrate_gsm8k(
    *,
    limit: int | None = None,
    objective: Objective | None = None,
    replay_pick: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> GSM8KResult:
    """The worked example: calibrate :func:`gsm8k_score` on the Mixtral tier of a Mixtral
    -> GPT-4 cascade over real recorded GSM8K answers (``limit`` questions spread over the
    654 uncontaminated dev questions; all by default), served through the local provider
    server and the real openai SDK and instructor. With ``replay_pick``, the cascade is then
    rebuilt with the gate at the picked threshold and run again, to check the table."""
    problems = sample(limit)
    items = [Item(args=(p.question,), expected=p.gold, id=str(p.index)) for p in problems]
    with ProviderServer() as server:
        serve_recorded(server, problems)

        def solver(at: float) -> Callable[[str], Any]:
            gate = score_gate(gsm8k_score, at, name=GSM8K_GATE)
            return build_solver([cheap_tier(server, gates=[gate]), strong_tier(server)])

        # The threshold the function is built with does not matter: collect() disables it.
        calibration = calibrate(
            solver(0.9),
            items,
            gate=GSM8K_GATE,
            expected_field="answer",
            objective=objective,
            progress=progress,
        )
        checked = None
        if replay_pick and calibration.picked is not None:
            at = calibration.picked.threshold
            checked = replay(solver(at), items, expected_field="answer")
            checked = dataclasses.replace(checked, threshold=at)
    return GSM8KResult(calibration, checked)
