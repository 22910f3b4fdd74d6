"""Results carry their receipt: ``result._receipt``, the way instructor's results carry
``_raw_response``.

The receipt is set with ``object.__setattr__`` under a leading underscore, which leaves a
pydantic model's ``==``, ``model_dump``, JSON, ``repr`` and ``hash`` exactly as without
escalate, and which ``model_copy``, ``copy.deepcopy`` and pickle keep. A plain-text answer
is a :class:`Text`, a ``str`` that carries it the same way.

Values that cannot carry an attribute (``int``, ``bool``, ``None``, lists, ...) come with
their receipt from :func:`with_receipt` / :func:`awith_receipt`, which ``mypy`` checks.
Errors carry theirs too: :class:`~escalate.EscalationFailed` as ``.receipt``, an exception
that passed through unchanged as ``_receipt``; :func:`receipt_of` finds either.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel

from escalate._receipt import Receipt

__all__ = ["Text", "attach", "awith_receipt", "receipt_of", "remember", "with_receipt"]

P = ParamSpec("P")
T = TypeVar("T")

_ATTRIBUTE = "_receipt"


class Text(str):
    """A plain-text answer: a ``str`` in every way, with its receipt as ``_receipt``."""

    _receipt: Receipt


def attach(value: Any, receipt: Receipt) -> Any:
    """``value`` as the decorated function returns it, carrying ``receipt`` where it can:
    a ``str`` becomes a :class:`Text`; a pydantic model gets the attribute; anything else
    is returned as it is (see :func:`with_receipt`)."""
    if isinstance(value, str):
        value = Text(value)
    if isinstance(value, (BaseModel, Text)):
        object.__setattr__(value, _ATTRIBUTE, receipt)
    return value


def mark_error(error: BaseException, receipt: Receipt) -> None:
    """Let ``receipt_of(error)`` find the receipt of an exception that passes through
    unchanged (same object, same type, same message)."""
    # An exception type with __slots__ and no room for it cannot carry one.
    with contextlib.suppress(AttributeError, TypeError):
        object.__setattr__(error, _ATTRIBUTE, receipt)


def receipt_of(obj: object) -> Receipt:
    """The receipt of a result returned by an escalating function (or a copy of one), or
    of the error a call raised (also when another error was raised from it, as
    ``asyncio.wait_for`` raises ``TimeoutError`` from the call's cancellation).

    Raises ``LookupError`` when ``obj`` carries no receipt, saying what does.
    """
    if isinstance(obj, BaseException):
        found = _error_receipt(obj)
        if found is not None:
            return found
    else:
        found = _carried(obj)
        if found is not None:
            return found
    raise LookupError(
        f"no receipt on this {type(obj).__name__}: receipt_of() takes a pydantic model or "
        "str returned by an @escalating function (or a copy of one), or the error a call "
        "raised; for int, bool, None, list and other values use "
        "escalate.with_receipt(fn, ...) / awith_receipt(fn, ...)"
    )


def _carried(obj: object) -> Receipt | None:
    try:
        receipt = object.__getattribute__(obj, _ATTRIBUTE)
    except AttributeError:
        return None
    return receipt if isinstance(receipt, Receipt) else None


def _error_receipt(error: BaseException) -> Receipt | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        receipt = getattr(current, "receipt", None)
        if isinstance(receipt, Receipt):
            return receipt
        if (carried := _carried(current)) is not None:
            return carried
        current = current.__cause__ or current.__context__
    return None


_captured: contextvars.ContextVar[list[Receipt] | None] = contextvars.ContextVar(
    "escalate_captured", default=None
)


def remember(receipt: Receipt) -> None:
    """Called by the call path as every call ends: hands the receipt to an enclosing
    :func:`with_receipt`, if any."""
    box = _captured.get()
    if box is not None:
        box.append(receipt)


def with_receipt(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> tuple[T, Receipt]:
    """Call the sync escalating function ``fn`` and return ``(value, receipt)``, whatever
    the value's type::

        count, receipt = escalate.with_receipt(count_items, text)
    """
    box: list[Receipt] = []
    token = _captured.set(box)
    try:
        value = fn(*args, **kwargs)
    finally:
        _captured.reset(token)
    return value, _last(box, fn)


async def awith_receipt(
    fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> tuple[T, Receipt]:
    """The async twin of :func:`with_receipt`: ``value, receipt = await awith_receipt(fn, x)``."""
    box: list[Receipt] = []
    token = _captured.set(box)
    try:
        value = await fn(*args, **kwargs)
    finally:
        _captured.reset(token)
    return value, _last(box, fn)


def _last(box: list[Receipt], fn: Callable[..., Any]) -> Receipt:
    # The call itself ends last: escalating calls made inside its prompt function end first.
    if not box:
        raise TypeError(
            f"{fn!r} made no escalating call: with_receipt takes an @escalating function"
        )
    return box[-1]
