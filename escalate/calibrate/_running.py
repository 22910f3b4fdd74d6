"""One call under calibration: the seam between calibration and the call path.

Calibration runs an escalating function's plan, not the function: with a plan changed
(one tier alone, the calibrated gate's threshold disabled or moved). Everything that
reaches the call path for that is here and nowhere else in the package, so the rest of
calibration knows nothing of how a call is walked.

What the rest of the package relies on: :func:`_path` (the function's plan, with any
testing override in force, and its :class:`~escalate._call.CallPath`), :func:`_settle_sync`
/ :func:`_settle_async` (an item run on that path with another plan, as an
:data:`_Outcome`) and :func:`_is_async`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from escalate._call import CallPath, path_of
from escalate._plan import Plan
from escalate._receipt import Receipt
from escalate.calibrate._items import Item

__all__: list[str] = []  # nothing public: only this package's own modules import from here


def _path(fn: Callable[..., Any]) -> tuple[Plan, CallPath]:
    path = path_of(fn)
    # No audits under calibration: the sweep measures the gates, and pays for no second
    # opinion on its own items.
    return dataclasses.replace(path.current_plan(), audit=None), path


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


_Outcome = tuple[Any, Receipt, bool]
"""(value, receipt, whether an answer came back)."""


def _settle_sync(path: CallPath, plan: Plan, item: Item) -> _Outcome:
    settled = path.with_plan(plan).settle_sync(tuple(item.args), dict(item.kwargs))
    return settled.value, settled.receipt, settled.answered


async def _settle_async(path: CallPath, plan: Plan, item: Item) -> _Outcome:
    settled = await path.with_plan(plan).settle_async(tuple(item.args), dict(item.kwargs))
    return settled.value, settled.receipt, settled.answered
