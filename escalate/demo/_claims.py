"""Judging one arithmetic claim, ``lhs = rhs``, for the arithmetic checker
(:mod:`escalate.demo.arithmetic`): what values each side may stand for, whether the claim
holds under some sensible reading, and how to name it when it does not.

Values are intervals of exact decimals: a number written with two or more decimals may
be a rounded one (``0.33`` for 1/3), and a right side holds if it is the left side's
value rounded or truncated to the places written. Nothing is passed to ``eval``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from escalate.demo._expressions import _Neg, _Node, _Num, _plain, _Seq

__all__: list[str] = []  # nothing public: only this package's own modules import from here

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
        tight = _tight_first(values, ops, node.tight)
        if tight is None:
            return None
        values, ops = tight
    return _combine(values, ops, reading.precedence)


def _tight_first(
    values: list[_Interval], ops: list[str], tight: tuple[bool, ...]
) -> tuple[list[_Interval], list[str]] | None:
    """Each run of operands joined by unspaced operators evaluated first (``12.8 / 2/5`` is
    12.8 / (2/5)): the runs' values and the spaced operators between them."""
    grouped: list[_Interval] = []
    grouped_ops: list[str] = []
    run, run_ops = [values[0]], []
    for op, is_tight, operand_value in zip(ops, tight, values[1:], strict=True):
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
    return [*grouped, combined], grouped_ops


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
