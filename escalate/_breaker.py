"""Circuit breakers: a deployment that keeps failing at the provider is skipped for a while.

One breaker per deployment *identity* (provider, model, base URL), shared by every
escalating function in the process, so the second function to call a dead deployment does
not pay for the first one's discovery. The states::

    closed --(a run of provider failures)--> open --(cooldown over)--> half-open
      ^                                       ^                            |
      |                                       +----(the probe fails)-------+
      +-----------------(the probe succeeds)-------------------------------+

- *closed*: requests go through; provider failures are counted, anything the provider
  answered (even an answer that failed its checks) resets the run.
- *open*: requests are not made; the engine records a ``skipped`` attempt (trigger
  ``breaker``, no cost) and moves sideways or up at once. The cooldown is the provider's
  Retry-After when the failure that opened it gave one, else ``Breaker.cooldown``.
- *half-open*: exactly one request (the probe) goes through at a time; every other one is
  skipped until the probe has ended. Its success closes the breaker; its provider failure
  opens it again. A probe that ends otherwise (an error no trigger matches, a cancelled
  call) frees the probe's place for the next request.

Only provider failures count (429, 5xx, 529, timeouts, dropped connections, bodies that do
not parse): never a quality failure, never an unmatched error.

The state lives in a :class:`Breakers` registry guarded by a ``threading.Lock``; nothing
under the lock awaits or does I/O, so one registry serves threads and asyncio tasks alike.
The engine consults it without I/O (see ``_deploying``). Time comes from the registry's
clock (monotonic seconds), which tests replace (``escalate.testing.breakers(clock=...)``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from escalate.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_BREAKER",
    "Breaker",
    "BreakerState",
    "Breakers",
    "Change",
    "Refusal",
    "Report",
    "Ticket",
    "breakers_enabled",
    "check_breaker",
    "current",
    "set_breakers",
    "swapped",
]

Clock = Callable[[], float]
BreakerState = Literal["closed", "open", "half_open"]
Report = Literal["success", "failure", "neutral"]
"""What a request came to, for its breaker: ``success`` (the provider answered, whatever
the answer's quality), ``failure`` (a provider failure), ``neutral`` (neither: an error no
trigger matches, a cancelled call)."""


@dataclass(frozen=True, kw_only=True)
class Breaker:
    """When a deployment's circuit breaker opens, and for how long.

    - ``failures``: provider failures in a row (requests, retries included) that open it.
    - ``share``: also open when, within the last ``window`` seconds, at least ``failures``
      requests failed at the provider and they were at least this share (0 to 1) of the
      requests made there. ``None`` (the default): the run alone decides.
    - ``window``: seconds over which ``share`` is measured.
    - ``cooldown``: seconds it stays open before one probe request may go, when the
      failure that opened it gave no Retry-After; a Retry-After is honoured instead, up to
      ``max_cooldown`` seconds.
    - ``enabled``: ``False`` switches this tier's breakers off (as does ``breaker=None``).

    The defaults are conservative: five failures in a row is more than one call's
    retries (``Retry(attempts=3)``) can make, so one unlucky call never opens a breaker,
    and 30 seconds is about what providers ask for in a Retry-After.
    """

    failures: int = 5
    share: float | None = None
    window: float = 60.0
    cooldown: float = 30.0
    max_cooldown: float = 300.0
    enabled: bool = True

    def __post_init__(self) -> None:
        check_breaker(self, "Breaker")

    def cooldown_for(self, retry_after: float | None) -> float:
        """How long to stay open: the provider's Retry-After when given, else ``cooldown``;
        never more than ``max_cooldown``."""
        wanted = self.cooldown if retry_after is None else max(retry_after, 0.0)
        return min(wanted, self.max_cooldown)


def _number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_breaker(breaker: object, where: str) -> None:
    """Raise ConfigurationError, naming ``where``, if ``breaker`` is not a usable setting."""
    if breaker is None:
        return
    if not isinstance(breaker, Breaker):
        raise ConfigurationError(
            f"{where}: breaker must be a Breaker(...) or None, got {type(breaker).__name__}"
        )
    failures = breaker.failures
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
        raise ConfigurationError(f"{where}: failures must be an int >= 1, got {failures!r}")
    share = breaker.share
    if share is not None and not (_number(share) and 0 < share <= 1):
        raise ConfigurationError(
            f"{where}: share must be a number above 0 and at most 1 (or None), got {share!r}"
        )
    for name in ("window", "cooldown", "max_cooldown"):
        value = getattr(breaker, name)
        if not (_number(value) and value > 0):
            raise ConfigurationError(
                f"{where}: {name} must be a number of seconds > 0, got {value!r}"
            )
    if breaker.cooldown > breaker.max_cooldown:
        raise ConfigurationError(
            f"{where}: cooldown ({breaker.cooldown!r}) is above max_cooldown "
            f"({breaker.max_cooldown!r})"
        )
    if not isinstance(breaker.enabled, bool):
        raise ConfigurationError(f"{where}: enabled must be True or False, got {breaker.enabled!r}")


DEFAULT_BREAKER = Breaker()
"""The breaker a tier gets when it names none."""


@dataclass(eq=False)
class Ticket:
    """Leave to send one request; hand it back through :meth:`Breakers.report`."""

    registry: Breakers | None
    """``None``: no breaker watches this request (switched off)."""
    key: Hashable = None
    config: Breaker = DEFAULT_BREAKER
    probe: bool = False
    """This request is the half-open breaker's one probe."""
    done: bool = False


@dataclass(frozen=True)
class Refusal:
    """The breaker is open (or its probe is out): no request may go now."""

    reason: str
    remaining: float | None
    """Seconds until a probe may go; ``None`` while another call's probe is out."""


@dataclass(frozen=True)
class Change:
    """A breaker opened or closed because of the request just reported."""

    kind: Literal["opened", "closed"]
    reason: str
    cooldown: float = 0.0
    failures: int = 0
    """Provider failures in the run that opened it."""
    probe: bool = False
    """It changed on its probe's outcome."""


_FREE = Ticket(None)


@dataclass
class _Window:
    """Requests and provider failures over the last ``window`` seconds, in ten buckets, so
    a busy deployment never keeps more than a handful of numbers."""

    span: float
    buckets: deque[list[float]] = field(default_factory=deque)
    """[start, requests, failures] per bucket, oldest first."""

    def add(self, now: float, failed: bool) -> None:
        width = self.span / 10
        while self.buckets and self.buckets[0][0] <= now - self.span:
            self.buckets.popleft()
        if not self.buckets or self.buckets[-1][0] + width <= now:
            self.buckets.append([now, 0, 0])
        last = self.buckets[-1]
        last[1] += 1
        last[2] += failed

    def totals(self) -> tuple[int, int]:
        requests = sum(int(b[1]) for b in self.buckets)
        return requests, sum(int(b[2]) for b in self.buckets)


@dataclass
class _State:
    state: BreakerState = "closed"
    run: int = 0
    """Provider failures in a row."""
    until: float = 0.0
    """While open: when a probe may go (clock seconds)."""
    probing: bool = False
    why: str = ""
    """What opened it, for the receipts of the calls it turns away."""
    window: _Window | None = None


class Breakers:
    """The breakers of a process (or of one test): state per deployment identity.

    Every method takes the lock briefly and never waits or does I/O under it.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._states: dict[Hashable, _State] = {}

    def admit(self, key: Hashable, config: Breaker | None) -> Ticket | Refusal:
        """May a request go to the deployment ``key`` now?"""
        if config is None or not config.enabled or not _enabled:
            return _FREE
        with self._lock:
            state = self._states.get(key)
            if state is None or state.state == "closed":
                return Ticket(self, key, config)
            now = self.clock()
            if state.state == "open":
                if now < state.until:
                    return Refusal(state.why, state.until - now)
                state.state, state.probing = "half_open", False
            if state.probing:
                return Refusal(f"{state.why}; another call's probe request is out", None)
            state.probing = True
            return Ticket(self, key, config, probe=True)

    def report(
        self,
        ticket: Ticket,
        outcome: Report,
        *,
        reason: str = "",
        retry_after: float | None = None,
    ) -> Change | None:
        """What the admitted request came to; the change of state it caused, if any."""
        if ticket.registry is not self or ticket.done:
            return None
        ticket.done = True
        config = ticket.config
        with self._lock:
            state = self._states.get(ticket.key)
            if ticket.probe:
                return self._probed(ticket, state, outcome, reason, retry_after)
            if outcome == "neutral":
                return None
            if state is None:
                if outcome == "success" and config.share is None:
                    return None  # the common case: nothing to remember
                state = self._states[ticket.key] = _State()
            if state.state != "closed":
                return None  # admitted before it opened: only the probe decides now
            now = self.clock()
            if config.share is not None:
                if state.window is None or state.window.span != config.window:
                    state.window = _Window(config.window)
                state.window.add(now, outcome == "failure")
            if outcome == "success":
                state.run = 0
                if config.share is None:
                    del self._states[ticket.key]
                return None
            state.run += 1
            why = self._tripped(state, config)
            if why is None:
                return None
            return self._open(state, config, now, f"{why} (last: {reason})", retry_after)

    def release(self, ticket: Ticket) -> None:
        """The admitted request was never reported (its call was stopped): a neutral end."""
        self.report(ticket, "neutral")

    def _probed(
        self,
        ticket: Ticket,
        state: _State | None,
        outcome: Report,
        reason: str,
        retry_after: float | None,
    ) -> Change | None:
        if state is None or state.state != "half_open" or not state.probing:
            return None  # the registry was reset while the probe was out
        state.probing = False
        if outcome == "success":
            del self._states[ticket.key]
            return Change("closed", "the probe request succeeded", probe=True)
        if outcome == "failure":
            state.run += 1
            why = f"the probe request failed at the provider ({reason})"
            return self._open(state, ticket.config, self.clock(), why, retry_after, probe=True)
        return None

    @staticmethod
    def _tripped(state: _State, config: Breaker) -> str | None:
        if state.run >= config.failures:
            return f"{state.run} provider failures in a row"
        if config.share is None or state.window is None:
            return None
        requests, failures = state.window.totals()
        if failures >= config.failures and failures >= config.share * requests:
            return (
                f"{failures} of {requests} requests in the last {config.window:g}s failed "
                f"at the provider (share {failures / requests:.0%} >= {config.share:.0%})"
            )
        return None

    @staticmethod
    def _open(
        state: _State,
        config: Breaker,
        now: float,
        why: str,
        retry_after: float | None,
        *,
        probe: bool = False,
    ) -> Change:
        cooldown = config.cooldown_for(retry_after)
        state.state, state.until, state.probing = "open", now + cooldown, False
        source = "the provider's Retry-After" if retry_after is not None else "the cooldown"
        state.why = f"the breaker opened after {why}"
        failures, state.run = state.run, 0
        reason = f"{why}; open for {cooldown:g}s ({source})"
        return Change("opened", reason, cooldown, failures, probe)

    # --- for tests and operators ---------------------------------------------------------

    def state(self, key: Hashable) -> BreakerState:
        """The state of the breaker of ``key`` (``closed`` when it has none), as the next
        request would find it: an open breaker whose cooldown is over reads half-open."""
        with self._lock:
            state = self._states.get(key)
            if state is None:
                return "closed"
            if state.state == "open" and self.clock() >= state.until:
                return "half_open"
            return state.state

    def reset(self) -> None:
        """Close every breaker and forget every count."""
        with self._lock:
            self._states.clear()


_enabled = True
_registry = Breakers()
_swap_lock = threading.Lock()


def current() -> Breakers:
    """The registry calls consult now: the process's, or one a test put in its place."""
    return _registry


def set_breakers(enabled: bool) -> None:
    """Switch every circuit breaker of the process on or off (they are on by default).

    Off, no request is ever skipped and nothing is counted; per tier, use
    ``Tier(breaker=None)`` or ``Breaker(enabled=False)`` instead.
    """
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"set_breakers() takes True or False, got {enabled!r}")
    _enabled = enabled


def breakers_enabled() -> bool:
    """Whether circuit breakers are switched on for the process (see :func:`set_breakers`)."""
    return _enabled


@contextmanager
def swapped(registry: Breakers) -> Iterator[Breakers]:
    """Put ``registry`` in place of the process's for the ``with`` block (for tests)."""
    global _registry
    with _swap_lock:
        previous, _registry = _registry, registry
    try:
        yield registry
    finally:
        with _swap_lock:
            _registry = previous
