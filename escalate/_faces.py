"""The two faces that perform the engine's steps: one sync, one async.

They are the only code that does I/O for a call: they send the messages a step names to
its deployment, run the gates a step names, and sleep when the engine asks for a backoff.
Whatever stops a step (a cancellation, Ctrl-C, a gate's bug, a blocked provider) is
thrown into the engine, which puts it on the receipt and re-raises it unchanged. Every
decision is the engine's (see ``_engine.walk``), so sync and async cannot drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Generator
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from escalate._engine import walk
from escalate._plan import CallInfo, Check, Messages, Plan, Sample, Sleep, Step, Verdict
from escalate._receipt import Receipt
from escalate.gates import Rejected, gate_name
from escalate.gates._protocol import finite_score

if TYPE_CHECKING:
    from escalate._tracing import CallTrace

__all__ = ["drive_async", "drive_sync", "run_async", "run_sync"]

T = TypeVar("T")


def run_sync(plan: Plan, messages: Messages, call: CallInfo) -> tuple[Any, Receipt]:
    """Drive the walk with blocking calls."""
    return drive_sync(walk(plan, messages, call), call.trace)


async def run_async(plan: Plan, messages: Messages, call: CallInfo) -> tuple[Any, Receipt]:
    """Drive the walk with awaited calls."""
    return await drive_async(walk(plan, messages, call), call.trace)


def drive_sync(steps: Generator[Step, Any, T], trace: CallTrace | None = None) -> T:
    """Perform every step of an engine generator (the walk, a background audit) with
    blocking calls; its return value."""
    reply: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            step = steps.send(reply) if thrown is None else steps.throw(thrown)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        thrown = None
        try:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                reply = None
            elif isinstance(step, Check):
                reply = _check_sync(step)
                if trace is not None:
                    trace.verdict(step, reply)
            elif isinstance(step, Sample):
                if trace is None:
                    reply = [step.call.perform_sync() for _ in range(step.count)]
                else:
                    reply = [trace.perform_sync(step.call) for _ in range(step.count)]
            else:
                reply = step.perform_sync() if trace is None else trace.perform_sync(step)
        except BaseException as error:  # handed to the engine, which re-raises it
            thrown = error


async def drive_async(steps: Generator[Step, Any, T], trace: CallTrace | None = None) -> T:
    """The async twin of :func:`drive_sync`."""
    reply: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            step = steps.send(reply) if thrown is None else steps.throw(thrown)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        thrown = None
        try:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                reply = None
            elif isinstance(step, Check):
                reply = await _check_async(step)
                if trace is not None:
                    trace.verdict(step, reply)
            elif isinstance(step, Sample):
                again = step.call
                performs = (
                    again.perform_async() if trace is None else trace.perform_async(again)
                    for _ in range(step.count)
                )
                reply = await asyncio.gather(*performs)
            else:
                reply = await (step.perform_async() if trace is None else trace.perform_async(step))
        except BaseException as error:  # handed to the engine, which re-raises it
            thrown = error


def _check_sync(step: Check) -> Verdict:
    scores: dict[str, float] = {}
    context = replace(step.context, scores=MappingProxyType(scores))
    for gate in step.gates:
        try:
            result = gate(step.answer, context)
            if inspect.isawaitable(result):
                _close(result)
                raise TypeError(
                    f"gate {gate_name(gate)} returned an awaitable in a sync call: make the "
                    "prompt function async, or the gate sync"
                )
            _keep(scores, gate, result)
        except Rejected as rejection:
            return _rejected(scores, gate, rejection)
    return Verdict(scores)


async def _check_async(step: Check) -> Verdict:
    scores: dict[str, float] = {}
    context = replace(step.context, scores=MappingProxyType(scores))
    for gate in step.gates:
        try:
            result = gate(step.answer, context)
            _keep(scores, gate, await result if inspect.isawaitable(result) else result)
        except Rejected as rejection:
            return _rejected(scores, gate, rejection)
    return Verdict(scores)


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)  # a coroutine never awaited warns otherwise
    if callable(close):
        close()


def _keep(scores: dict[str, float], gate: Any, result: object) -> None:
    if result is not None:
        scores[gate_name(gate)] = finite_score(gate, result)


def _rejected(scores: dict[str, float], gate: Any, rejection: Rejected) -> Verdict:
    if rejection.score is not None:
        scores[gate_name(gate)] = float(rejection.score)
    return Verdict(scores, gate_name(gate), rejection)
