"""The two faces that perform the engine's steps: one sync, one async.

They are the only code that does I/O for a call: they send the messages a step names to
its deployment, run the gates a step names, and sleep when the engine asks for a backoff.
Every decision is the engine's (see ``_engine.walk``); these stay a dozen lines each, so
sync and async cannot drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

from escalate._engine import Call, CallInfo, Check, Messages, Plan, Sample, Sleep, Verdict, walk
from escalate._receipt import Receipt
from escalate.gates import Rejected, gate_name

__all__ = ["run_async", "run_sync"]


def run_sync(plan: Plan, messages: Messages, call: CallInfo) -> tuple[Any, Receipt]:
    """Drive the walk with blocking calls."""
    steps = walk(plan, messages, call)
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if isinstance(step, Call):
            reply = step.deployment.call_sync(step.messages, step.response_model, **_extra(step))
        elif isinstance(step, Check):
            reply = _check_sync(step)
        elif isinstance(step, Sample):
            again = step.call
            reply = [
                again.deployment.call_sync(again.messages, again.response_model)
                for _ in range(step.count)
            ]
        else:
            time.sleep(step.seconds)
            reply = None


async def run_async(plan: Plan, messages: Messages, call: CallInfo) -> tuple[Any, Receipt]:
    """Drive the walk with awaited calls."""
    steps = walk(plan, messages, call)
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if isinstance(step, Call):
            reply = await step.deployment.call_async(
                step.messages, step.response_model, **_extra(step)
            )
        elif isinstance(step, Check):
            reply = await _check_async(step)
        elif isinstance(step, Sample):
            again = step.call
            reply = await asyncio.gather(
                *(
                    again.deployment.call_async(again.messages, again.response_model)
                    for _ in range(step.count)
                )
            )
        else:
            assert isinstance(step, Sleep)
            await asyncio.sleep(step.seconds)
            reply = None


def _extra(step: Call) -> dict[str, Any]:
    # Only streaming listeners need on_partial; backends that never stream need not take it.
    return {"on_partial": step.on_partial} if step.on_partial is not None else {}


def _check_sync(step: Check) -> Verdict:
    scores: dict[str, float] = {}
    for gate in step.gates:
        try:
            _keep(scores, gate, gate(step.answer, step.context))
        except Rejected as rejection:
            return _rejected(scores, gate, rejection)
    return Verdict(scores)


async def _check_async(step: Check) -> Verdict:
    scores: dict[str, float] = {}
    for gate in step.gates:
        try:
            result = gate(step.answer, step.context)
            _keep(scores, gate, await result if inspect.isawaitable(result) else result)
        except Rejected as rejection:
            return _rejected(scores, gate, rejection)
    return Verdict(scores)


def _keep(scores: dict[str, float], gate: Any, result: object) -> None:
    if result is None:
        return
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise TypeError(
            f"gate {gate_name(gate)} returned {result!r}: a gate passes by returning None or "
            "a score (a number), and rejects by raising escalate.gates.Rejected(reason)"
        )
    scores[gate_name(gate)] = float(result)


def _rejected(scores: dict[str, float], gate: Any, rejection: Rejected) -> Verdict:
    if rejection.score is not None:
        scores[gate_name(gate)] = float(rejection.score)
    return Verdict(scores, gate_name(gate), rejection)
