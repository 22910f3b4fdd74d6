"""Switches that tests flip and the core reads: tier overrides and the provider block.

They live in context variables, so a test running in one thread or asyncio task never
sees another's. The user-facing context managers are in :mod:`escalate.testing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

__all__ = ["ALL_FUNCTIONS", "blocked_providers", "tier_overrides"]

ALL_FUNCTIONS: Any = object()
"""The key of an override that applies to every escalating function."""

tier_overrides: ContextVar[Mapping[Any, tuple[Any, ...]]] = ContextVar(
    "escalate_tier_overrides", default=MappingProxyType({})
)
"""Maps a decorated function's original function (or ALL_FUNCTIONS) to built tiers."""

blocked_providers: ContextVar[str | None] = ContextVar("escalate_blocked_providers", default=None)
"""When set, a real provider request raises ProviderCallBlocked; the value says who blocked."""
