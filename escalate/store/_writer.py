"""The background writer: receipts go into a bounded queue and one daemon thread writes
them in batches, so a call never waits for the database.

Nothing is lost silently: every receipt handed over is, in the end, ``written``,
``failed`` (the store raised while writing its batch: logged, counted) or ``dropped``
(the queue was full because the store is slow or down: counted at once, logged). A
write that fails is tried once more after a short pause, then counted as failed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass

from escalate._receipt import Receipt
from escalate.store._store import Store

__all__ = ["StoreStats", "Writer"]

logger = logging.getLogger("escalate.store")

_STOP = object()


@dataclass(frozen=True)
class StoreStats:
    """What became of the receipts handed to a store's writer."""

    url: str
    enqueued: int
    written: int
    failed: int
    dropped: int
    batches: int
    errors: int
    last_error: str | None

    @property
    def pending(self) -> int:
        """Handed over, not yet written, failed or dropped."""
        return self.enqueued - self.written - self.failed - self.dropped

    @property
    def lost(self) -> int:
        """Receipts the store could not write: failed plus dropped."""
        return self.failed + self.dropped


class Writer:
    """One store's queue and its writing thread (started on the first receipt)."""

    def __init__(
        self,
        store: Store,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        linger_s: float = 0.05,
        retry_pause_s: float = 0.2,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.retry_pause_s = retry_pause_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._enqueued = self._written = self._failed = self._dropped = 0
        self._batches = self._errors = 0
        self._last_error: str | None = None
        self._last_drop_log = 0.0

    # --- the caller's side: quick, never raises --------------------------------------------

    def put(self, receipt: Receipt) -> None:
        """Hand a receipt over; a full queue (or a closed writer) drops it and counts it."""
        with self._lock:
            self._enqueued += 1
            if self._thread is None and not self._closed:
                self._start()
        if self._closed:
            self._drop("the store is closed")
            return
        try:
            self._queue.put_nowait(receipt)
        except queue.Full:
            self._drop(f"its queue is full ({self._queue.maxsize} receipts waiting)")

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"escalate-store-writer {self.store!r}", daemon=True
        )
        self._thread.start()

    def _drop(self, why: str) -> None:
        with self._lock:
            self._dropped += 1
            self._settled.notify_all()
            now = time.monotonic()
            if now - self._last_drop_log < 5:
                return
            self._last_drop_log = now
            dropped = self._dropped
        logger.warning(
            "escalate: %r could not take a receipt: %s; %d dropped so far (see stats())",
            self.store,
            why,
            dropped,
        )

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(
                url=repr(self.store),
                enqueued=self._enqueued,
                written=self._written,
                failed=self._failed,
                dropped=self._dropped,
                batches=self._batches,
                errors=self._errors,
                last_error=self._last_error,
            )

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every receipt handed over so far is written, failed or dropped;
        False if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._enqueued
            while self._written + self._failed + self._dropped < target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._settled.wait(0.1 if left is None else min(left, 0.1))
        return True

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush, stop the thread and close the store; later receipts are dropped."""
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=1)
            thread.join(timeout=5)
        self.store.close()
        return flushed

    # --- the thread's side ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = self._gather(batch)
            self._write([r for r in batch if isinstance(r, Receipt)])
            if stop:
                return

    def _gather(self, batch: list[object]) -> bool:
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _write(self, batch: list[Receipt]) -> None:
        error: BaseException | None = None
        for attempt in range(2):
            try:
                self.store.write(batch)
            except Exception as caught:
                error = caught
                if attempt == 0:
                    time.sleep(self.retry_pause_s)
                continue
            with self._lock:
                self._written += len(batch)
                self._batches += 1
                self._settled.notify_all()
            return
        reason = f"{type(error).__name__}: {error}"
        # Logged before it is counted: once flush() returns, the record is out too.
        logger.error(
            "escalate: %r could not write %d receipt(s) (%d failed before these): %s",
            self.store,
            len(batch),
            self._failed,
            reason,
        )
        with self._lock:
            self._failed += len(batch)
            self._errors += 1
            self._last_error = reason
            self._settled.notify_all()
