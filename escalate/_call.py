"""The one call path: how every call of an escalating function runs.

Prompt to messages, the routing decision, the walk through a face, the caller's value
with its receipt attached, the events. The decorator, calibration, the chat runner and the
conversation ladder run calls only through a :class:`CallPath`; none of them knows how a
call is walked, and the engine knows none of them.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import escalate._background as _background
from escalate._auditing import Deferred
from escalate._faces import drive_async, drive_sync, run_async, run_sync
from escalate._plan import CallInfo, Messages, Plan
from escalate._receipt import Receipt
from escalate._results import attach, receipt_of, remember
from escalate._routing import resolve
from escalate._sinks import deliver
from escalate._switches import ALL_FUNCTIONS, tier_overrides
from escalate._tracing import CallTrace
from escalate._tracing import begin as begin_trace
from escalate.events import Hook, listener
from escalate.exceptions import EscalationFailed

__all__ = ["CallPath", "Settled", "path_of", "register", "to_messages"]

logger = logging.getLogger("escalate")


@dataclass(frozen=True)
class Settled:
    """A call that ran to its end without raising for a missing answer (calibration)."""

    value: Any
    receipt: Receipt
    answered: bool


@dataclass(frozen=True)
class CallPath:
    """Everything one escalating function needs at call time."""

    plan: Plan
    prompt: Callable[..., Any]
    """The decorated prompt function (sync or async). Calls may pass ``via``: the same
    function as the caller reached it (a bound method, say)."""
    hooks: tuple[Hook, ...] = ()

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.prompt)

    def current_plan(self) -> Plan:
        """The plan with any tier override from ``escalate.testing`` in force."""
        overrides = tier_overrides.get()
        if not overrides:
            return self.plan
        tiers = overrides.get(self.prompt, overrides.get(ALL_FUNCTIONS))
        return self.plan if tiers is None else dataclasses.replace(self.plan, tiers=tiers)

    def with_plan(self, plan: Plan) -> CallPath:
        """The same function walked by another plan (calibration swaps gates and tiers).
        Its calls neither start adaptively nor teach the function's adaptive start: a
        plan with other gates or tiers says nothing about the function's own pass rates."""
        return dataclasses.replace(self, plan=dataclasses.replace(plan, adaptive=None))

    def _begin(
        self, prompt: object, args: Any, kwargs: Any, later: list[Deferred]
    ) -> tuple[Plan, Messages, CallInfo]:
        plan = self.current_plan()
        messages = to_messages(prompt, plan.function)
        call = resolve(plan, tuple(args), kwargs, listener(self.hooks))
        if plan.audit is not None and plan.audit.mode == "background":
            call = dataclasses.replace(call, on_audit=later.append)
        trace = begin_trace(plan.function)  # None unless a tracer or meter provider is set
        if trace is not None:
            call = dataclasses.replace(call, trace=trace, on_event=trace.listen(call.on_event))
        return plan, messages, call

    def walk_sync(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], via: Callable[..., Any] | None = None
    ) -> tuple[Any, Receipt]:
        """Run the sync function's call: the value as the engine returned it, and the receipt."""
        later: list[Deferred] = []
        plan, messages, call = self._begin(
            (via or self.prompt)(*args, **kwargs), args, kwargs, later
        )
        trace = call.trace
        try:
            if trace is None:
                value, receipt = run_sync(plan, messages, call)
            else:
                with trace.current():  # the call span is the parent of every request's
                    value, receipt = run_sync(plan, messages, call)
        except BaseException as error:
            _ended(plan, _receipt_of(error), trace, error)
            raise
        _ended(plan, receipt, trace)
        for deferred in later:  # after the receipt went out: the amended one replaces it
            _background.runner().submit_sync(_audit_sync(deferred, self.hooks))
        return value, receipt

    async def walk_async(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], via: Callable[..., Any] | None = None
    ) -> tuple[Any, Receipt]:
        """The async twin of :meth:`walk_sync`."""
        later: list[Deferred] = []
        plan, messages, call = self._begin(
            await (via or self.prompt)(*args, **kwargs), args, kwargs, later
        )
        trace = call.trace
        try:
            if trace is None:
                value, receipt = await run_async(plan, messages, call)
            else:
                with trace.current():
                    value, receipt = await run_async(plan, messages, call)
        except BaseException as error:
            _ended(plan, _receipt_of(error), trace, error)
            raise
        _ended(plan, receipt, trace)
        for deferred in later:  # on escalate's own loop, unless a given client binds it here
            job = _audit_async(deferred, self.hooks)
            if deferred.loop_bound:
                _background.runner().submit_here(job)
            else:
                _background.runner().submit_async(job)
        return value, receipt

    def call_sync(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], via: Callable[..., Any] | None = None
    ) -> Any:
        """Call the sync function: its value, carrying its receipt."""
        return _finish(*self.walk_sync(args, kwargs, via))

    async def call_async(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], via: Callable[..., Any] | None = None
    ) -> Any:
        """Call the async function: its value, carrying its receipt."""
        return _finish(*await self.walk_async(args, kwargs, via))

    def settle_sync(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], via: Callable[..., Any] | None = None
    ) -> Settled:
        """Like :meth:`call_sync`, but a call that found no answer settles instead of
        raising :class:`~escalate.EscalationFailed` (other errors pass through)."""
        try:
            value, receipt = self.walk_sync(args, kwargs, via)
        except EscalationFailed as failure:
            return Settled(None, failure.receipt, answered=False)
        return Settled(_finish(value, receipt), receipt, answered=True)

    async def settle_async(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], via: Callable[..., Any] | None = None
    ) -> Settled:
        """The async twin of :meth:`settle_sync`."""
        try:
            value, receipt = await self.walk_async(args, kwargs, via)
        except EscalationFailed as failure:
            return Settled(None, failure.receipt, answered=False)
        return Settled(_finish(value, receipt), receipt, answered=True)


def _receipt_of(error: BaseException) -> Receipt | None:
    # The engine puts the receipt on whatever it raises; an error before the walk (the
    # route function's, say) has none, and there is nothing to deliver.
    try:
        return receipt_of(error)
    except LookupError:
        return None


def _ended(
    plan: Plan,
    receipt: Receipt | None,
    trace: CallTrace | None,
    error: BaseException | None = None,
) -> None:
    """A call's end: its receipt to the adaptive start and the sinks, its spans ended
    with the receipt's facts."""
    if receipt is not None:
        if plan.adaptive is not None:
            try:
                plan.adaptive.observe(receipt)
            except Exception:  # a bug here must not fail a call that has ended
                logger.warning("escalate: the adaptive start could not learn", exc_info=True)
        deliver(receipt)
    if trace is not None:
        trace.finish(receipt, error)


def _audit_sync(deferred: Deferred, hooks: Sequence[Hook]) -> Callable[[], None]:
    """A background audit of a sync function, for a worker thread: the audit's requests,
    then the amended receipt to the sinks (the store replaces the row by its id)."""

    def audit() -> None:
        deliver(drive_sync(deferred.steps(listener(hooks, streams=False))))

    return audit


def _audit_async(deferred: Deferred, hooks: Sequence[Hook]) -> Callable[[], Any]:
    """A background audit of an async function, for the worker's own event loop."""

    async def audit() -> None:
        deliver(await drive_async(deferred.steps(listener(hooks, streams=False))))

    return audit


def _finish(value: Any, receipt: Receipt) -> Any:
    remember(receipt)
    return attach(value, receipt)


_paths: weakref.WeakKeyDictionary[Callable[..., Any], CallPath] = weakref.WeakKeyDictionary()


def register(path: CallPath) -> None:
    """Remember the call path of a decorated prompt function (see :func:`path_of`)."""
    _paths[path.prompt] = path


def path_of(function: Callable[..., Any]) -> CallPath:
    """The call path of an @escalating function; TypeError for any other callable."""
    original = getattr(function, "__wrapped__", function)
    try:
        return _paths[original]
    except (KeyError, TypeError):
        raise TypeError(f"{function!r} is not an @escalating function") from None


_ROLES = frozenset({"system", "user", "assistant", "tool"})


def to_messages(prompt: object, function: str) -> Messages:
    """The prompt function's return value as chat messages, or a TypeError naming what is
    wrong with it."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, Sequence) or not prompt:
        raise TypeError(
            f"the prompt function {function} returned {type(prompt).__name__}: return a str "
            "(one user message) or a non-empty list of {'role': 'system'|'user'|'assistant', "
            "'content': ...} messages"
        )
    for index, message in enumerate(prompt):
        _check_message(message, index, function)
    return [dict(m) for m in prompt]


def _check_message(message: object, index: int, function: str) -> None:
    where = f"the prompt function {function} returned a message list whose item {index}"
    if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
        raise TypeError(
            f"{where} is {message!r}: each message is a dict with 'role' "
            "('system', 'user', 'assistant' or 'tool') and 'content'"
        )
    content = message.get("content")
    if content is None and not message.get("tool_calls"):
        raise TypeError(f"{where} has no content: give 'content' a str or a list of parts")
    if content is not None and not isinstance(content, (str, list)):
        raise TypeError(
            f"{where} has content of type {type(content).__name__} ({content!r}): "
            "content is a str or a list of content parts"
        )
