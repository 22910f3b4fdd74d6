"""Where a call starts and how it is filed: the first tier, a ``route=`` function's
choice, an override, or the adaptive start learned from receipts (``_adapting``); its
task class and tags.

Overrides are per call and scoped: ``with escalate.options(start_at="strong"): ...`` for a
regenerate button, a user's plan or a task type known at the call site. The receipt's
``route`` says where the call started, who chose it and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from escalate._plan import CallInfo, Plan
from escalate._receipt import Receipt, Route
from escalate.exceptions import ConfigurationError

__all__ = ["REGENERATES_TAG", "as_budget", "options", "resolve"]

REGENERATES_TAG = "escalate.regenerates"
"""The tag ``options(regenerates=...)`` files a call under: the id of the call it
regenerates (the receipt store links the two; quality by tier counts it)."""


@dataclass(frozen=True)
class _Options:
    start_at: str | int | None
    budget_usd: Decimal | None
    reason: str | None
    task: str | None
    tags: Mapping[str, str]
    context: Mapping[str, Any] | None


_current: ContextVar[_Options | None] = ContextVar("escalate_options", default=None)


@contextmanager
def options(
    *,
    start_at: str | int | None = None,
    budget_usd: Decimal | float | str | None = None,
    reason: str | None = None,
    task: str | None = None,
    tags: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
    regenerates: object = None,
) -> Iterator[None]:
    """Per-call settings for every escalating call made inside the block.

    - ``start_at``: a tier name (or index) to start at instead of the cheapest.
    - ``budget_usd``: the cost budget of each call, replacing the decorator's.
    - ``reason``: why, for the receipt (``"regenerate"``, ``"pro plan"``).
    - ``task``: the task class the receipt files the call under (replacing ``task=``).
    - ``tags``: string key/values for the receipt, added to the decorator's.
    - ``context``: instructor's validation context, replacing the decorator's.
    - ``regenerates``: the result (or receipt, or receipt id) of the call this one
      regenerates; the receipt store links them (``reason`` defaults to ``"regenerate"``).
      With ``reason="regenerate"`` alone, the store links the previous call of the same
      function and task class.

    Blocks nest: an inner block keeps whatever of the enclosing block's settings it does
    not set itself, and adds its tags to the enclosing block's.
    """
    if start_at is not None and not isinstance(start_at, (str, int)):
        raise ConfigurationError(f"start_at must be a tier name or index, got {start_at!r}")
    if task is not None and not isinstance(task, str):
        raise ConfigurationError(f"task must be a str naming a task class, got {task!r}")
    outer = _current.get()
    merged = {**(outer.tags if outer is not None else {}), **check_tags(tags or {}, "options")}
    if regenerates is not None:
        merged[REGENERATES_TAG] = _receipt_id(regenerates)
        reason = reason or "regenerate"
    if context is not None and not isinstance(context, Mapping):
        raise ConfigurationError(f"context must be a mapping, got {type(context).__name__}")
    budget = as_budget(budget_usd)
    if outer is not None:
        start_at = outer.start_at if start_at is None else start_at
        budget = outer.budget_usd if budget is None else budget
        reason = outer.reason if reason is None else reason
        task = outer.task if task is None else task
        context = outer.context if context is None else context
    settings = _Options(start_at, budget, reason, task, merged, context)
    token = _current.set(settings)
    try:
        yield
    finally:
        _current.reset(token)


def _receipt_id(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Receipt):
        return value.id
    from escalate._results import receipt_of

    try:
        return receipt_of(value).id
    except (LookupError, TypeError):
        raise ConfigurationError(
            f"options(regenerates=...) takes a result of an escalating call, its receipt or "
            f"the receipt's id, got {type(value).__name__}"
        ) from None


def check_tags(tags: object, where: str) -> dict[str, str]:
    """Tags as a dict of str to str, or a ConfigurationError naming the bad one."""
    if not isinstance(tags, Mapping):
        raise ConfigurationError(f"{where}: tags must be a mapping of str to str, got {tags!r}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigurationError(
                f"{where}: tags must map str to str (a column someone will query); "
                f"got {key!r}: {value!r}"
            )
    return dict(tags)


def as_budget(value: object) -> Decimal | None:
    """A budget in USD as a Decimal, or a ConfigurationError naming the mistake."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ConfigurationError(f"budget_usd must be a number of dollars, got {value!r}")
    try:
        budget = Decimal(str(value))
    except InvalidOperation:
        raise ConfigurationError(f"budget_usd must be a number of dollars, got {value!r}") from None
    if not budget.is_finite() or budget <= 0:
        raise ConfigurationError(f"budget_usd must be > 0, got {value!r}")
    return budget


def resolve(
    plan: Plan,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    on_event: Callable[[Any], None] | None = None,
) -> CallInfo:
    """The call's starting tier (and why), its budget, its filing, who hears its events."""
    chosen = _current.get()
    if chosen is None:
        task = _task(plan, args, kwargs)
        start, route = _start(plan, chosen, args, kwargs, task)
        return CallInfo(args, kwargs, start, route, None, on_event, task, plan.tags)
    task = chosen.task if chosen.task is not None else _task(plan, args, kwargs)
    start, route = _start(plan, chosen, args, kwargs, task)
    tags = {**plan.tags, **chosen.tags} if chosen.tags else plan.tags
    return CallInfo(
        args, kwargs, start, route, chosen.budget_usd, on_event, task, tags, chosen.context
    )


def _task(plan: Plan, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    if plan.task is None or isinstance(plan.task, str):
        return plan.task
    task = plan.task(*args, **kwargs)
    if task is not None and not isinstance(task, str):
        raise TypeError(f"the task function of {plan.function} returned {task!r}, not a str")
    return task


def _start(
    plan: Plan,
    chosen: _Options | None,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    task: str | None,
) -> tuple[int, Route]:
    """``options(start_at=...)`` first, then the ``route=`` function's choice (None: no
    opinion), then the adaptive start, else the cheapest tier."""
    if chosen is not None and chosen.start_at is not None:
        start = _tier_index(plan, chosen.start_at, "options(start_at=...)")
        return start, Route(
            start_tier=plan.tiers[start].name, source="options", reason=chosen.reason
        )
    if plan.route is not None:
        picked = plan.route(*args, **kwargs)
        reason = None
        if isinstance(picked, tuple):
            picked, reason = picked
        if picked is not None:
            start = _tier_index(plan, picked, f"route function of {plan.function}")
            return start, Route(start_tier=plan.tiers[start].name, source="route", reason=reason)
    if plan.adaptive is not None:
        return plan.adaptive.start([t.name for t in plan.tiers], task)
    reason = chosen.reason if chosen is not None else None
    return 0, Route(start_tier=plan.tiers[0].name, reason=reason)


def _tier_index(plan: Plan, tier: object, who: str) -> int:
    names = [t.name for t in plan.tiers]
    if isinstance(tier, int) and not isinstance(tier, bool) and -len(names) <= tier < len(names):
        return tier % len(names)
    if isinstance(tier, str) and tier in names:
        return names.index(tier)
    raise ConfigurationError(f"{who} chose tier {tier!r}, which is not one of {names}")
