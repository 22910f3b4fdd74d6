"""The query layer: the rows a report reads, for a time window and filters, through one
SQLAlchemy Core query per table, the same for SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, select, true
from sqlalchemy.engine import Row

import escalate.store._schema as s
from escalate.store._store import Store

__all__ = ["Filters", "Loaded", "load"]


@dataclass(frozen=True)
class Filters:
    """Which calls a report covers: ``since <= started_at < until``, and the function
    (``module.qualname``, or its last part), task class and tags given."""

    since: datetime | None = None
    until: datetime | None = None
    function: str | None = None
    task: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def last(cls, window: timedelta, *, now: datetime | None = None, **kwargs: Any) -> Filters:
        end = now or datetime.now(UTC)
        return cls(since=end - window, until=end, **kwargs)

    def describe(self) -> str:
        parts = []
        if self.since or self.until:
            since = self.since.isoformat(timespec="seconds") if self.since else "the start"
            until = self.until.isoformat(timespec="seconds") if self.until else "now"
            parts.append(f"from {since} to {until}")
        for name in ("function", "task"):
            if getattr(self, name):
                parts.append(f"{name} {getattr(self, name)}")
        parts += [f"tag {k}={v}" for k, v in self.tags.items()]
        return ", ".join(parts) or "all calls"

    def where(self) -> ColumnElement[bool]:
        c = s.calls.c
        clauses: list[ColumnElement[bool]] = []
        if self.since is not None:
            clauses.append(c.started_at >= self.since)
        if self.until is not None:
            clauses.append(c.started_at < self.until)
        if self.function:
            name = self.function
            clauses.append((c.function == name) | c.function.endswith("." + name))
        if self.task:
            clauses.append(c.task == self.task)
        for key, value in self.tags.items():
            t = s.tags.c
            clauses.append(exists().where(and_(t.call_id == c.id, t.key == key, t.value == value)))
        return and_(true(), *clauses)


@dataclass
class Loaded:
    """The rows of the calls a report covers, with their attempts, moves, scores and
    feedback keyed by call id."""

    calls: list[Row[Any]]
    attempts: dict[str, list[Row[Any]]]
    moves: dict[str, list[Row[Any]]]
    scores: dict[str, list[Row[Any]]]
    feedback: dict[str, list[Row[Any]]]
    regenerated: dict[str, str]
    """id of a regenerated call -> id of the call that regenerated it."""
    audits: dict[str, Row[Any]] = field(default_factory=dict)
    """id of an audited call -> its audit's row."""


_CALL_COLUMNS = [c for c in s.calls.c if c.name != "receipt"]


def _grouped(rows: Any, key: str) -> dict[str, list[Row[Any]]]:
    out: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        out[getattr(row, key)].append(row)
    return dict(out)


def _children(table: Any, where: ColumnElement[bool], order: Any) -> Select[Any]:
    return (
        select(table)
        .join(s.calls, s.calls.c.id == table.c.call_id)
        .where(where)
        .order_by(table.c.call_id, order)
    )


def load(store: Store, filters: Filters) -> Loaded:
    where = filters.where()
    with store.engine.connect() as connection:
        calls = list(
            connection.execute(
                select(*_CALL_COLUMNS).where(where).order_by(s.calls.c.started_at, s.calls.c.id)
            )
        )
        attempts = _grouped(
            connection.execute(_children(s.attempts, where, s.attempts.c.seq)), "call_id"
        )
        moves = _grouped(connection.execute(_children(s.moves, where, s.moves.c.seq)), "call_id")
        scores = _grouped(
            connection.execute(_children(s.scores, where, s.scores.c.attempt_seq)), "call_id"
        )
        feedback = _grouped(
            connection.execute(_children(s.feedback, where, s.feedback.c.id)), "call_id"
        )
        # Regenerations of the covered calls, wherever (whenever) the regeneration was.
        regen = connection.execute(
            select(s.calls.c.regenerates, s.calls.c.id).where(
                s.calls.c.regenerates.in_(select(s.calls.c.id).where(where))
            )
        )
        regenerated = {row.regenerates: row.id for row in regen}
        audits = {
            row.call_id: row
            for row in connection.execute(_children(s.audits, where, s.audits.c.call_id))
        }
    return Loaded(calls, attempts, moves, scores, feedback, regenerated, audits)
