"""The two faces that perform the engine's steps: one sync, one async.

They are the only code that does I/O for a call: they send the messages a step names to
its deployment and sleep when the engine asks for a backoff. Every decision is the
engine's (see ``_engine.walk``); these stay a dozen lines each, so sync and async cannot
drift apart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from escalate._engine import Call, Messages, Plan, walk
from escalate._receipt import Receipt

__all__ = ["run_async", "run_sync"]


def run_sync(plan: Plan, messages: Messages, *, start: int = 0) -> tuple[Any, Receipt]:
    """Drive the walk with blocking calls."""
    steps = walk(plan, messages, start=start)
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if isinstance(step, Call):
            reply = step.deployment.call_sync(step.messages, step.response_model)
        else:
            time.sleep(step.seconds)
            reply = None


async def run_async(plan: Plan, messages: Messages, *, start: int = 0) -> tuple[Any, Receipt]:
    """Drive the walk with awaited calls."""
    steps = walk(plan, messages, start=start)
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if isinstance(step, Call):
            reply = await step.deployment.call_async(step.messages, step.response_model)
        else:
            await asyncio.sleep(step.seconds)
            reply = None
