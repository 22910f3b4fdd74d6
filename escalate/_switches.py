"""Switches that tests flip and the core reads: tier overrides, the provider block, and
the test mode.

Tier overrides and the provider block live in context variables, so a test running in one
thread or asyncio task never sees another's. The test mode is process-wide, as stamina's
is: a suite switches it on once (in a ``conftest.py``) and every retry in the process,
threads the code under test starts included, stops sleeping. The user-facing switches are
in :mod:`escalate.testing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "ALL_FUNCTIONS",
    "TestingMode",
    "blocked_providers",
    "set_testing_mode",
    "testing_mode",
    "tier_overrides",
]

ALL_FUNCTIONS: Any = object()
"""The key of an override that applies to every escalating function."""

tier_overrides: ContextVar[Mapping[Any, tuple[Any, ...]]] = ContextVar(
    "escalate_tier_overrides", default=MappingProxyType({})
)
"""Maps a decorated function's original function (or ALL_FUNCTIONS) to built tiers."""

blocked_providers: ContextVar[str | None] = ContextVar("escalate_blocked_providers", default=None)
"""When set, a real provider request raises ProviderCallBlocked; the value says who blocked."""


@dataclass(frozen=True)
class TestingMode:
    """Retries make their requests without waiting between them; ``attempts``, when set,
    caps the requests per deployment (the retry policy's count otherwise)."""

    attempts: int | None = None


_testing_mode: TestingMode | None = None


def testing_mode() -> TestingMode | None:
    """The test mode in force, or None (retries wait as their policy says)."""
    return _testing_mode


def set_testing_mode(mode: TestingMode | None) -> TestingMode | None:
    """Put ``mode`` in force for the process; returns the one it replaces."""
    global _testing_mode
    previous, _testing_mode = _testing_mode, mode
    return previous
