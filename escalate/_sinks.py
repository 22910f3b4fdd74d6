"""Where every finished receipt goes: sinks added once per process (the receipt store,
a log of calls), called as each call ends, answered, failed or cancelled alike.

A sink must be quick (a store enqueues and returns) and must not fail the call: one that
raises is logged and the call goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from escalate._receipt import Receipt

__all__ = ["Sink", "add_sink", "deliver", "remove_sink"]

Sink = Callable[[Receipt], None]

logger = logging.getLogger("escalate")
_lock = threading.Lock()
_sinks: tuple[Sink, ...] = ()


def add_sink(sink: Sink) -> None:
    """Hand every receipt from now on to ``sink`` (once, however often it is added)."""
    global _sinks
    if not callable(sink):
        raise TypeError(f"a sink is a callable taking a Receipt, got {sink!r}")
    with _lock:
        if sink not in _sinks:
            _sinks = (*_sinks, sink)


def remove_sink(sink: Sink) -> None:
    """Stop handing receipts to ``sink`` (no error if it was never added)."""
    global _sinks
    with _lock:
        _sinks = tuple(s for s in _sinks if s is not sink)


def deliver(receipt: Receipt) -> None:
    """Give ``receipt`` to every sink; a failing sink is logged, never raised."""
    for sink in _sinks:
        try:
            sink(receipt)
        except Exception:
            logger.warning("escalate: receipt sink %r failed", sink, exc_info=True)
