"""Recorded GSM8K answers of a cheap and a strong model, and mechanical checks on answer text.

The data are real outputs published by RouteLLM (lm-sys/RouteLLM at commit
``0b64fdafe049e596a3f5657c219329f24af24198``; see ``data/gsm8k/NOTICE.md``): for each GSM8K test
question, one greedy 8-shot answer from ``mistralai/Mixtral-8x7B-Instruct-v0.1`` (the cheap tier)
and one from ``gpt-4-1106-preview`` (the strong tier), with RouteLLM's True/False label for each.
The package ships a development split: every second question (660 of 1,319).

RouteLLM labelled an answer right when the last run of digits in it, commas removed, equalled the
gold answer (``get_answer_value`` in RouteLLM's ``evals/gsm8k/generate_responses.py``). That rule
reproduces every label here, mistakes included: it reads ``$18.00`` as ``00``, and
``#### 7 packs and 2 extra glue sticks`` as ``2``. :func:`final_answer` reads decimals and the
``####`` line properly, so it disagrees with 28 of the 1,320 labels. In 26 of them the label
calls a right answer wrong. In the other two the label calls ``#### -15`` right for 15 and
``#### 0.84`` right for 84.

Nothing here calls a model. The checks (:func:`final_answer`, :func:`has_answer_line`,
:func:`arithmetic_errors`) read only the text of an answer, so a cascade can apply them to a live
answer as well as to a recorded one.
"""

from __future__ import annotations

import csv
import functools
import importlib
import io
import itertools
import json
import re
import threading
import warnings
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from importlib import resources
from typing import NamedTuple, Protocol, cast

__all__ = [
    "CHEAP_MODEL",
    "STRONG_MODEL",
    "Problem",
    "arithmetic_errors",
    "count_tokens",
    "few_shot_prompt",
    "final_answer",
    "has_answer_line",
    "is_correct",
    "load_problems",
]

CHEAP_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
"""The cheap tier's model name. It is also the CSV column that holds its labels."""

STRONG_MODEL = "gpt-4-1106-preview"
"""The strong tier's model name. It is also the CSV column that holds its labels."""

_PACKAGE = "escalate.demo"
_DATA_DIR = ("data", "gsm8k")
_RESPONSES = "gsm8k_responses.dev.csv"
_QUESTIONS = "test.dev.jsonl"
_TRAIN = "train.first8.jsonl"
_CONTAMINATED = "contaminated_prompts.jsonl"


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One GSM8K question with both models' recorded answers.

    ``index`` is the question's 0-based position in the shipped dev split. Its position in the
    full GSM8K test set is ``2 * index``. ``gold`` is the number after ``####`` in the gold
    solution, with commas removed. ``cheap_correct`` and ``strong_correct`` are RouteLLM's own
    labels. ``contaminated`` marks the questions that RouteLLM's authors found to be
    near-duplicates of training data. Their published figures leave these questions out.
    """

    index: int
    question: str
    gold: Decimal
    cheap_response: str
    strong_response: str
    cheap_correct: bool
    strong_correct: bool
    contaminated: bool


def _data_text(name: str) -> str:
    # Bytes, then decode: the CSV ends rows with CRLF and has bare LF inside quoted fields, and
    # text mode would rewrite line endings.
    return resources.files(_PACKAGE).joinpath(*_DATA_DIR, name).read_bytes().decode("utf-8")


def _jsonl(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in _data_text(name).split("\n") if line.strip()]


def _gold(solution: str) -> Decimal:
    _, sep, tail = solution.rpartition("####")
    if not sep:
        raise ValueError(f"gold solution without '####': {solution[-60:]!r}")
    try:
        return Decimal(tail.strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"gold answer is not a number: {tail.strip()!r}") from None


def _label(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(f"label is not True/False: {text!r}")
    return text == "True"


@functools.cache
def _all_problems() -> tuple[Problem, ...]:
    gold_by_question: dict[str, Decimal] = {}
    for item in _jsonl(_QUESTIONS):
        question, solution = str(item["question"]), str(item["answer"])
        if question in gold_by_question:
            raise ValueError(f"duplicate question in {_QUESTIONS}: {question[:60]!r}")
        gold_by_question[question] = _gold(solution)
    contaminated = {str(item["eval_prompt"]) for item in _jsonl(_CONTAMINATED)}

    reader = csv.DictReader(io.StringIO(_data_text(_RESPONSES), newline=""))
    columns = [CHEAP_MODEL, STRONG_MODEL, f"{CHEAP_MODEL}_response", f"{STRONG_MODEL}_response"]
    missing = [c for c in ["prompt", *columns] if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{_RESPONSES} lacks columns {missing}")
    problems: list[Problem] = []
    for index, row in enumerate(reader):
        question = row["prompt"]
        # The prompt is the question, verbatim. RouteLLM wrote the CSV from test.jsonl in the same
        # order. The join is by exact text, and every row must join.
        gold = gold_by_question.get(question)
        if gold is None:
            raise ValueError(f"{_RESPONSES} row {index} has no question in {_QUESTIONS}")
        problems.append(
            Problem(
                index=index,
                question=question,
                gold=gold,
                cheap_response=row[f"{CHEAP_MODEL}_response"],
                strong_response=row[f"{STRONG_MODEL}_response"],
                cheap_correct=_label(row[CHEAP_MODEL]),
                strong_correct=_label(row[STRONG_MODEL]),
                contaminated=question in contaminated,
            )
        )
    if len(problems) != len(gold_by_question):
        raise ValueError(f"{len(problems)} answer rows but {len(gold_by_question)} questions")
    return tuple(problems)


def load_problems(*, include_contaminated: bool = False) -> list[Problem]:
    """The dev split's questions with both models' answers, in dataset order.

    The data are parsed once and cached, and each call returns a new list. By default the
    questions flagged as contaminated are left out (654 of 660 remain), as in RouteLLM's own
    evaluation.
    """
    return [p for p in _all_problems() if include_contaminated or not p.contaminated]


@functools.cache
def _few_shot_prefix() -> str:
    return "".join(
        f"Question: {item['question']}\nAnswer: {item['answer']}\n\n" for item in _jsonl(_TRAIN)
    )


def few_shot_prompt(question: str) -> str:
    """The 8-shot prompt that both models were given for ``question``.

    The template is the one in RouteLLM's ``evals/gsm8k/generate_responses.py``, which comes
    from SGLang's GSM8K benchmark: eight ``"Question: q\\nAnswer: a"`` blocks from the start of
    GSM8K's training set, separated by blank lines, then ``"Question: <question>\\nAnswer:"``.
    RouteLLM sent this text as one user message. The chat template around that message adds a
    few tokens that :func:`count_tokens` does not see, so input-token counts built from this
    prompt are close to what was billed but not exact.
    """
    return f"{_few_shot_prefix()}Question: {question}\nAnswer:"


# --------------------------------------------------------------------------------------------
# Final answers
# --------------------------------------------------------------------------------------------

# A number as written in an answer: an optional minus and "$", then digits with or without
# thousands commas, then an optional decimal part. The lookbehind stops a match inside a word,
# after a decimal point, and after a comma ("4,6" gives 4, then nothing).
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>-)?\$?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?"
)
_HASH_LINE = re.compile(r"####(?P<rest>[^\n]*)")
_ANSWER_IS = re.compile(r"\banswer\s*(?:is\b\s*:?|:)(?P<rest>[^\n]*)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)")


def _number_value(match: re.Match[str]) -> Decimal:
    digits = match["int"].replace(",", "") + (match["frac"] or "")
    return Decimal(f"-{digits}" if match["sign"] else digits)


def _clause_value(clause: str) -> Decimal | None:
    """The number an answer clause states: the first one after its last '=', else its first."""
    _, _, after = clause.rpartition("=")
    match = _NUMBER.search(after)
    return _number_value(match) if match else None


def _explicit_answer(text: str) -> Decimal | None:
    """The number in the last ``#### N`` line, else in the last "the answer is N" clause."""
    for match in reversed(list(_HASH_LINE.finditer(text))):
        value = _clause_value(match["rest"])
        if value is not None:
            return value
    for match in reversed(list(_ANSWER_IS.finditer(text))):
        clause = _SENTENCE_END.split(match["rest"], maxsplit=1)[0]
        value = _clause_value(clause)
        if value is not None:
            return value
    return None


def final_answer(text: str) -> Decimal | None:
    """The final numeric answer that ``text`` gives, or None if it contains no number.

    The rules are tried in order:

    1. The last ``#### N`` line (GSM8K's own answer format, which the few-shot examples teach).
       When the line continues with a calculation such as ``#### 520 * 450 / 468 = 487.57``,
       the number after the last ``=`` is taken.
    2. The last "The answer is N" or "Answer: N" clause.
    3. The last number anywhere in the text. GPT-4 seldom writes ``####``. It states its result
       at the end ("... so she makes 9 * $2 = $18 every day").

    Numbers may carry ``$``, thousands commas, a decimal part and a minus sign. ``$18.00`` reads
    as 18, and a sentence-final period is not a decimal point.
    """
    explicit = _explicit_answer(text)
    if explicit is not None:
        return explicit
    last = None
    for last in _NUMBER.finditer(text):  # noqa: B007 - the loop only finds the last match
        pass
    return _number_value(last) if last else None


def has_answer_line(text: str) -> bool:
    """Whether ``text`` states a final answer explicitly: a ``#### N`` line or "The answer is N".

    This is a mechanical signal. An answer cut off by a token limit lacks the statement, and so
    does one that never reached a conclusion. Many complete answers lack it too: GPT-4 states its
    result in a sentence and omits GSM8K's ``####`` format.
    """
    return _explicit_answer(text) is not None


def is_correct(text: str, gold: Decimal) -> bool:
    """Whether :func:`final_answer` of ``text`` equals ``gold`` (so ``18.00`` equals ``18``)."""
    answer = final_answer(text)
    return answer is not None and answer == gold


# --------------------------------------------------------------------------------------------
# Arithmetic written in the reasoning
# --------------------------------------------------------------------------------------------

_ANNOTATION = re.compile(r"<<(?P<body>[^<>\n]*)>>")
_OPEN_ANNOTATION = re.compile(r"<<[^<>\n]*$")
_LATEX = (
    (re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"(\1)/(\2)"),
    (re.compile(r"\\text\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\(?:times|cdot)(?![A-Za-z])"), " * "),
    (re.compile(r"\\div(?![A-Za-z])"), " / "),
    (re.compile(r"\\(?:left|right)(?![A-Za-z])"), ""),
    (re.compile(r"\\[()\[\]]"), " "),
    (re.compile(r"\\([*$%])"), r"\1"),  # Markdown-escaped "\*", LaTeX "\$" and "\%"
    (re.compile(r"\\[,;!]"), " "),
    (re.compile(r"\*\*"), " "),  # Markdown bold
)

_TOKEN = re.compile(
    r"""
      (?P<num>\$?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?%?)
    | (?P<op>[-+*/\u00d7\u00f7\u2212\u00b7\u22c5]|(?<![A-Za-z])[xX](?![A-Za-z]))
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<eq>(?<![<>!=])=(?!=))
    | (?P<word>[A-Za-z][A-Za-z'\u2019]*)
    | (?P<other>\S)
    """,
    re.VERBOSE,
)
# Multiplication sign, middle dot, dot operator, division sign and minus sign, as ASCII.
_OPERATORS = {
    "\u00d7": "*",
    "\u00b7": "*",
    "\u22c5": "*",
    "x": "*",
    "X": "*",
    "\u00f7": "/",
    "\u2212": "-",
}
_MALFORMED_AFTER_NUMBER = re.compile(r"[,.]\d|[A-Za-z]")
_TIMES_AFTER_NUMBER = re.compile(r"[xX](?![A-Za-z])")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that may follow a number as its unit inside an equation ("16 eggs - 3 eggs = 13"). These
# never do: they change the value or join clauses.
_NOT_UNITS = _words(
    """and or but is are was were be been equals equal makes gives give get gets of to for by
    from into over than then so which that the a an times plus minus divided multiplied more
    less fewer half halves third thirds quarter quarters twice double triple percent
    percentage hundred hundreds thousand thousands million millions billion billions dozen
    dozens score squared cubed power"""
)
# Words that, just before an equation, make its left side ambiguous ("3 times 4 + 2 = 14").
_VERBAL_OPERATORS = _words(
    """times plus minus over per than into half twice double triple thrice quarter third
    squared cubed divided multiplied"""
)
# Words that do so only after certain words: "divided by 2 + 3", "half of 4 + 2", "1/2 of 4 + 2".
_VERBAL_AFTER = {
    "by": _words("divided multiplied dividing multiplying divide multiply"),
    "of": _words(
        """half halves third thirds quarter quarters fourth fourths fifth fifths tenth tenths
        twice double triple percent"""
    ),
}
# Units that an equation may convert between ("1/2 hour = 30 minutes"): not arithmetic to check.
_CONVERTIBLE_UNITS = _words(
    """second minute min hour hr day week month year decade century inch foot feet yard mile
    meter metre centimeter cm kilometer km millimeter mm ounce oz pound lb gram kilogram kg
    ton cup pint quart gallon liter litre milliliter ml teaspoon tablespoon cent penny
    pennies nickel dime dollar"""
)


# Named tuples rather than dataclasses: they are built by the ten thousand and must be cheap.
class _Tok(NamedTuple):
    kind: str  # "num", "op", "(", ")", "=", "word" or "other"
    text: str
    start: int
    end: int


class _Num(NamedTuple):
    value: Decimal  # as written, without sign
    places: int  # decimal places written
    percent: bool
    unit: str | None  # the first unit word after it ("eggs"), or a rate ("days/week", "/hour")


class _Neg(NamedTuple):
    operand: _Node


class _Seq(NamedTuple):
    operands: tuple[_Node, ...]
    ops: tuple[str, ...]  # "+", "-", "*" or "/"
    tight: tuple[bool, ...]  # whether each operator touches both operands, as in "2/5"
    unit: str | None  # a unit word after the closing parenthesis, if any
    # Facts about the whole subtree, computed once when it is built:
    operators: int  # how many operators
    percent: bool  # whether any number is a percentage
    mixed: bool  # whether some operators have spaces around them and others not
    units: frozenset[str]  # the convertible units named (hour, minute, foot, ...)
    rate: bool  # whether some number has a rate unit, such as "days/week"
    additive: bool  # whether some operator is + or -


def _seq(operands: list[_Node], ops: list[str], tight: list[bool], unit: str | None) -> _Seq:
    operators, percent, mixed = len(ops), False, len(set(tight)) > 1
    units, rate = _convertible(unit), unit is not None and "/" in unit
    additive = "+" in ops or "-" in ops
    for operand in operands:
        while isinstance(operand, _Neg):
            operand = operand.operand
        if isinstance(operand, _Num):
            percent = percent or operand.percent
            units = units | _convertible(operand.unit)
            rate = rate or (operand.unit is not None and "/" in operand.unit)
        else:
            operators += operand.operators
            percent = percent or operand.percent
            mixed = mixed or operand.mixed
            units = units | operand.units
            rate = rate or operand.rate
            additive = additive or operand.additive
    return _Seq(
        tuple(operands),
        tuple(ops),
        tuple(tight),
        unit,
        operators,
        percent,
        mixed,
        units,
        rate,
        additive,
    )


_NO_UNITS: frozenset[str] = frozenset()


def _convertible(unit: str | None) -> frozenset[str]:
    """``{"hour"}`` for "hours" and for "hours/week", and so on; empty for other units."""
    if unit is None:
        return _NO_UNITS
    word = unit.partition("/")[0].lower()
    for suffix, replacement in (("", ""), ("s", ""), ("es", ""), ("ies", "y")):
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)] + replacement
            if stem in _CONVERTIBLE_UNITS:
                return frozenset((stem,))
    return _NO_UNITS


_Node = _Num | _Neg | _Seq
_Interval = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class _Reading:
    """One way to read an expression.

    ``scale_percent``: a percentage is divided by 100 (else its ``%`` is a label, as in
    ``3/4 * 100 = 75%``). ``precedence``: ``*`` and ``/`` bind tighter than ``+`` and ``-`` (else
    operators apply left to right, as in a running calculation such as ``3 + 4 * 2 = 14``).
    ``tight``: operators written without spaces bind first: ``12.8 / 2/5`` is 12.8 / (2/5).
    ``rounded``: numbers with two or more decimals may be rounded (0.33 may stand for 1/3).
    """

    scale_percent: bool = True
    precedence: bool = True
    tight: bool = False
    rounded: bool = True


_EXACT = _Reading(rounded=False)


def _tokens(line: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    for match in _TOKEN.finditer(line):
        kind = match.lastgroup or "other"
        text, start, end = match.group(), match.start(), match.end()
        if kind == "num":
            after = line[end : end + 2]
            # "130,00" (cut off), "1.5.3", "2nd", "5k": not a number to check.
            if _MALFORMED_AFTER_NUMBER.match(after) and not _TIMES_AFTER_NUMBER.match(after):
                kind = "other"
        elif kind == "op":
            text = _OPERATORS.get(text, text)
        elif kind in ("lp", "rp", "eq"):
            kind = text
        tokens.append(_Tok(kind, text, start, end))
    return tokens


class _Parser:
    """Recursive descent over ``tokens[pos:end]``. Each method consumes the longest valid prefix.

    The grammar is ``seq := factor (op factor)*`` and
    ``factor := "-"factor | (number | "(" seq ")") units``. ``units`` is up to four unit words,
    then a rate such as ``/week``, then a note in parentheses such as ``(earnings)``, each
    optional. After a percentage, ``of`` is ``*``.
    """

    def __init__(self, tokens: list[_Tok], pos: int, end: int) -> None:
        self.tokens, self.pos, self.end = tokens, pos, end
        # The index of the last number or ")" that the last parse consumed, before unit words.
        self.value_end = pos

    def _peek(self, offset: int = 0) -> _Tok | None:
        i = self.pos + offset
        return self.tokens[i] if i < self.end else None

    def seq(self) -> _Seq | None:
        first = self.factor()
        if first is None:
            return None
        operands, ops, tight = [first], [], []
        value_end = self.value_end
        while (tok := self._peek()) is not None:
            if tok.kind == "op":
                op = tok.text
            elif tok.kind == "word" and tok.text.lower() == "of" and _is_percent(operands[-1]):
                op = "*"
            else:
                break
            saved = self.pos
            self.pos += 1
            operand = self.factor()
            if operand is None:
                self.pos = saved
                break
            before, after = self.tokens[saved - 1], self.tokens[saved + 1]
            operands.append(operand)
            ops.append(op)
            tight.append(before.end == tok.start and tok.end == after.start)
            value_end = self.value_end
        self.value_end = value_end
        return _seq(operands, ops, tight, None)

    def factor(self) -> _Node | None:
        tok, nxt = self._peek(), self._peek(1)
        if tok is None:
            return None
        if tok.kind == "op" and tok.text == "-" and nxt is not None and nxt.start == tok.end:
            self.pos += 1
            operand = self.factor()
            return _Neg(operand) if operand is not None else None
        if tok.kind == "num":
            self.value_end = self.pos
            self.pos += 1
            percent = tok.text.endswith("%")
            digits = tok.text.strip("$%").replace(",", "")
            _, dot, fraction = digits.partition(".")
            places = len(fraction) if dot else 0
            return _Num(Decimal(digits), places, percent, self._units())
        if tok.kind == "(":
            self.pos += 1
            inner = self.seq()
            closing = self._peek()
            if inner is None or closing is None or closing.kind != ")":
                return None
            self.value_end = self.pos
            self.pos += 1
            return _seq(list(inner.operands), list(inner.ops), list(inner.tight), self._units())
        return None

    def _units(self) -> str | None:
        unit = None
        for _ in range(4):
            tok = self._peek()
            if (
                tok is None
                or tok.kind != "word"
                or len(tok.text) < 2
                or not tok.text[0].islower()
                or tok.text.lower() in _NOT_UNITS
            ):
                break
            unit = unit or tok.text
            self.pos += 1
        # A rate written with a slash, touching: "7 days/week", "$2.00/pound".
        slash, word = self._peek(), self._peek(1)
        if (
            slash is not None
            and word is not None
            and slash.text == "/"
            and word.kind == "word"
            and self.tokens[self.pos - 1].end == slash.start
            and slash.end == word.start
        ):
            self.pos += 2
            unit = f"{unit or ''}/{word.text}"
        # A note in parentheses: "$750 (earnings)", "90 (from the second stop)".
        if (tok := self._peek()) is not None and tok.kind == "(":
            i = self.pos + 1
            while i < self.end and i - self.pos <= 6 and self.tokens[i].kind == "word":
                i += 1
            if i > self.pos + 1 and i < self.end and self.tokens[i].kind == ")":
                self.pos = i + 1
        return unit


def _is_percent(node: _Node) -> bool:
    return isinstance(node, _Num) and node.percent


def _plain(node: _Node) -> _Num | _Neg | None:
    """``node`` if it is one number, perhaps negated or in parentheses, with no operator."""
    while isinstance(node, _Seq) and len(node.operands) == 1:
        node = node.operands[0]
    if isinstance(node, _Num) or (isinstance(node, _Neg) and isinstance(node.operand, _Num)):
        return node
    return None


def _apply(op: str, a: _Interval, b: _Interval) -> _Interval | None:
    if op == "+":
        return a[0] + b[0], a[1] + b[1]
    if op == "-":
        return a[0] - b[1], a[1] - b[0]
    if op == "/":
        if b[0] <= 0 <= b[1]:
            return None
        b = (1 / b[1], 1 / b[0])
    products = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(products), max(products)


def _combine(values: list[_Interval], ops: list[str], precedence: bool) -> _Interval | None:
    if not precedence:
        result: _Interval | None = values[0]
        for op, value in zip(ops, values[1:], strict=True):
            result = _apply(op, result, value) if result else None
        return result
    terms, signs = [values[0]], []
    for op, value in zip(ops, values[1:], strict=True):
        if op in "*/":
            product = _apply(op, terms[-1], value)
            if product is None:
                return None
            terms[-1] = product
        else:
            terms.append(value)
            signs.append(op)
    return _combine(terms, signs, False)


_HALF, _ZERO = Decimal("0.5"), Decimal(0)


def _evaluate(node: _Node, reading: _Reading) -> _Interval | None:
    """The interval of values that ``node`` may stand for, or None on division by zero."""
    if isinstance(node, _Num):
        value = node.value
        slack = _HALF.scaleb(-node.places) if reading.rounded and node.places >= 2 else _ZERO
        if node.percent and reading.scale_percent:
            value, slack = value / 100, slack / 100
        return value - slack, value + slack
    if isinstance(node, _Neg):
        inner = _evaluate(node.operand, reading)
        return (-inner[1], -inner[0]) if inner else None
    values: list[_Interval] = []
    for operand in node.operands:
        interval = _evaluate(operand, reading)
        if interval is None:
            return None
        values.append(interval)
    ops = list(node.ops)
    if reading.tight and len(set(node.tight)) > 1:
        # Evaluate each run of operands joined by unspaced operators first.
        grouped: list[_Interval] = []
        grouped_ops: list[str] = []
        run, run_ops = [values[0]], []
        for op, is_tight, operand_value in zip(ops, node.tight, values[1:], strict=True):
            if is_tight:
                run.append(operand_value)
                run_ops.append(op)
                continue
            combined = _combine(run, run_ops, True)
            if combined is None:
                return None
            grouped.append(combined)
            grouped_ops.append(op)
            run, run_ops = [operand_value], []
        combined = _combine(run, run_ops, True)
        if combined is None:
            return None
        values, ops = [*grouped, combined], grouped_ops
    return _combine(values, ops, reading.precedence)


def _written(node: _Num | _Neg, reading: _Reading) -> tuple[Decimal, Decimal]:
    """The signed value of a written number and one unit in its last written place."""
    number = node if isinstance(node, _Num) else cast(_Num, node.operand)
    value = number.value if isinstance(node, _Num) else -number.value
    ulp = Decimal(1).scaleb(-number.places)
    if number.percent and reading.scale_percent:
        return value / 100, ulp / 100
    return value, ulp


def _matches_written(value: _Interval, written: _Num | _Neg, reading: _Reading) -> bool:
    """Whether some value in ``value`` gives ``written`` once rounded or truncated to its places.

    ``10/3 = 3.33``, ``2/3 = 0.66``, ``7/2 = 3`` and ``7/2 = 4`` hold. ``25/4 = 7`` does not. A
    number written with six or more decimals is a float printed in full, as in
    ``140/3 = 46.666666666666664``, and may be off by a relative 1e-9.
    """
    number, ulp = _written(written, reading)
    places = (written if isinstance(written, _Num) else cast(_Num, written.operand)).places
    slack = abs(number) * Decimal("1e-9") if places >= 6 else _ZERO
    if number >= 0:  # [N - ulp/2, N + ulp): rounded to nearest, or truncated toward zero
        return value[0] < number + ulp + slack and value[1] >= number - ulp / 2 - slack
    return value[0] <= number + ulp / 2 + slack and value[1] > number - ulp - slack


def _readings(lhs: _Seq, rhs: _Seq) -> list[_Reading]:
    percent, mixed = lhs.percent or rhs.percent, lhs.mixed or rhs.mixed
    return [
        _Reading(scale_percent, precedence, tight)
        for scale_percent in ((True, False) if percent else (True,))
        for precedence in (True, False)
        for tight in ((False, True) if mixed else (False,))
    ]


def _claim_holds(lhs: _Seq, rhs: _Seq) -> bool:
    """Whether ``lhs = rhs`` holds under some reading of the expressions."""
    lhs_plain, rhs_plain = _plain(lhs), _plain(rhs)
    for reading in _readings(lhs, rhs):
        left, right = _evaluate(lhs, reading), _evaluate(rhs, reading)
        if left is None or right is None:
            return True  # division by zero: not a claim this checker can judge
        if rhs_plain is not None:
            if _matches_written(left, rhs_plain, reading):
                return True
        elif lhs_plain is not None:
            if _matches_written(right, lhs_plain, reading):
                return True
        else:
            slack = max(abs(left[0]), abs(right[0]), Decimal(1)) * Decimal("1e-9")
            if left[0] <= right[1] + slack and right[0] <= left[1] + slack:
                return True
        # A running calculation, "48 / 2 = 24 * 3 = 72": the right side starts with the left
        # side's value and goes on computing.
        if rhs.ops:
            lead = _plain(rhs.operands[0])
            if lead is not None and _matches_written(left, lead, reading):
                return True
    return False


def _canonical(node: _Node) -> str:
    """``node`` written plainly: ``$4.50 x (2 + $1)`` gives ``4.5*(2+1)``."""
    if isinstance(node, _Num):
        return f"{node.value.normalize():f}" + ("%" if node.percent else "")
    if isinstance(node, _Neg):
        return "-" + _canonical(node.operand)
    parts = [_canonical(node.operands[0])]
    for op, operand in zip(node.ops, node.operands[1:], strict=True):
        inner = _canonical(operand)
        parts += [op, f"({inner})" if isinstance(operand, _Seq) else inner]
    return "".join(parts)


def _describe(lhs: _Seq, rhs: _Seq, source: str) -> tuple[str, str]:
    """The error's text, ``"48/2=25 (is 24)"``, and a key that ignores how the claim was written.

    The key lets the same wrong step, written twice (``48/2 = <<48/2=25>>25``, or as ``$8 x 2``
    in the prose and ``8*2`` in the annotation), be listed once.
    """
    as_percent = rhs.percent and not lhs.percent
    value = _evaluate(lhs, _EXACT if not as_percent else _Reading(False, rounded=False))
    if value is None:
        shown = "?"
    elif value[0] == value[0].to_integral_value():
        shown = str(int(value[0]))
    else:
        shown = f"{round(value[0], 4):f}".rstrip("0").rstrip(".")
    return f"{' '.join(source.split())} (is {shown})", f"{_canonical(lhs)}={shown}"


def _converts_units(lhs: _Seq, rhs: _Seq) -> bool:
    """Whether ``lhs = rhs`` mixes units: ``1/2 hour = 30 minutes``, ``4 feet + 3 inches = 51``.

    A product with a rate in it, ``3 weeks * 7 days/week = 21 days``, writes the conversion out as
    arithmetic, so that claim is checked. A sum of mixed units is not:
    ``2 hours/week + 288 minutes/week = 2 + 4.8``.
    """
    if len(lhs.units | rhs.units) <= 1:
        return False
    return not ((lhs.rate or rhs.rate) and not (lhs.additive or rhs.additive))


def _left_side(tokens: list[_Tok], lo: int, eq: int) -> tuple[_Seq, int] | None:
    """The longest expression that ends just before ``tokens[eq]``, and where it starts."""
    for start in range(lo, eq):
        if tokens[start].kind not in ("num", "(", "op"):
            continue
        parser = _Parser(tokens, start, eq)
        node = parser.seq()
        if node is None or parser.pos != eq:
            continue
        # Only the longest parse counts. If what precedes it makes it ambiguous ("2^3 * 5",
        # "10:30 + 2", "3 times 4 + 2", "1 1/2 * 2"), there is no claim to check.
        return (node, start) if _clean_start(tokens, start) else None
    return None


def _clean_start(tokens: list[_Tok], start: int) -> bool:
    if start == 0:
        return True
    prev, first = tokens[start - 1], tokens[start]
    if prev.end == first.start:  # touching
        return prev.kind == "(" or prev.text in "\"'[{\u201c\u2018"
    if prev.kind == "op":
        return start == 1  # a list bullet: "- 16 - 3 = 13"
    if prev.kind in ("num", ")"):
        return False
    if prev.kind == "word":
        word = prev.text.lower()
        if word in _VERBAL_AFTER and start >= 2:
            before = tokens[start - 2]
            return before.kind != "num" and before.text.lower() not in _VERBAL_AFTER[word]
        return word not in _VERBAL_OPERATORS
    return prev.text not in "^√²³"


def _right_side(tokens: list[_Tok], eq: int, hi: int, at_text_end: bool) -> tuple[_Seq, int] | None:
    """The longest expression just after ``tokens[eq]``, and where its value ends."""
    parser = _Parser(tokens, eq + 1, hi)
    node = parser.seq()
    if node is None:
        return None
    if at_text_end and parser.value_end == len(tokens) - 1:
        return None  # the text stops at this number, which may have been cut off
    end = parser.pos
    if end < len(tokens):
        nxt, last = tokens[end], tokens[end - 1]
        if nxt.kind in ("op", "(") or (nxt.start == last.end and nxt.text in ":^²³"):
            return None  # "= 9 * B", "= 10:30", "= 2^3": the expression goes on unparsed
        # "= 1 hour 30 minutes", "= 5 feet and 3 inches": a compound quantity.
        if node.units:
            i = end
            while i < len(tokens) and i < end + 3 and tokens[i].kind == "word":
                i += 1
            if i < len(tokens) and tokens[i].kind == "num":
                return None
    return node, parser.value_end


_CLAUSE_BREAK = re.compile(r"[;!?]|[.,:](?=\s)")
_EQUALS = re.compile(r"(?<![<>!=])=(?!=)")


def _line_errors(line: str, at_text_end: bool, errors: list[tuple[str, str]]) -> None:
    """Check the equations in one line of prose, including chains ``a = b = c``."""
    # No expression crosses a clause break (", ", ": ", ". ", ";"), so only the stretch from the
    # break before the first "=" to the break after the last one needs tokens. The breaks
    # themselves are kept: they bound the expressions.
    signs = [m.start() for m in _EQUALS.finditer(line)]
    if not signs:
        return
    begin = 0
    for match in _CLAUSE_BREAK.finditer(line, 0, signs[0]):
        begin = match.start()
    after = _CLAUSE_BREAK.search(line, signs[-1])
    finish = after.end() if after else len(line)
    at_text_end = at_text_end and finish == len(line)
    line = line[begin:finish]
    tokens = _tokens(line)
    eqs = [i for i, tok in enumerate(tokens) if tok.kind == "="]
    carried: tuple[_Seq, int] | None = None  # the previous right side, when a chain goes on
    for n, eq in enumerate(eqs):
        lo = eqs[n - 1] + 1 if n else 0
        hi = eqs[n + 1] if n + 1 < len(eqs) else len(tokens)
        left = carried
        if left is None:
            left = _left_side(tokens, lo, eq)
            if left is not None and left[0].operators == 0:
                left = None  # "After 1 year = $120 * 1.05": a label, not a claim
        carried, right = None, None
        if n + 1 < len(eqs):  # a middle link of a chain must be an expression all through
            parser = _Parser(tokens, eq + 1, hi)
            whole = parser.seq()
            if whole is not None and parser.pos == hi:
                right, carried = (whole, parser.value_end), (whole, eq + 1)
        if right is None:
            right = _right_side(tokens, eq, hi, at_text_end)
        if left is None or right is None:
            continue
        (lhs, start), (rhs, end) = left, right
        if lhs.operators + rhs.operators == 0 or _converts_units(lhs, rhs):
            continue
        if not _claim_holds(lhs, rhs):
            errors.append(_describe(lhs, rhs, line[tokens[start].start : tokens[end].end]))


def _annotation_errors(body: str, errors: list[tuple[str, str]]) -> None:
    """Check a GSM8K calculator annotation such as ``<<48/2=24>>``, link by link."""
    tokens = _tokens(body)
    bounds = [-1, *(i for i, tok in enumerate(tokens) if tok.kind == "="), len(tokens)]
    sides: list[tuple[_Seq, int, int]] = []
    for lo, hi in itertools.pairwise(bounds):
        parser = _Parser(tokens, lo + 1, hi)
        node = parser.seq()
        if node is None or parser.pos != hi:
            return  # not pure arithmetic, such as "<<x=5>>" or "<<10*.01>>": nothing to check
        sides.append((node, lo + 1, hi - 1))
    for (lhs, start, _), (rhs, _, end) in itertools.pairwise(sides):
        if lhs.operators + rhs.operators and not _claim_holds(lhs, rhs):
            errors.append(_describe(lhs, rhs, body[tokens[start].start : tokens[end].end]))


def arithmetic_errors(text: str) -> list[str]:
    """Every wrong arithmetic claim in ``text``, each as a short string like ``"48/2=25 (is 24)"``.

    Two kinds of claim are checked. One is GSM8K calculator annotations, ``<<48/2=24>>``. The
    other is equations written in the prose: ``16 - 3 = 13``, ``9 * $2 = $18``, ``3 x 4 = 12``,
    ``1,200 + 300 = 1,500``, ``30% * 80% = 24%``, ``50% of $40 = $20``, chains such as
    ``8 + 4 + (5 * 5) = 8 + 4 + 25 = 37``, and LaTeX ``\\( 3 \\times 4 = 12 \\)``. The operators are
    ``+ - * / x``, their typographic forms and parentheses. Unit words between numbers are
    skipped ("16 eggs - 3 eggs = 13 eggs"). The value after "is" is the left side's true value.

    A claim counts as right if it holds to the precision written: ``10/3 = 3.33`` is right, and
    so are ``2/3 = 0.66`` and ``7/2 = 3`` (rounded or truncated). It also counts as right under
    any other sensible reading: operators applied left to right (a running calculation),
    unspaced operators first (``12.8 / 2/5``), and ``%`` read either as "/100" or as a label.
    Anything that is not clearly an equation is skipped. That covers dates, ranges (``3-4``),
    ratios and times (``7:13``, ``10:30``), algebra with letters (``2x = 22``, ``= 9 * B``),
    labels (``After 1 year = $120 * 1.05``), unit conversions (``1/2 hour = 30 minutes``),
    compound quantities (``= 1 hour 30 minutes``), and a number at the very end of the text,
    which may have been cut off. Expressions are parsed by a small grammar and evaluated with
    exact decimals. Nothing is passed to ``eval``.

    When an annotation and the prose around it make the same claim ("48/2 = <<48/2=25>>25"), the
    error is listed once.
    """
    errors: list[tuple[str, str]] = []
    with localcontext() as context:
        context.prec = 28
        for match in _ANNOTATION.finditer(text):
            _annotation_errors(match["body"], errors)
        prose = _OPEN_ANNOTATION.sub("", _ANNOTATION.sub("", text))
        for pattern, replacement in _LATEX:
            prose = pattern.sub(replacement, prose)
        lines = prose.split("\n")
        for n, line in enumerate(lines):
            if "=" in line:
                _line_errors(line, n == len(lines) - 1, errors)
    unique: dict[str, str] = {}
    for message, key in errors:
        unique.setdefault(key, message)
    return list(unique.values())


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


_ENCODING_LOCK = threading.Lock()


@functools.cache
def _encoding() -> _Encoding:
    with warnings.catch_warnings():
        # bpe_openai reads its tables with a deprecated importlib.resources call.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            module = importlib.import_module("bpe_openai")
        except ImportError as exc:
            raise ImportError(
                "count_tokens needs the bpe-openai package (pip install 'escalate[testing]')"
            ) from exc
        return cast(_Encoding, module.get_encoding("cl100k_base"))


@functools.lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    """The number of ``cl100k_base`` tokens in ``text``. This is GPT-4's tokenizer, exact.

    The count uses ``bpe_openai``, which matches tiktoken's cl100k exactly and works offline.
    Special-token strings such as ``<|endoftext|>`` count as ordinary text. Mixtral has its own
    tokenizer, so for Mixtral this count is an approximation. Recent results are cached, since
    the same prompts and answers are counted again and again.
    """
    if not text:
        return 0
    encoding = _encoding()
    with _ENCODING_LOCK:
        return len(encoding.encode_ordinary(text))
