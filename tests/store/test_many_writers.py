"""8 processes x 1,000 calls writing to one store lose nothing: the report's counts equal
the calls made, on one SQLite file and on one PostgreSQL database. And retention."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from escalate import Receipt
from escalate.store import Filters, Store, build_report, delete_before, export_csv, export_jsonl
from tests.store.test_store import make_solver

WORKERS = 8
CALLS = 1_000
WORKER = Path(__file__).with_name("_worker.py")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("ESCALATE_STORE", None)
    return env


def test_eight_processes_lose_nothing(store_url: str) -> None:
    Store(store_url).schema_version()  # not needed (they race to create it safely), but
    # it keeps the timing below about writing, not about eight imports of SQLAlchemy
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), store_url, str(CALLS), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for i in range(WORKERS)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - started
    for stats in results:
        assert (stats["enqueued"], stats["written"], stats["failed"], stats["dropped"]) == (
            CALLS,
            CALLS,
            0,
            0,
        ), stats
    store = Store(store_url)
    report = build_report(store)
    assert report.total.calls == store.count() == WORKERS * CALLS
    assert report.total.escalated == WORKERS * CALLS // 4
    assert report.total.answered_by == {"cheap": 6_000, "strong": 2_000}
    assert build_report(store, Filters(tags={"worker": "3"})).total.calls == CALLS
    print(f"\n{WORKERS} x {CALLS} calls into {store.dialect}: {elapsed:.1f} s")
    store.close()


def test_export_and_delete_old_receipts(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    solve = make_solver()
    from escalate import receipt_of

    fresh = [receipt_of(solve(q)) for q in ["easy", "hard", "easy"]]
    old_time = datetime(2025, 1, 1, tzinfo=UTC)
    old = [
        r.model_copy(update={"id": f"old-{i}", "started_at": old_time, "finished_at": old_time})
        for i, r in enumerate(fresh)
    ]
    store.write(fresh + old)
    store.add_feedback("old-0", good=False)
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    lines = io.StringIO()
    assert export_jsonl(store, lines, before=cutoff) == 3
    assert [Receipt.from_json(line) for line in lines.getvalue().splitlines()] == old
    table = tmp_path / "all.csv"
    assert export_csv(store, table) == 6
    rows = list(csv.DictReader(table.open()))
    assert [r["id"] for r in rows[:3]] == ["old-0", "old-1", "old-2"]
    assert rows[4]["path"] == "cheap>strong" and rows[4]["escalated"] == "True"
    assert delete_before(store, cutoff) == 3
    assert sorted(r.id for r in store.receipts()) == sorted(r.id for r in fresh)
    assert delete_before(store, datetime.now(UTC) - timedelta(days=1)) == 0
    store.close()
