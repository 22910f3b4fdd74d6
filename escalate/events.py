"""Events: every change of tier, as it happens, for hooks and streams.

A call of an escalating function emits, in order:

- :class:`TierStarted` when a tier (or, after a sideways move, another deployment of it)
  becomes active;
- :class:`PartialAnswer` as a streaming tier's answer arrives (``Tier(stream=True)``);
- :class:`AttemptFinished` after every request, with its :class:`~escalate.Attempt`
  (and for every request an open circuit breaker skipped: outcome ``skipped``, trigger
  ``breaker``, no cost);
- :class:`BreakerOpened` when this call's provider failure opened a deployment's circuit
  breaker (every escalating function in the process now skips it until the cooldown
  ends), and :class:`BreakerClosed` when this call's probe request closed one;
- :class:`MovedSideways` after a provider failure moves the task to an equivalent
  deployment, and :class:`Escalated` when it moves up a tier (trigger, reason, and, when
  the model itself asked, its restated question);
- :class:`Audited` when the answer was audited (``escalating(audit=...)``): inline, just
  before :class:`Finished`; in the background, after the call returned, with the amended
  receipt (same id, the audit's attempt added);
- :class:`Finished` once, with the result or the error, and the receipt.

Outside any call, a receipt store's watch (``escalate.store.Watch``) hands
:class:`AlertRaised` to the global hooks (and its own) when a rate leaves its band.

Two ways to receive them:

- hooks, for logs, metrics or a UI: ``@escalating(..., hooks=[fn])`` for one function, or
  :func:`set_hooks` for every escalating call. A hook is ``Callable[[Event], None]``; one
  that raises is logged and never breaks the call;
- a stream: ``for event in escalate.events.stream(fn, *args)`` (or ``async for`` over
  :func:`astream`), ending with :class:`Finished` (its ``result``, or the error re-raised
  after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from escalate._receipt import Attempt, AuditVerdict, Receipt

__all__ = [
    "AlertRaised",
    "AttemptFinished",
    "Audited",
    "BreakerClosed",
    "BreakerOpened",
    "Escalated",
    "Event",
    "Finished",
    "Hook",
    "MovedSideways",
    "PartialAnswer",
    "TierStarted",
    "astream",
    "get_hooks",
    "set_hooks",
    "stream",
]

logger = logging.getLogger("escalate")


@dataclass(frozen=True)
class TierStarted:
    """A tier (or one of its deployments) is now the one answering."""

    function: str
    tier: str
    deployment: str


@dataclass(frozen=True)
class PartialAnswer:
    """Part of an answer, as a streaming tier produces it: the answer model with the
    fields received so far (instructor's partial streaming). Not yet validated."""

    function: str
    tier: str
    deployment: str
    partial: Any


@dataclass(frozen=True)
class AttemptFinished:
    """One request ended; ``attempt`` is its receipt entry."""

    function: str
    attempt: Attempt


@dataclass(frozen=True)
class BreakerOpened:
    """A deployment's circuit breaker opened: calls skip it for ``cooldown_s`` seconds
    (the provider's Retry-After when it gave one), then one probe request may go.
    ``probe``: it opened again because its probe failed."""

    function: str
    tier: str
    deployment: str
    provider: str
    model: str
    failures: int
    cooldown_s: float
    reason: str
    probe: bool = False


@dataclass(frozen=True)
class BreakerClosed:
    """A deployment's circuit breaker closed: its probe request succeeded."""

    function: str
    tier: str
    deployment: str
    provider: str
    model: str
    reason: str


@dataclass(frozen=True)
class MovedSideways:
    """A provider failure moved the task to an equivalent deployment of the same tier."""

    function: str
    tier: str
    from_deployment: str
    to_deployment: str
    trigger: str
    reason: str


@dataclass(frozen=True)
class Escalated:
    """The task moved up a tier (``to_tier`` is None when none was left)."""

    function: str
    from_tier: str
    to_tier: str | None
    trigger: str
    reason: str
    question: str | None = None
    """When the model asked to escalate: its self-contained restatement of the question."""


@dataclass(frozen=True)
class Finished:
    """The call ended: ``result`` (or ``error``) and the whole receipt."""

    function: str
    receipt: Receipt
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Audited:
    """A stronger tier audited the returned answer: ``verdict`` says whether they agreed
    (``None``: the audit got no answer), ``receipt`` is the receipt with the audit on it.
    An inline audit's comes just before :class:`Finished`; a background audit's after the
    call returned, from escalate's background worker thread, with the amended receipt
    (the object the caller holds keeps its original receipt)."""

    function: str
    verdict: AuditVerdict
    receipt: Receipt


@dataclass(frozen=True)
class AlertRaised:
    """A store watch found its band left (``escalate.store.Watch``): not part of a call.
    ``function`` is the watched function (or ``""`` for a task class or all calls)."""

    function: str
    kind: str
    """``escalation_ceiling``, ``escalation_drift``, ``cheap_quality`` or ``cost_per_hour``."""
    message: str
    value: float
    limit: float
    window_start: datetime
    window_end: datetime


Event = (
    TierStarted
    | PartialAnswer
    | AttemptFinished
    | BreakerOpened
    | BreakerClosed
    | MovedSideways
    | Escalated
    | Audited
    | Finished
    | AlertRaised
)
Hook = Callable[[Event], None]

_global_hooks: tuple[Hook, ...] = ()


def set_hooks(hooks: Sequence[Hook]) -> None:
    """Hooks called with every event of every escalating call (replacing earlier ones)."""
    global _global_hooks
    _global_hooks = check_hooks(hooks)


def check_hooks(hooks: object) -> tuple[Hook, ...]:
    """Hooks as a tuple, or a TypeError naming the one that cannot be a hook: hooks are
    called synchronously, so an async one would never be awaited."""
    if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Sequence):
        raise TypeError(f"hooks must be a list of callables taking an event, got {hooks!r}")
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"a hook is a callable taking an event, got {hook!r}")
        if _is_async_callable(hook):
            raise TypeError(
                f"hook {hook!r} is async, and hooks are called synchronously (it would never "
                "be awaited): make it a plain function, and hand slow work to a queue or "
                "loop.call_soon_threadsafe"
            )
    return tuple(hooks)


def _is_async_callable(hook: object) -> bool:
    # An object whose __call__ is async counts too (inspect sees only functions).
    call = type(hook).__dict__.get("__call__")
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(call)


def get_hooks() -> tuple[Hook, ...]:
    """The hooks set by :func:`set_hooks`."""
    return _global_hooks


_sink: contextvars.ContextVar[Hook | None] = contextvars.ContextVar("escalate_sink", default=None)


def listener(hooks: Sequence[Hook], *, streams: bool = True) -> Hook | None:
    """One callable that hands an event to the function's hooks, the global ones and any
    stream in progress (``streams=False``: not the stream: after the call returned, as a
    background audit's events are), or None when nobody listens (then no event is even
    built)."""
    sink = _sink.get() if streams else None
    everyone = (*hooks, *_global_hooks, *((sink,) if sink is not None else ()))
    if not everyone:
        return None

    def dispatch(event: Event) -> None:
        for hook in everyone:
            try:
                hook(event)
            except Exception:
                logger.warning(
                    "escalate: hook %r failed on %s", hook, type(event).__name__, exc_info=True
                )

    return dispatch


_DONE = object()


def stream(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Event]:
    """Run a sync escalating function and yield its events as they happen.

    The last event is :class:`Finished`; if the call failed, its error is raised after it.
    The call runs in a worker thread (with the caller's context: overrides and options
    apply), so events arrive while it is still working.
    """
    if inspect.iscoroutinefunction(function):
        raise TypeError(f"{function!r} is async: use `async for event in astream(...)`")
    events: queue.Queue[Any] = queue.Queue()
    failure: list[BaseException] = []
    context = contextvars.copy_context()

    def run() -> None:
        _sink.set(events.put)
        try:
            function(*args, **kwargs)
        except BaseException as error:  # re-raised in the caller's thread, after the events
            failure.append(error)
        finally:
            events.put(_DONE)

    worker = threading.Thread(target=context.run, args=(run,), daemon=True)
    worker.start()
    yield from iter(events.get, _DONE)
    worker.join()
    if failure:
        raise failure[0]


async def astream(function: Callable[..., Any], *args: Any, **kwargs: Any) -> AsyncIterator[Event]:
    """Run an escalating function (async, or sync in a thread) and yield its events."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Any] = asyncio.Queue()

    def put(event: Event) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    async def run() -> None:
        token = _sink.set(put)
        try:
            if inspect.iscoroutinefunction(function):
                await function(*args, **kwargs)
            else:
                await asyncio.to_thread(function, *args, **kwargs)
        finally:
            _sink.reset(token)
            loop.call_soon_threadsafe(events.put_nowait, _DONE)

    task = asyncio.create_task(run())
    try:
        while (event := await events.get()) is not _DONE:
            yield event
    finally:
        if not task.done():
            # The consumer stopped listening (broke out, or the generator was closed):
            # stop the call too, rather than let it go on paying for requests nobody reads.
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    await task  # re-raises the call's error, after its events
