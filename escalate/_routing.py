"""Where a call starts: the first tier, a ``route=`` function's choice, or an override.

Overrides are per call and scoped: ``with escalate.options(start_at="strong"): ...`` for a
regenerate button, a user's plan or a task type known at the call site. The receipt says
which route was taken and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from escalate._engine import CallInfo, Plan
from escalate.exceptions import ConfigurationError

__all__ = ["as_budget", "options", "resolve"]


@dataclass(frozen=True)
class _Options:
    start_at: str | int | None
    budget_usd: Decimal | None
    reason: str | None


_current: ContextVar[_Options | None] = ContextVar("escalate_options", default=None)


@contextmanager
def options(
    *,
    start_at: str | int | None = None,
    budget_usd: Decimal | float | str | None = None,
    reason: str | None = None,
) -> Iterator[None]:
    """Per-call overrides for every escalating call made inside the block.

    - ``start_at``: a tier name (or index) to start at instead of the cheapest.
    - ``budget_usd``: the cost budget of each call, replacing the decorator's.
    - ``reason``: why, for the receipt (``"regenerate"``, ``"pro plan"``).
    """
    if start_at is not None and not isinstance(start_at, (str, int)):
        raise ConfigurationError(f"start_at must be a tier name or index, got {start_at!r}")
    token = _current.set(_Options(start_at, as_budget(budget_usd), reason))
    try:
        yield
    finally:
        _current.reset(token)


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
    """The call's starting tier (and why), its budget, and who hears its events."""
    chosen = _current.get()
    budget = chosen.budget_usd if chosen is not None else None
    start, route = _start(plan, chosen, args, kwargs)
    return CallInfo(args, dict(kwargs), start, route, budget, on_event)


def _start(
    plan: Plan, chosen: _Options | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[int, str | None]:
    if chosen is not None and chosen.start_at is not None:
        start = _tier_index(plan, chosen.start_at, "options(start_at=...)")
        why = f"start_at={plan.tiers[start].name!r} by options()"
        return start, f"{why}: {chosen.reason}" if chosen.reason else why
    if plan.route is not None:
        picked = plan.route(*args, **kwargs)
        reason = None
        if isinstance(picked, tuple):
            picked, reason = picked
        if picked is not None:
            start = _tier_index(plan, picked, f"route function of {plan.function}")
            why = f"start_at={plan.tiers[start].name!r} by route()"
            return start, f"{why}: {reason}" if reason else why
    return 0, None


def _tier_index(plan: Plan, tier: object, who: str) -> int:
    names = [t.name for t in plan.tiers]
    if isinstance(tier, int) and not isinstance(tier, bool) and -len(names) <= tier < len(names):
        return tier % len(names)
    if isinstance(tier, str) and tier in names:
        return names.index(tier)
    raise ConfigurationError(f"{who} chose tier {tier!r}, which is not one of {names}")
