"""Where receipts go when a store is configured: ``escalate.configure(store=...)``, the
``ESCALATE_STORE`` environment variable, or per function.

This module is imported by ``import escalate`` and imports no database code: the store
package (SQLAlchemy) is loaded only once a store is configured. Stores are off unless
configured, and under pytest the environment variable is ignored (the testing kit's
plugin says so): a test writes to a store only when it configures one itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escalate._receipt import Receipt
from escalate._sinks import add_sink, remove_sink
from escalate.exceptions import ConfigurationError

if TYPE_CHECKING:
    from escalate.store._store import Store
    from escalate.store._writer import StoreStats, Writer

__all__ = [
    "ENV_VAR",
    "configure",
    "feedback",
    "flush",
    "ignore_environment",
    "recent_receipts",
    "stats",
    "store_for",
]

ENV_VAR = "ESCALATE_STORE"
logger = logging.getLogger("escalate.store")

_lock = threading.RLock()
_default: Writer | None = None
_by_function: dict[str, Writer] = {}
_writers: dict[str, Writer] = {}
_env_checked = False
_env_ignored = False


def ignore_environment(reason: str) -> None:
    """Never read ``ESCALATE_STORE`` in this process (the pytest plugin calls this)."""
    global _env_ignored
    _env_ignored = True
    logger.debug("escalate: %s is ignored: %s", ENV_VAR, reason)


def _writer_for(url: str | Path, **options: Any) -> Writer:
    from escalate.store._store import Store, normalise_url
    from escalate.store._writer import Writer

    key = normalise_url(url)
    writer = _writers.get(key)
    if writer is None:
        writer = _writers[key] = Writer(Store(key), **options)
    return writer


def _function_name(function: Callable[..., Any] | str) -> str:
    if isinstance(function, str):
        return function
    from escalate._call import path_of

    return path_of(function).plan.function


def configure(
    *,
    store: str | Path | None,
    functions: Iterable[Callable[..., Any] | str] | None = None,
    max_queue: int = 10_000,
    batch_size: int = 500,
) -> None:
    """Write every receipt from now on to ``store`` (``"sqlite:///receipts.db"``, a file
    path, or ``"postgresql://user@host/db"``); ``store=None`` turns it off, after
    flushing what was handed over.

    ``functions``: only these escalating functions (or ``module.qualname`` strings) write
    to this store; the others keep the default store (or none).

    The store is opened, created and migrated by its background writer on the first
    receipt, never on the caller's thread: a bad URL fails here, an unreachable database
    is logged and counted (see :func:`stats`).
    """
    global _default
    with _lock:
        _check_env()
        writer = (
            None
            if store is None
            else _writer_for(store, max_queue=max_queue, batch_size=batch_size)
        )
        if functions is None:
            old, _default = _default, writer
            _retire(old)
        else:
            for function in functions:
                name = _function_name(function)
                old = _by_function.pop(name, None)
                if writer is not None:
                    _by_function[name] = writer
                _retire(old)
        active = _default is not None or bool(_by_function)
        (add_sink if active else remove_sink)(_sink)


def _retire(writer: Writer | None) -> None:
    """Close a writer nothing routes to any more."""
    if writer is None or writer is _default or writer in _by_function.values():
        return
    writer.close()
    _writers.pop(writer.store.url, None)


def _sink(receipt: Receipt) -> None:
    writer = _by_function.get(receipt.function, _default)
    if writer is not None:
        writer.put(receipt)


def store_for(function: str) -> Store | None:
    """The store ``function``'s receipts go to, or None when none is configured."""
    with _lock:
        _check_env()
        writer = _by_function.get(function, _default)
    return None if writer is None else writer.store


def recent_receipts(function: str, task: str | None, limit: int) -> list[Receipt]:
    """The store's most recent ``limit`` receipts of ``function`` and ``task``, oldest
    first (one query; I/O: never call it under a lock or on a call's path)."""
    store = store_for(function)
    return [] if store is None else store.recent(function, task, limit)


def _check_env() -> None:
    global _env_checked, _default
    if _env_checked:
        return
    _env_checked = True
    url = os.environ.get(ENV_VAR)
    if not url or _env_ignored or "PYTEST_CURRENT_TEST" in os.environ:
        return
    try:
        _default = _writer_for(url)
    except ConfigurationError:
        logger.error("escalate: %s=%r is not a store URL; receipts are not stored", ENV_VAR, url)
        return
    add_sink(_sink)


def from_environment() -> None:
    """Called by ``import escalate``: configure the store named by ``ESCALATE_STORE``."""
    if os.environ.get(ENV_VAR):
        with _lock:
            _check_env()


def _active() -> list[Writer]:
    with _lock:
        return list(_writers.values())


def flush(timeout: float | None = 30.0) -> bool:
    """Wait until every receipt handed to a store so far is written (or counted as
    failed or dropped); False if ``timeout`` passed first."""
    return all([writer.flush(timeout) for writer in _active()])


def stats() -> list[StoreStats]:
    """Per configured store: receipts enqueued, written, failed, dropped, pending."""
    return [writer.stats() for writer in _active()]


def feedback(
    result_or_id: object,
    *,
    good: bool,
    reason: str | None = None,
    correction: str | None = None,
) -> None:
    """Record a user's verdict on a call's answer (a thumbs down, a correction): by its
    result (which carries its receipt) or the receipt's id. It goes to the store the
    receipt went to, at once (not queued); ConfigurationError when no store is set."""
    if isinstance(result_or_id, Receipt):
        receipt_id, function = result_or_id.id, result_or_id.function
    elif isinstance(result_or_id, str):
        receipt_id, function = result_or_id, ""
    else:
        from escalate._results import receipt_of

        receipt = receipt_of(result_or_id)
        receipt_id, function = receipt.id, receipt.function
    with _lock:
        writer = _by_function.get(function, _default)
    if writer is None:
        raise ConfigurationError(
            "escalate.feedback() needs a store: escalate.configure(store='sqlite:///receipts.db')"
        )
    writer.store.add_feedback(receipt_id, good=bool(good), reason=reason, correction=correction)


@atexit.register
def _flush_at_exit() -> None:
    for writer in _active():
        if not writer.close(timeout=10):
            left = writer.stats()
            logger.error(
                "escalate: %r exited with %d receipt(s) unwritten (%d failed, %d dropped)",
                writer.store,
                left.pending,
                left.failed,
                left.dropped,
            )
