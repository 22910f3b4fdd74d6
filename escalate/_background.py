"""escalate's background worker: work that runs after a call returned (background audits).

One process-wide :class:`Runner`, started on first use: a few daemon threads for the sync
functions' work, and one daemon thread running an event loop of its own for the async
functions' work. Work on that loop never belongs to the caller's loop, so a caller's
``asyncio.run`` may return and close its loop at once: nothing of escalate is left on it,
and nothing is cancelled or leaked when it closes.

The one exception is work whose requests must be made on the caller's loop (a tier given
a ready async client: its connection pool belongs to that loop): it runs as a task on the
caller's loop (:meth:`Runner.submit_here`). ``await`` :func:`aflush` before that loop
ends; a loop that closes first cancels the task, which is counted as dropped and logged,
and leaves nothing pending behind.

Nothing waits unbounded and nothing is lost silently: at most :data:`MAX_PENDING` pieces of
work wait at once (more are dropped, counted and logged); :func:`flush` waits until the
work handed over so far is done; at process exit the runner flushes (up to
:data:`EXIT_TIMEOUT_S`) before the receipt store's own exit flush, so an amended receipt
produced then is still written.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

__all__ = ["BackgroundStats", "Runner", "aflush", "flush", "runner", "stats"]

logger = logging.getLogger("escalate")

THREADS = 4
"""Worker threads for sync work."""
MAX_PENDING = 1000
EXIT_TIMEOUT_S = 10.0

SyncJob = Callable[[], None]
AsyncJob = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class BackgroundStats:
    """What became of the work handed to the background worker."""

    submitted: int
    done: int
    failed: int
    """Raised (logged): a bug, never a failed audit, which is a verdict of its own."""
    dropped: int
    """Turned away: too much was waiting, or the process was exiting."""

    @property
    def pending(self) -> int:
        return self.submitted - self.done - self.failed - self.dropped


class Runner:
    """The threads and the loop that run background work."""

    def __init__(self, threads: int = THREADS, max_pending: int = MAX_PENDING) -> None:
        self.threads = threads
        self.max_pending = max_pending
        self._settled = threading.Condition()
        self._submitted = self._done = self._failed = self._dropped = 0
        self._queue: queue.SimpleQueue[tuple[SyncJob, contextvars.Context] | None] = (
            queue.SimpleQueue()
        )
        self._workers: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._here: set[asyncio.Task[None]] = set()
        """Tasks on callers' loops (:meth:`submit_here`)."""
        self._closed = False
        self._at_exit = False

    # --- the caller's side ---------------------------------------------------------------

    def submit_sync(self, job: SyncJob) -> bool:
        """Run ``job`` on a worker thread, in the caller's context; False if dropped."""
        if not self._admit():
            return False
        with self._settled:
            if len(self._workers) < self.threads:
                worker = threading.Thread(
                    target=self._work, name="escalate-background", daemon=True
                )
                self._workers.append(worker)
                worker.start()
        self._queue.put((job, contextvars.copy_context()))
        return True

    def submit_async(self, job: AsyncJob) -> bool:
        """Run ``job()`` as a task on the worker's own loop, in the caller's context."""
        if not self._admit():
            return False
        context = contextvars.copy_context()
        self._event_loop().call_soon_threadsafe(self._spawn, job, context)
        return True

    def submit_here(self, job: AsyncJob) -> bool:
        """Run ``job()`` as a task on the running loop (the caller's): for work bound to
        it. Kept referenced until done; cancelled if the loop closes first."""
        if not self._admit():
            return False
        task = asyncio.get_running_loop().create_task(self._guarded(job, here=True))
        with self._settled:
            self._here.add(task)
        task.add_done_callback(self._forget)
        return True

    def _forget(self, task: asyncio.Task[None]) -> None:
        with self._settled:
            self._here.discard(task)

    def _admit(self) -> bool:
        with self._settled:
            self._submitted += 1
            if not self._at_exit:
                self._at_exit = True
                atexit.register(self._exit)  # after the store's: so it runs before it
            if self._closed or self.pending >= self.max_pending:
                self._dropped += 1
                self._settled.notify_all()
                why = "the process is exiting" if self._closed else f"{self.max_pending} wait"
                logger.warning("escalate: background work dropped (%s)", why)
                return False
        return True

    @property
    def pending(self) -> int:
        return self._submitted - self._done - self._failed - self._dropped

    def stats(self) -> BackgroundStats:
        with self._settled:
            return BackgroundStats(self._submitted, self._done, self._failed, self._dropped)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until the work handed over so far is done; False if ``timeout`` passed."""
        if self._mine() and self.pending:
            raise RuntimeError(
                "escalate.audits_flush() would wait for background audits that run on this "
                "very event loop (a tier given a ready async client): "
                "await escalate.audits_aflush() instead"
            )
        return self._flush_others(timeout)

    def _mine(self) -> list[asyncio.Task[None]]:
        """The pending tasks of :meth:`submit_here` on the running loop, if any."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return []
        with self._settled:
            return [task for task in self._here if task.get_loop() is loop]

    async def aflush(self, seconds: float | None = 30.0) -> bool:
        """:meth:`flush` from async code: awaits this loop's own background tasks, and
        waits for the rest off the loop."""
        deadline = None if seconds is None else time.monotonic() + seconds
        mine = self._mine()
        if mine:
            _, pending = await asyncio.wait(mine, timeout=seconds)
            if pending:
                return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return await asyncio.to_thread(self._flush_others, left)

    def _flush_others(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._settled:
            while self.pending > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._settled.wait(0.1 if left is None else min(left, 0.1))
        return True

    # --- the workers' side ---------------------------------------------------------------

    def _ended(self, failed: BaseException | None) -> None:
        if failed is not None:
            logger.error("escalate: background work failed", exc_info=failed)
        with self._settled:
            if failed is None:
                self._done += 1
            else:
                self._failed += 1
            self._settled.notify_all()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job, context = item
            try:
                context.run(job)
            except BaseException as error:  # counted and logged, never raised
                self._ended(error)
            else:
                self._ended(None)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._settled:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="escalate-background-loop", daemon=True
                )
                thread.start()
                self._loop = loop
            return self._loop

    def _spawn(self, job: AsyncJob, context: contextvars.Context) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._guarded(job), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, job: AsyncJob, *, here: bool = False) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            if here:
                logger.warning(
                    "escalate: a background audit was cancelled: its event loop ended first "
                    "(await escalate.audits_aflush() before the loop ends)"
                )
            with self._settled:
                self._dropped += 1
                self._settled.notify_all()
            raise
        except BaseException as error:  # counted and logged, never raised
            self._ended(error)
        else:
            self._ended(None)

    def _exit(self) -> None:
        """At process exit: finish what is pending (for a while), then stop."""
        if not self.flush(EXIT_TIMEOUT_S):
            logger.error(
                "escalate: the process exited with %d background audit(s) unfinished",
                self.pending,
            )
        with self._settled:
            self._closed = True
            loop = self._loop
        for _ in self._workers:
            self._queue.put(None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)


_runner: Runner | None = None
_lock = threading.Lock()


def runner() -> Runner:
    """The process's runner (made on first use)."""
    global _runner
    with _lock:
        if _runner is None:
            _runner = Runner()
        return _runner


def flush(timeout: float | None = 30.0) -> bool:
    """Wait until every background audit started so far has finished and handed its
    amended receipt to the sinks (a store then still writes it: ``escalate.flush()``);
    False if ``timeout`` seconds passed first. Safe from any thread, async code included
    (the audits run on escalate's own threads and loop, not the caller's)."""
    current = _runner
    return True if current is None else current.flush(timeout)


async def aflush(seconds: float | None = 30.0) -> bool:
    """:func:`flush` for async code: awaits the background audits running on this event
    loop (those of a tier given a ready async client, which must finish before the loop
    ends) and waits for the others without blocking the loop."""
    current = _runner
    return True if current is None else await current.aflush(seconds)


def stats() -> BackgroundStats:
    """Background audits submitted, done, failed (a bug), dropped, pending."""
    current = _runner
    return BackgroundStats(0, 0, 0, 0) if current is None else current.stats()
