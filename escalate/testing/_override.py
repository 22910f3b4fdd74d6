"""Swap the tiers of escalating functions in a test, and refuse real provider calls.

Both switches live in context variables, so what one thread or asyncio task switches on,
another does not see: tests running side by side never step on each other. A thread you
start yourself begins with no override; run it in a copy of your context
(``contextvars.copy_context().run``, or ``asyncio.to_thread``, which does so) to carry one
over.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from escalate._call import path_of
from escalate._config import BuiltTier, Tier, build_tiers
from escalate._plan import Backend
from escalate._switches import ALL_FUNCTIONS, blocked_providers, tier_overrides
from escalate.exceptions import ConfigurationError
from escalate.gates import gate_name, is_async_gate

__all__ = ["block_providers", "override"]


def _original(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function @escalating decorated, from the decorated one or a bound method of it;
    TypeError if there is none."""
    for candidate in (function, getattr(function, "__func__", None)):
        if candidate is None:
            continue
        try:
            path_of(candidate)
        except TypeError:
            continue
        original: Callable[..., Any] = getattr(candidate, "__wrapped__", candidate)
        return original
    raise TypeError(f"{function!r} is not an @escalating function")


def _build(key: Any, tiers: Sequence[str | Tier | Backend]) -> tuple[BuiltTier, ...]:
    """Build ``tiers`` as @escalating would for the function ``key`` (its gates may refuse
    a tier or add request arguments), and check they can serve it."""
    if key is ALL_FUNCTIONS:
        return build_tiers(tiers)
    built = build_tiers(tiers, path_of(key).plan.gates)
    is_async = inspect.iscoroutinefunction(key)
    for tier in built:
        for deployment in tier.deployments:
            deployment.check_flavour(is_async)
        if not is_async:
            for gate in tier.gates:
                if is_async_gate(gate):
                    raise ConfigurationError(
                        f"tier {tier.name!r} has the async gate {gate_name(gate)}, but "
                        f"{key.__qualname__} is sync: give the tier a sync gate"
                    )
    return built


@contextmanager
def override(
    function: Callable[..., Any] | None = None,
    *,
    tiers: Sequence[str | Tier | Backend],
) -> Iterator[None]:
    """Run ``function`` (an ``@escalating`` function) on ``tiers`` instead of its own, for
    as long as the ``with`` block lasts; with no ``function``, every escalating function.

    ::

        with override(extract_invoice, tiers=[ScriptedTier("cheap", {"total": 3})]):
            invoice = extract_invoice("...")   # the call site does not change

    ``tiers`` takes anything ``@escalating(tiers=...)`` does: fake tiers, ``Tier``\\ s and
    ``"provider/model"`` strings; the function keeps its response model, ``on``, retry
    policy, gates and budget. Both are checked on entry: a function that is not escalating raises
    ``TypeError``, bad tiers raise :class:`~escalate.ConfigurationError`.

    Overrides nest, and the innermost wins: an override of every function inside an
    override of one function applies to that one too. They hold for the current thread
    or asyncio task and whatever it starts with a copy of its context (see the module
    docs), never for tests running beside it.
    """
    if function is None:
        key: Any = ALL_FUNCTIONS
        where = "override(tiers=...)"
    else:
        try:
            key = _original(function)
        except TypeError:
            raise TypeError(
                f"override() takes an @escalating function (or no function, for all of "
                f"them); {function!r} is not decorated with @escalating"
            ) from None
        where = f"override({getattr(key, '__qualname__', repr(key))}, tiers=...)"
    try:
        built = _build(key, tiers)
    except ConfigurationError as error:
        raise ConfigurationError(f"{where}: {error}") from None
    current = tier_overrides.get()
    if key is ALL_FUNCTIONS:
        # The innermost override wins: one of every function replaces the narrower ones.
        updated: dict[Any, tuple[Any, ...]] = {ALL_FUNCTIONS: built}
    else:
        updated = {**current, key: built}
    token = tier_overrides.set(MappingProxyType(updated))
    try:
        yield
    finally:
        tier_overrides.reset(token)


@contextmanager
def block_providers(who: str = "escalate.testing.block_providers()") -> Iterator[None]:
    """Make every real provider request raise :class:`~escalate.exceptions.ProviderCallBlocked`
    while the ``with`` block lasts: a test that meant to fake or replay every call fails
    loudly, naming the tier, instead of reaching the network.

    Fake tiers are never blocked. Replaying a cassette is a real request to escalate, so
    do not block inside a test that replays one; the suite-wide switch (the pytest option
    ``--escalate-block-providers``) lifts the block for tests that use a cassette by
    itself. ``who`` is named in the error.
    """
    token = blocked_providers.set(who)
    try:
        yield
    finally:
        blocked_providers.reset(token)
