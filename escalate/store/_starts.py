"""The adaptive starts in a report: per task class that started adaptively, the share of
its calls started on each tier and its cheapest tier's pass rate with a 90% credible
interval, counted by the same rules the adaptive start learns by (``escalate._adaptive``)
but over the report's window, undecayed."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import ColumnElement, select

import escalate.store._schema as s
from escalate._adaptive import EXPLORES, seen_in
from escalate._beta import beta_interval
from escalate._receipt import Receipt
from escalate.store._figures import AdaptiveClass
from escalate.store._query import Loaded
from escalate.store._store import Store

__all__ = ["adaptive_classes", "cheapest_tier"]


def cheapest_tier(calls: list[Any], data: Loaded) -> str | None:
    """The tier escalated from and never to; else the first tier of the longest path."""
    ups = [
        (m.from_tier, m.to_tier) for c in calls for m in data.moves.get(c.id, ()) if m.kind == "up"
    ]
    targets = {b for _, b in ups}
    sources = Counter(a for a, _ in ups if a not in targets)
    if sources:
        return str(sources.most_common(1)[0][0])
    longest = max((c.path.split(">") for c in calls if c.path != "(none)"), key=len, default=None)
    return str(longest[0]) if longest else None


def _latest(
    store: Store, where: ColumnElement[bool], function: str, task: str | None
) -> Receipt | None:
    """The class's latest adaptive receipt in the window (one query): its route names the
    cheapest tier and says what the estimate last decided."""
    c = s.calls.c
    query = (
        select(c.receipt)
        .where(where, c.function == function, c.route_source == "adaptive")
        .where(c.task.is_(None) if task is None else c.task == task)
        .order_by(c.started_at.desc(), c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as connection:
        data = connection.execute(query).scalar()
    return None if data is None else Receipt.from_json(data)


def adaptive_classes(data: Loaded, store: Store, where: ColumnElement[bool]) -> list[AdaptiveClass]:
    by_class: dict[tuple[str, str | None], list[Any]] = defaultdict(list)
    for call in data.calls:
        by_class[(call.function, call.task)].append(call)
    found = []
    for (function, task), calls in by_class.items():
        adaptive = [c for c in calls if c.route_source == "adaptive"]
        if not adaptive:
            continue
        latest = _latest(store, where, function, task)
        estimate = None if latest is None else latest.route.adaptive
        cheap = estimate.tier if estimate is not None else cheapest_tier(calls, data)
        passes = fails = 0
        for c in calls:
            for seen in seen_in(
                c.start_tier,
                c.outcome,
                c.answered_by,
                data.attempts.get(c.id, []),
                data.moves.get(c.id, []),
            ):
                if seen.tier == cheap and seen.passed is not None:
                    passes += seen.passed
                    fails += not seen.passed
        low, high = beta_interval(1.0 + passes, 1.0 + fails) if passes + fails else (None, None)
        found.append(
            AdaptiveClass(
                function=function,
                task=task,
                calls=len(calls),
                adaptive_calls=len(adaptive),
                starts=dict(Counter(c.start_tier for c in calls).most_common()),
                explored=sum(EXPLORES in (c.route_reason or "") for c in adaptive),
                cheap_tier=cheap,
                passes=passes,
                fails=fails,
                pass_rate=(1 + passes) / (2 + passes + fails) if passes + fails else None,
                low=low,
                high=high,
                latest=None if latest is None else latest.route.reason,
            )
        )
    return sorted(found, key=lambda a: (-a.calls, a.function, a.task or ""))
