"""Assertions on receipts that read well in a test and explain themselves when they fail.

Each takes what an escalating call gave you: its result, its :class:`~escalate.Receipt`,
or the :class:`~escalate.EscalationFailed` it raised. A failed assertion says what was
expected and prints the receipt's path: every attempt, its outcome and why, its tokens and
cost, and every move between tiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from escalate._receipt import Receipt
from escalate._results import receipt_of

__all__ = [
    "assert_answered_by",
    "assert_cost_at_most",
    "assert_escalated",
    "assert_not_escalated",
    "assert_tiers",
    "format_receipt",
]


def _receipt(obj: object, assertion: str) -> Receipt:
    if isinstance(obj, Receipt):
        return obj
    try:
        return receipt_of(obj)
    except LookupError as error:
        raise TypeError(f"{assertion}() needs a receipt: {error}") from None


def _cost(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def format_receipt(receipt: Receipt) -> str:
    """The receipt as the assertions print it: the path, then one line per attempt and
    one per move."""
    path = " -> ".join(receipt.tiers_tried) or "(no tier ran)"
    by = f" by {receipt.answered_by}" if receipt.answered_by else ""
    lines = [
        f"receipt of {receipt.function}: {receipt.outcome}{by}; path {path}; "
        f"{len(receipt.attempts)} attempt(s), cost {_cost(receipt.cost_usd)}"
    ]
    for number, attempt in enumerate(receipt.attempts, start=1):
        why = f" ({attempt.trigger}): {attempt.reason}" if attempt.trigger else ""
        reask = f" re-ask {attempt.reask}" if attempt.reask else ""
        if attempt.input_tokens is None and attempt.output_tokens is None:
            tokens = "no usage"
        else:
            tokens = f"{attempt.input_tokens or 0} in / {attempt.output_tokens or 0} out"
        cost = _cost(attempt.cost_usd)
        if attempt.cost_usd is None and attempt.cost_note:
            cost += f" ({attempt.cost_note})"
        lines.append(
            f"  {number}. {attempt.tier} [{attempt.deployment}]{reask} {attempt.outcome}{why}"
            f" - {tokens}, {cost}"
        )
    for move in receipt.moves:
        if move.kind == "sideways":
            hop = f"{move.from_tier} [{move.from_deployment} -> {move.to_deployment}]"
        else:
            hop = f"{move.from_tier} -> {move.to_tier or '(nowhere left)'}"
        lines.append(f"  moved {move.kind}: {hop} ({move.trigger}): {move.reason}")
    return "\n".join(lines)


def _fail(message: str, receipt: Receipt) -> AssertionError:
    return AssertionError(f"{message}\n{format_receipt(receipt)}")


def assert_tiers(obj: object, expected: Sequence[str]) -> None:
    """The tiers that ran, in the order they were first tried, are exactly ``expected``.

    ::

        assert_tiers(invoice, ["cheap", "strong"])
    """
    if isinstance(expected, str):
        raise TypeError(f"assert_tiers() takes a list of tier names, got the str {expected!r}")
    receipt = _receipt(obj, "assert_tiers")
    if list(receipt.tiers_tried) != list(expected):
        ran = " -> ".join(receipt.tiers_tried) or "no tier"
        raise _fail(f"expected the tiers {list(expected)} to run, but {ran} ran", receipt)


def assert_answered_by(obj: object, tier: str) -> None:
    """The answer came from ``tier``."""
    receipt = _receipt(obj, "assert_answered_by")
    if receipt.answered_by != tier:
        got = (
            f"it was answered by {receipt.answered_by!r}"
            if receipt.answered_by
            else f"the call {receipt.outcome} without an answer"
        )
        raise _fail(f"expected an answer from {tier!r}, but {got}", receipt)


def assert_escalated(
    obj: object,
    *,
    trigger: str | None = None,
    reason_contains: str | None = None,
    from_tier: str | None = None,
    to_tier: str | None = None,
) -> None:
    """The call moved up a tier at least once; with arguments, at least one move up has
    that ``trigger`` (``"validation"``, ``"gate"``, ``"on"``, ``"rate_limit"``, ...), a
    reason containing ``reason_contains``, and goes ``from_tier`` / ``to_tier``.

    ::

        assert_escalated(invoice, trigger="validation", reason_contains="total")
    """
    receipt = _receipt(obj, "assert_escalated")
    wanted = {
        "trigger": trigger,
        "reason containing": reason_contains,
        "from": from_tier,
        "to": to_tier,
    }
    asked = ", ".join(f"{k} {v!r}" for k, v in wanted.items() if v is not None)
    if not receipt.escalations:
        raise _fail(
            f"expected the call to escalate{f' ({asked})' if asked else ''}, but it never "
            "moved up a tier",
            receipt,
        )
    for move in receipt.escalations:
        if (
            (trigger is None or move.trigger == trigger)
            and (reason_contains is None or reason_contains in move.reason)
            and (from_tier is None or move.from_tier == from_tier)
            and (to_tier is None or move.to_tier == to_tier)
        ):
            return
    raise _fail(f"the call escalated, but no move up has {asked}", receipt)


def assert_not_escalated(obj: object) -> None:
    """The call never moved up a tier (retries and sideways moves are allowed)."""
    receipt = _receipt(obj, "assert_not_escalated")
    if receipt.escalations:
        first = receipt.escalations[0]
        raise _fail(
            f"expected no escalation, but the call moved up from {first.from_tier!r} "
            f"({first.trigger}): {first.reason}",
            receipt,
        )


def assert_cost_at_most(obj: object, usd: Decimal | float | int | str) -> None:
    """The call's total cost is known and at most ``usd`` dollars.

    ::

        assert_cost_at_most(invoice, "0.001")
    """
    try:
        bound = Decimal(str(usd))
    except InvalidOperation:
        raise TypeError(f"assert_cost_at_most() takes a number of dollars, got {usd!r}") from None
    if not bound.is_finite():
        raise TypeError(f"assert_cost_at_most() takes a finite number of dollars, got {usd!r}")
    receipt = _receipt(obj, "assert_cost_at_most")
    cost = receipt.cost_usd
    if cost is None:
        unknown = [
            f"{a.tier} ({a.cost_note or 'no price'})"
            for a in receipt.attempts
            if a.cost_usd is None
        ]
        raise _fail(
            f"expected a cost of at most ${bound}, but the cost is unknown: no price for "
            f"{'; '.join(unknown)}",
            receipt,
        )
    if cost > bound:
        raise _fail(f"expected a cost of at most ${bound}, but it cost ${cost:.6f}", receipt)
