"""Retention: export receipts (JSON lines, CSV) and delete those older than a date."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import delete, select

import escalate.store._schema as s
from escalate._receipt import Receipt
from escalate.store._rows import path_of
from escalate.store._store import Store

__all__ = ["CSV_COLUMNS", "delete_before", "export_csv", "export_jsonl"]

CSV_COLUMNS = (
    "id",
    "started_at",
    "function",
    "task",
    "outcome",
    "answered_by",
    "path",
    "escalated",
    "attempts",
    "cost_usd",
    "known_cost_usd",
    "input_tokens",
    "output_tokens",
    "latency_s",
    "route_reason",
    "tags",
)


def _open(target: str | Path | IO[str]) -> tuple[IO[str], bool]:
    if isinstance(target, (str, Path)):
        return open(target, "w", encoding="utf-8", newline=""), True
    return target, False


def _receipts(store: Store, before: datetime | None, since: datetime | None) -> Iterator[Receipt]:
    return store.receipts(since=since, until=before)


def export_jsonl(
    store: Store,
    target: str | Path | IO[str],
    *,
    before: datetime | None = None,
    since: datetime | None = None,
) -> int:
    """Write each receipt's full JSON, one a line (``Receipt.from_json`` reads them back)."""
    out, owned = _open(target)
    count = 0
    try:
        for receipt in _receipts(store, before, since):
            out.write(receipt.to_json() + "\n")
            count += 1
    finally:
        if owned:
            out.close()
    return count


def export_csv(
    store: Store,
    target: str | Path | IO[str],
    *,
    before: datetime | None = None,
    since: datetime | None = None,
) -> int:
    """One row per call: the columns of :data:`CSV_COLUMNS` (no attempts)."""
    out, owned = _open(target)
    count = 0
    try:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for r in _receipts(store, before, since):
            writer.writerow(
                [
                    r.id,
                    r.started_at.isoformat(),
                    r.function,
                    r.task or "",
                    r.outcome,
                    r.answered_by or "",
                    path_of(r),
                    r.escalated,
                    len(r.attempts),
                    "" if r.cost_usd is None else format(r.cost_usd, "f"),
                    format(r.known_cost_usd, "f"),
                    r.input_tokens,
                    r.output_tokens,
                    r.latency_s,
                    r.route.reason or "",
                    ";".join(f"{k}={v}" for k, v in sorted(r.tags.items())),
                ]
            )
            count += 1
    finally:
        if owned:
            out.close()
    return count


def delete_before(store: Store, before: datetime) -> int:
    """Delete the receipts of calls started before ``before`` (with their attempts,
    moves, scores, tags and feedback); returns how many calls were deleted."""
    old = select(s.calls.c.id).where(s.calls.c.started_at < before)
    with store.engine.begin() as connection:
        for table in (s.attempts, s.moves, s.scores, s.tags, s.feedback, s.audits):
            connection.execute(delete(table).where(table.c.call_id.in_(old)))
        result = connection.execute(delete(s.calls).where(s.calls.c.started_at < before))
    return int(result.rowcount or 0)
