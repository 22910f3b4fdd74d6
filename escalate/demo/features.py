"""What a learned gate may read in a GSM8K solution besides its words: the mechanical
signals of :mod:`escalate.demo.answers` and :mod:`escalate.demo.arithmetic` as numbers,
and how the reasoning uses the question's quantities.

These are the ``extra`` features of the worked example's learned gate
(:mod:`escalate.demo.learning`). Each is a plain function of the text, no model asked:

- ``score``: :func:`escalate.demo.calibration.solution_score`; ``errors``: wrong
  calculations written (capped at 3); ``answer_line``: a stated final answer;
- ``unused``: the question's numbers that no calculation reads (the strongest single
  signal on the recorded answers: a skipped quantity is a skipped step), and their share;
- ``alien``: numbers a calculation reads that are neither in the question, nor a result
  computed before, nor a common constant (a quantity made up);
- ``dead``: results computed and never used again nor given as the answer;
- ``last_is_answer``: the final answer is the last calculation's result;
- the answer against the question: in it already, its size against the question's largest
  number (log10, clipped), and the sizes of question and reasoning (log-scaled).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation

from escalate.demo.answers import final_answer, has_answer_line
from escalate.demo.arithmetic import arithmetic_errors
from escalate.demo.calibration import solution_score

__all__ = ["gsm8k_features", "solution_features"]

_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?")
_ANNOTATION = re.compile(r"<<([^=<>]*)=([^<>]*)>>")
_PROSE_EQUATION = re.compile(r"([\d.,\s+\-*/x\u00d7()$]+?)=\s*\$?([\d.,]+)")
_QUESTION = re.compile(r"Question: (?P<q>.*)\nAnswer:\s*$", re.DOTALL)
_WORD = re.compile(r"[a-z]+|\d+")
# Constants a solution may bring in without the question stating them (units, percent).
_COMMON = frozenset(
    Decimal(x) for x in (0, 1, 2, 3, 4, 5, 7, 10, 12, 24, 30, 52, 60, 100, 1000, 365)
)
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve")  # fmt: skip
_WORD_VALUES = {
    **{word: Decimal(value) for value, word in enumerate(_NUMBER_WORDS)},
    **{word: Decimal(value) for word, value in (
        ("half", 2), ("twice", 2), ("double", 2), ("triple", 3), ("thrice", 3),
        ("quarter", 4), ("third", 3), ("dozen", 12), ("percent", 100),
    )},
}  # fmt: skip
_WORD_PATTERN = re.compile(r"\b(" + "|".join(_WORD_VALUES) + r")\b")
_PERCENT = re.compile(r"(\d+)\s*%")


def _numbers(text: str) -> list[Decimal]:
    return [
        Decimal(m.group(1).replace(",", "") + (m.group(2) or "")).normalize()
        for m in _NUMBER.finditer(text)
    ]


def _stated(question: str) -> set[Decimal]:
    """The quantities a question gives: its numbers, number words, percents as shares."""
    values = set(_numbers(question))
    values.update(_WORD_VALUES[w].normalize() for w in _WORD_PATTERN.findall(question.lower()))
    values.update((Decimal(m) / 100).normalize() for m in _PERCENT.findall(question))
    return values


def _calculations(reasoning: str) -> list[tuple[list[Decimal], Decimal | None]]:
    """Each calculation's inputs and result: the calculator annotations, else the
    equations written in the prose."""
    found = _ANNOTATION.findall(reasoning) or _PROSE_EQUATION.findall(reasoning)
    calculations = []
    for left, right in found:
        results = _numbers(right)
        calculations.append((_numbers(left), results[0] if results else None))
    return calculations


def _flow(question: str, reasoning: str, answer: Decimal | None) -> dict[str, float]:
    """How the calculations use the question's quantities and each other's results."""
    stated = _stated(question)
    calculations = _calculations(reasoning)
    results: list[Decimal] = []
    alien = inputs = 0
    for operands, result in calculations:
        inputs += len(operands)
        alien += sum(v not in stated and v not in results and v not in _COMMON for v in operands)
        if result is not None:
            results.append(result)
    read = [set(operands) for operands, _ in calculations]
    dead = sum(
        1
        for i, value in enumerate(results[:-1])
        if value != answer and not any(value in later for later in read[i + 1 :])
    )
    given = set(_numbers(question))
    all_read = set().union(*read) if read else set()
    unused = len(given - all_read)
    return {
        "alien": math.log1p(alien),
        "alien_share": alien / inputs if inputs else 0.0,
        "dead": float(dead),
        "last_is_answer": float(bool(results) and answer is not None and results[-1] == answer),
        "steps": math.log1p(len(calculations)),
        "unused": float(unused),
        "unused_share": unused / len(given) if given else 0.0,
    }


def solution_features(question: str, reasoning: str) -> dict[str, float]:
    """The named features of one worked solution (see the module's docstring)."""
    answer = final_answer(reasoning)
    given = set(_numbers(question))
    features = {
        "score": solution_score(question, reasoning, answer),
        "errors": float(min(len(arithmetic_errors(reasoning)), 3)),
        "answer_line": float(has_answer_line(reasoning)),
        "answer_in_question": float(answer is not None and answer.normalize() in given),
        "question_numbers": math.log1p(len(given)),
        "question_words": math.log1p(len(_WORD.findall(question.lower()))),
        "reasoning_words": math.log1p(len(_WORD.findall(reasoning.lower()))),
        "lines": math.log1p(reasoning.count("\n")),
        **_flow(question, reasoning, answer),
    }
    largest = max(given, default=Decimal(0))
    if answer is not None and answer > 0 and largest > 0:
        features["answer_size"] = max(-5.0, min(5.0, math.log10(float(answer / largest))))
    return features


def _question_of(prompt: str) -> str:
    match = _QUESTION.search(prompt.rsplit("\n\n", 1)[-1])
    return match.group("q") if match else prompt


def _reasoning_of(answer_text: str) -> str:
    """The reasoning of a ``Solution`` given as its JSON, else the text itself."""
    try:
        data = json.loads(answer_text)
    except (ValueError, InvalidOperation):
        return answer_text
    reasoning = data.get("reasoning") if isinstance(data, dict) else None
    return reasoning if isinstance(reasoning, str) else answer_text


def gsm8k_features(prompt: str, answer_text: str) -> dict[str, float]:
    """:func:`solution_features` of a call: the question read from the 8-shot prompt's
    last ``Question:``, the reasoning from the answer (a ``Solution``'s JSON or text)."""
    return solution_features(_question_of(prompt), _reasoning_of(answer_text))
