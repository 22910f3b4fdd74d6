"""Circuit breakers in tests: a registry of their own, and a clock the test moves.

Breakers are shared by the whole process, so one test's failing deployment would open a
breaker for the next test. escalate's pytest plugin gives every test a fresh registry;
:func:`breakers` does the same for a ``with`` block, with a clock of the test's choosing::

    clock = ManualClock()
    with breakers(clock=clock) as registry:
        ...                                  # five failures: the breaker opens
        assert registry.state(tier.breaker_key) == "open"
        clock.advance(30)                    # the cooldown is over: one probe may go
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from escalate._breaker import Breakers, swapped

__all__ = ["Breakers", "ManualClock", "breakers"]


class ManualClock:
    """A monotonic clock that moves only when told: ``clock()`` reads it,
    :meth:`advance` moves it on. Safe to read and move from any thread."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` (>= 0) on."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock never goes back; got {seconds!r}")
        with self._lock:
            self._now += seconds

    def __repr__(self) -> str:
        return f"ManualClock({self():g})"


@contextmanager
def breakers(*, clock: Callable[[], float] | None = None) -> Iterator[Breakers]:
    """Give every escalating function a fresh set of circuit breakers for the ``with``
    block (all closed), timed by ``clock`` (monotonic seconds; default
    :func:`time.monotonic`), and yield it: ``registry.state(key)`` says what the breaker of
    a deployment's ``breaker_key`` is, ``registry.reset()`` closes them all. The breakers
    the process had come back afterwards.

    Like :func:`set_testing`, and unlike :func:`override`, it is process-wide.
    """
    with swapped(Breakers(clock or time.monotonic)) as registry:
        yield registry
