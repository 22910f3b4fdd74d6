"""Arithmetic as written in a worked solution, read into expressions: the tokenizer, the
expression tree and its parser, for the arithmetic checker (:mod:`escalate.demo.arithmetic`).

A small grammar, not ``eval``: a model's text is never executed. What the tree records
beside the numbers (units, percentages, spacing) is what the checker needs to tell a
calculation from a date, a ratio, a label or a unit conversion.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NamedTuple

__all__: list[str] = []  # nothing public: only this package's own modules import from here

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
            return self._number(tok)
        if tok.kind == "(":
            return self._group()
        return None

    def _number(self, tok: _Tok) -> _Num:
        """The number at ``tok`` (the current token), with its units."""
        self.value_end = self.pos
        self.pos += 1
        percent = tok.text.endswith("%")
        digits = tok.text.strip("$%").replace(",", "")
        _, dot, fraction = digits.partition(".")
        places = len(fraction) if dot else 0
        return _Num(Decimal(digits), places, percent, self._units())

    def _group(self) -> _Seq | None:
        """A parenthesized expression at the current ``(``, with its units."""
        self.pos += 1
        inner = self.seq()
        closing = self._peek()
        if inner is None or closing is None or closing.kind != ")":
            return None
        self.value_end = self.pos
        self.pos += 1
        return _seq(list(inner.operands), list(inner.ops), list(inner.tight), self._units())

    def _units(self) -> str | None:
        unit = self._rate(self._unit_words())
        self._skip_note()
        return unit

    def _unit_words(self) -> str | None:
        """Up to four unit words ("16 eggs", "3 red apples"): the first one is the unit."""
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
        return unit

    def _rate(self, unit: str | None) -> str | None:
        """``unit`` made a rate by a slash, touching: "7 days/week", "$2.00/pound"."""
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
            return f"{unit or ''}/{word.text}"
        return unit

    def _skip_note(self) -> None:
        """Past a note in parentheses: "$750 (earnings)", "90 (from the second stop)"."""
        if (tok := self._peek()) is not None and tok.kind == "(":
            i = self.pos + 1
            while i < self.end and i - self.pos <= 6 and self.tokens[i].kind == "word":
                i += 1
            if i > self.pos + 1 and i < self.end and self.tokens[i].kind == ")":
                self.pos = i + 1


def _is_percent(node: _Node) -> bool:
    return isinstance(node, _Num) and node.percent


def _plain(node: _Node) -> _Num | _Neg | None:
    """``node`` if it is one number, perhaps negated or in parentheses, with no operator."""
    while isinstance(node, _Seq) and len(node.operands) == 1:
        node = node.operands[0]
    if isinstance(node, _Num) or (isinstance(node, _Neg) and isinstance(node.operand, _Num)):
        return node
    return None
