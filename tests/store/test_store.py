"""The receipt store: every receipt of every call lands, exactly, in SQLite and PostgreSQL;
a slow, broken or full store never fails a call and counts what it could not write."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select, text

import escalate
from escalate import AllTiersFailed, Price, Receipt, escalating, receipt_of
from escalate._sinks import add_sink, remove_sink
from escalate.exceptions import ConfigurationError
from escalate.store import Store, StoreVersionError, Writer
from escalate.store import _schema as schema
from escalate.testing import Fault, FunctionTier, ScriptedTier

CHEAP = Price(input="0.15", output="0.60")
STRONG = Price(input="2.50", output="10")


class Answer(BaseModel):
    n: int


def _cheap(messages: list[dict[str, Any]]) -> object:
    # A question containing "hard" gets a bad answer from the cheap tier: it escalates.
    return {"n": "many"} if "hard" in messages[-1]["content"] else {"n": 1}


def make_solver(name: str = "solve", **kwargs: Any) -> Callable[[str], Answer]:
    tiers = kwargs.pop(
        "tiers",
        [
            FunctionTier("cheap", _cheap, price=CHEAP),
            FunctionTier("strong", lambda m: {"n": 2}, price=STRONG),
        ],
    )

    def prompt(question: str) -> str:
        return question

    prompt.__name__ = prompt.__qualname__ = name
    return escalating(tiers=tiers, response_model=Answer, **kwargs)(prompt)


def _stored(url: str) -> dict[str, Receipt]:
    return {r.id: r for r in Store(url).receipts()}


def test_every_outcome_is_stored_whole(store_url: str, use_store: Callable[..., None]) -> None:
    solve = make_solver(task="math", tags={"team": "a"})
    failing = make_solver(
        "always_fails",
        tiers=[ScriptedTier("cheap", {"n": "x"}), ScriptedTier("strong", Fault(500))],
        retry=escalate.Retry(attempts=1),
    )
    use_store(store_url)
    receipts = [receipt_of(solve("easy")), receipt_of(solve("hard"))]
    with pytest.raises(AllTiersFailed) as failed:
        failing("q")
    receipts.append(failed.value.receipt)
    assert escalate.flush()
    stored = _stored(store_url)
    assert set(stored) == {r.id for r in receipts}
    for receipt in receipts:
        assert stored[receipt.id] == receipt
    assert [stored[r.id].outcome for r in receipts] == ["answered", "answered", "failed"]
    (stats,) = escalate.store_stats()
    assert (stats.enqueued, stats.written, stats.failed, stats.dropped) == (3, 3, 0, 0)


def test_async_calls_are_stored(store_url: str, use_store: Callable[..., None]) -> None:
    @escalating(
        tiers=[
            FunctionTier("cheap", _cheap, price=CHEAP),
            FunctionTier("strong", lambda m: {"n": 2}),
        ],
        response_model=Answer,
    )
    async def solve(question: str) -> str:
        return question

    use_store(store_url)

    async def main() -> list[Answer]:
        return list(await asyncio.gather(*(solve(q) for q in ["easy", "hard"] * 10)))

    answers = asyncio.run(main())
    assert escalate.flush()
    stored = _stored(store_url)
    assert set(stored) == {receipt_of(a).id for a in answers}
    assert sum(r.escalated for r in stored.values()) == 10


def test_columns_a_report_groups_by(store_url: str, use_store: Callable[..., None]) -> None:
    solve = make_solver()
    use_store(store_url)
    for question in ["easy", "hard", "hard", "easy", "hard"]:
        solve(question)
    assert escalate.flush()
    store = Store(store_url)
    with store.engine.connect() as connection:
        by_tier = dict(
            connection.execute(
                select(schema.attempts.c.tier, func.count()).group_by(schema.attempts.c.tier)
            ).all()
        )
        triggers = dict(
            connection.execute(
                select(schema.moves.c.trigger, func.count()).group_by(schema.moves.c.trigger)
            ).all()
        )
        paths = dict(
            connection.execute(
                select(schema.calls.c.path, func.count()).group_by(schema.calls.c.path)
            ).all()
        )
        cost = connection.execute(select(schema.calls.c.known_cost_usd)).scalars().all()
        version = connection.execute(text("SELECT MAX(version) FROM schema_migrations")).scalar()
    assert by_tier == {"cheap": 5, "strong": 3}
    assert triggers == {"validation": 3}
    assert paths == {"cheap": 2, "cheap>strong": 3}
    assert sum(cost) == sum(r.known_cost_usd for r in store.receipts())
    assert version == schema.SCHEMA_VERSION
    store.close()


def test_many_stores_open_one_schema_once(store_url: str) -> None:
    first, second = Store(store_url), Store(store_url)
    assert first.schema_version() == second.schema_version() == schema.SCHEMA_VERSION
    with first.engine.connect() as connection:
        rows = connection.execute(text("SELECT COUNT(*) FROM schema_migrations")).scalar()
    assert rows == len(schema.MIGRATIONS)  # each version applied once
    first.close()
    second.close()


def test_a_newer_store_is_refused_not_overwritten(store_url: str) -> None:
    store = Store(store_url)
    store.schema_version()
    with store.engine.begin() as connection:
        connection.execute(
            schema.schema_migrations.insert().values(version=99, applied_at=time_now())
        )
    store.close()
    with pytest.raises(StoreVersionError, match="schema version 99"):
        Store(store_url).schema_version()


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_a_stored_receipt_reads_back_after_the_receipt_model_grows(store_url: str) -> None:
    # A receipt written by schema v1, as stored, with a field a later version might add:
    # it still parses (receipts ignore unknown keys) and keeps what v1 said.
    solve = make_solver()
    receipt = receipt_of(solve("hard"))
    store = Store(store_url)
    store.write([receipt])
    data = json.loads(receipt.to_json())
    data["a_later_field"] = {"x": 1}
    with store.engine.begin() as connection:
        connection.execute(
            schema.calls.update()
            .values(receipt=json.dumps(data))
            .where(schema.calls.c.id == receipt.id)
        )
    (back,) = list(store.receipts())
    assert back == receipt
    store.close()


def test_feedback_goes_to_the_receipts_store(
    store_url: str, use_store: Callable[..., None]
) -> None:
    solve = make_solver()
    use_store(store_url)
    first = solve("easy")
    escalate.feedback(first, good=False, reason="wrong total", correction='{"n": 3}')
    escalate.feedback(receipt_of(first).id, good=True)
    with escalate.options(regenerates=first):
        again = solve("easy")
    assert receipt_of(again).route.reason == "regenerate"
    assert escalate.flush()
    store = Store(store_url)
    with store.engine.connect() as connection:
        verdicts = connection.execute(
            select(schema.feedback.c.good, schema.feedback.c.reason).order_by(schema.feedback.c.id)
        ).all()
        link = connection.execute(
            select(schema.calls.c.regenerates).where(schema.calls.c.id == receipt_of(again).id)
        ).scalar()
    assert [tuple(v) for v in verdicts] == [(False, "wrong total"), (True, None)]
    assert link == receipt_of(first).id
    store.close()


def test_feedback_without_a_store_says_how() -> None:
    solve = make_solver()
    with pytest.raises(ConfigurationError, match=r"configure\(store="):
        escalate.feedback(solve("easy"), good=False)


def test_a_store_per_function(tmp_path: Path, use_store: Callable[..., None]) -> None:
    kept, other = make_solver("kept"), make_solver("other")
    use_store(f"sqlite:///{tmp_path / 'kept.db'}", functions=[kept])
    kept("easy")
    other("easy")
    kept("hard")
    assert escalate.flush()
    stored = _stored(f"sqlite:///{tmp_path / 'kept.db'}")
    assert sorted(r.function.rsplit(".", 1)[-1] for r in stored.values()) == ["kept", "kept"]


def test_no_store_is_written_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment names a store, but under pytest it is ignored: nothing is written.
    monkeypatch.setenv("ESCALATE_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    from escalate import _storing

    monkeypatch.setattr(_storing, "_env_checked", False)
    make_solver()("easy")
    _storing._check_env()
    assert escalate.store_stats() == []
    assert not (tmp_path / "env.db").exists()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("ESCALATE_STORE", None)
    return {**env, **extra}


def test_the_environment_variable_configures_a_program(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.store.test_store import make_solver\n"
        "solve = make_solver()\n"
        "for q in ['easy', 'hard'] * 5:\n"
        "    solve(q)\n"
    )
    url = f"sqlite:///{tmp_path / 'env.db'}"
    root = str(Path(__file__).resolve().parent.parent)
    subprocess.run(
        [sys.executable, str(script), root], check=True, env=_clean_env(ESCALATE_STORE=url)
    )
    # Written at exit, by the atexit flush: no flush() in the program.
    assert len(_stored(url)) == 10


def test_import_escalate_loads_no_database_code() -> None:
    code = (
        "import sys, escalate; print(sorted(m for m in sys.modules "
        "if m.startswith(('sqlalchemy', 'escalate.store', 'rich'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=_clean_env()
    )
    assert done.stdout.strip() == "[]"


def test_a_store_that_is_down_never_fails_a_call(
    use_store: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    solve = make_solver()
    caplog.set_level(logging.ERROR, logger="escalate.store")
    use_store(f"postgresql+psycopg://nobody@127.0.0.1:{port}/nothing")
    started = time.perf_counter()
    answers = [solve("hard" if i % 2 else "easy") for i in range(30)]
    elapsed = time.perf_counter() - started
    assert [a.n for a in answers] == [1, 2] * 15
    assert elapsed < 5, f"30 calls took {elapsed:.1f} s with the store down"
    assert escalate.flush(timeout=60)
    (stats,) = escalate.store_stats()
    assert (stats.written, stats.failed + stats.dropped, stats.pending) == (0, 30, 0)
    assert stats.failed >= 1 and "OperationalError" in (stats.last_error or "")
    assert any("could not write" in r.getMessage() for r in caplog.records)


def test_a_slow_store_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    store = Store(url)
    store.schema_version()  # created before the lock is taken
    writer = Writer(store, max_queue=5, batch_size=2, linger_s=0, retry_pause_s=0)
    lock = sqlite3.connect(tmp_path / "slow.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # every write now waits on the busy timeout
    add_sink(writer.put)
    try:
        solve = make_solver()
        started = time.perf_counter()
        for i in range(40):
            solve("hard" if i % 4 == 0 else "easy")
        elapsed = time.perf_counter() - started
    finally:
        remove_sink(writer.put)
        lock.execute("ROLLBACK")
        lock.close()
    assert elapsed < 5, f"40 calls took {elapsed:.1f} s behind a locked store"
    assert writer.flush(timeout=60)
    stats = writer.stats()
    assert stats.enqueued == 40 and stats.dropped >= 30
    assert stats.written + stats.failed + stats.dropped == 40
    assert store.count() == stats.written
    writer.close()


def test_a_closed_writer_counts_what_it_refused(tmp_path: Path) -> None:
    writer = Writer(Store(tmp_path / "closed.db"))
    writer.close()
    writer.put(receipt_of(make_solver()("easy")))
    assert (writer.stats().enqueued, writer.stats().dropped) == (1, 1)


def test_store_urls() -> None:
    from escalate.store._store import normalise_url

    assert normalise_url("receipts.db").startswith("sqlite:///")
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigurationError, match="not supported"):
        normalise_url("mysql://u@h/db")
