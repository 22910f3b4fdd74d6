"""The arithmetic checker: every wrong calculation written in a worked solution
(:func:`arithmetic_errors`), found mechanically in the text alone, no model asked.

This module finds the claims in a text (GSM8K calculator annotations, equations in the
prose, chains of them) and decides which are claims at all;
:mod:`escalate.demo._expressions` reads them into expressions and
:mod:`escalate.demo._claims` judges each one.
"""

from __future__ import annotations

import functools
import itertools
import re
from decimal import localcontext

from escalate.demo._claims import _claim_holds, _converts_units, _describe
from escalate.demo._expressions import _Parser, _Seq, _Tok, _tokens, _words

__all__ = ["arithmetic_errors"]

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


def _claim_window(line: str) -> tuple[int, int] | None:
    """Where the equations of ``line`` are: from the clause break before its first "=" to
    the one after its last (None without an "=").

    No expression crosses a clause break (", ", ": ", ". ", ";"), so only that stretch needs
    tokens. The breaks themselves are kept: they bound the expressions.
    """
    signs = [m.start() for m in _EQUALS.finditer(line)]
    if not signs:
        return None
    begin = 0
    for match in _CLAUSE_BREAK.finditer(line, 0, signs[0]):
        begin = match.start()
    after = _CLAUSE_BREAK.search(line, signs[-1])
    return begin, after.end() if after else len(line)


def _middle_link(tokens: list[_Tok], eq: int, hi: int) -> tuple[_Seq, int] | None:
    """The expression between ``tokens[eq]`` and the next "=" at ``tokens[hi]``, and where
    its value ends, when it fills that stretch: a middle link of a chain must be an
    expression all through."""
    parser = _Parser(tokens, eq + 1, hi)
    whole = parser.seq()
    return (whole, parser.value_end) if whole is not None and parser.pos == hi else None


def _line_errors(line: str, at_text_end: bool, errors: list[tuple[str, str]]) -> None:
    """Check the equations in one line of prose, including chains ``a = b = c``."""
    window = _claim_window(line)
    if window is None:
        return
    begin, finish = window
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
        link = _middle_link(tokens, eq, hi) if n + 1 < len(eqs) else None
        if link is not None:
            # The chain goes on: this right side is the next claim's left side.
            right, carried = link, (link[0], eq + 1)
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

    The last few thousand texts' verdicts are cached: the demo's gate and its learned
    gate's features read the same answer one after the other.
    """
    return list(_errors_of(text))


@functools.lru_cache(maxsize=2048)
def _errors_of(text: str) -> tuple[str, ...]:
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
    return tuple(unique.values())
