"""Adaptive starts, the state: one :class:`Learner` per escalating function with
``adaptive=``, holding the decayed evidence of each task class (``_adaptive`` computes
what it means).

It learns from every finished receipt of its function (the call path hands each over as
it ends, both faces, alongside the sinks), and, when a receipt store is configured, from
the store's most recent receipts of the class, read once at the class's first use by a
background thread (one bounded query): a slow or broken store never blocks or fails a
call, and until the seed is read calls start as if nothing were known. Seeded receipts
count as older than every receipt seen live, and one seen both ways counts once.

Threads and asyncio tasks share a learner through one ``threading.Lock``, held only to
copy or add numbers: never across I/O or an await.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from escalate._adaptive import AdaptiveStart, Evidence, TierSeen, decide, learn, seen_in
from escalate._receipt import Receipt, Route

__all__ = ["Learner", "task_class"]

logger = logging.getLogger("escalate")


def task_class(function: str, task: str | None) -> str:
    """The name a class's estimate is kept under: the function, and its task if any."""
    return function if task is None else f"{function}/{task}"


def _seen(receipt: Receipt) -> tuple[TierSeen, ...]:
    return seen_in(
        receipt.route.start_tier,
        receipt.outcome,
        receipt.answered_by,
        receipt.attempts,
        receipt.moves,
    )


@dataclass
class _Class:
    evidence: Evidence = field(default_factory=dict)
    seeding: bool = False
    seeded: threading.Event = field(default_factory=threading.Event)
    live_ids: set[str] = field(default_factory=set)
    """Receipts learned live while the seed is being read: the seed skips them."""


class Learner:
    """The adaptive state of one escalating function, per task class."""

    def __init__(self, config: AdaptiveStart, function: str) -> None:
        self.config = config
        self.function = function
        self._draw = config.random or random.random
        self._lock = threading.Lock()
        self._classes: dict[str | None, _Class] = {}

    def __repr__(self) -> str:
        return f"Learner({self.function!r}, {len(self._classes)} task class(es))"

    def _class(self, task: str | None) -> tuple[_Class, bool]:
        """The class's state (made on first use), and whether its seed must be read now.
        Called under the lock."""
        state = self._classes.get(task)
        if state is not None:
            return state, False
        state = self._classes[task] = _Class()
        if self.config.seed_from_store:
            state.seeding = True
            return state, True
        state.seeded.set()
        return state, False

    def start(self, tiers: Sequence[str], task: str | None) -> tuple[int, Route]:
        """Where a call of class ``task`` starts over ``tiers`` (names, cheapest first),
        and the receipt's route saying why."""
        with self._lock:
            state, seed = self._class(task)
            evidence = {t: dataclasses.replace(e) for t, e in state.evidence.items()}
        if seed:
            self._read_seed(task, state)
        name = task_class(self.function, task)
        decision = decide(self.config, name, tiers, evidence, self._draw)
        route = Route(
            start_tier=tiers[decision.start],
            source="adaptive",
            reason=decision.reason,
            adaptive=decision.adaptive,
        )
        return decision.start, route

    def observe(self, receipt: Receipt) -> None:
        """Learn from one finished receipt of this function."""
        seen = _seen(receipt)
        with self._lock:
            state, seed = self._class(receipt.task)
            if state.seeding:
                state.live_ids.add(receipt.id)
            learn(state.evidence, seen, self.config.decay)
        if seed:
            self._read_seed(receipt.task, state)

    def wait_seeded(self, task: str | None, timeout: float | None = None) -> bool:
        """Whether the class's seed has been read (waiting up to ``timeout``); True
        when there is none to read."""
        with self._lock:
            state = self._classes.get(task)
        return True if state is None else state.seeded.wait(timeout)

    def evidence(self, task: str | None) -> Evidence:
        """A copy of the class's evidence now (for tests and tools)."""
        with self._lock:
            state = self._classes.get(task)
            found = {} if state is None else state.evidence
            return {t: dataclasses.replace(e) for t, e in found.items()}

    # --- the seed, off the caller's thread ----------------------------------------------------

    def _read_seed(self, task: str | None, state: _Class) -> None:
        import escalate._storing as storing

        if storing.store_for(self.function) is None:
            self._merge(state, [])
            return
        thread = threading.Thread(
            target=self._seed, args=(task, state), name="escalate-adaptive-seed", daemon=True
        )
        thread.start()

    def _seed(self, task: str | None, state: _Class) -> None:
        import escalate._storing as storing

        try:
            receipts = storing.recent_receipts(self.function, task, self.config.seed_limit)
        except Exception:
            logger.warning(
                "escalate: adaptive start of %s could not read its seed from the store; "
                "it learns from this process's calls only",
                task_class(self.function, task),
                exc_info=True,
            )
            receipts = []
        self._merge(state, [(r.id, _seen(r)) for r in receipts])

    def _merge(self, state: _Class, seed: list[tuple[str, tuple[TierSeen, ...]]]) -> None:
        decay = self.config.decay
        with self._lock:
            older: Evidence = {}
            for receipt_id, seen in seed:  # oldest first
                if receipt_id not in state.live_ids:
                    learn(older, seen, decay)
            for tier, evidence in older.items():
                newer = state.evidence.get(tier)
                state.evidence[tier] = (
                    evidence if newer is None else evidence.merged_under(newer, decay)
                )
            state.seeding = False
            state.live_ids.clear()
            state.seeded.set()
