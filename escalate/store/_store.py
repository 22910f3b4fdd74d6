"""A receipt store: one SQLAlchemy engine over SQLite (the embedded default: a file in WAL
mode, created on first use) or PostgreSQL (many workers and machines), the schema brought
up to date once, and the writes and reads everything else is built on."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, insert, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError

import escalate.store._schema as s
from escalate._receipt import Receipt
from escalate.exceptions import ConfigurationError
from escalate.store._rows import is_amendment, rows_of

__all__ = ["Store", "normalise_url"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str | Path) -> str:
    """A SQLAlchemy URL: a bare path is a SQLite file; ``postgresql://`` uses psycopg 3."""
    text = str(url)
    if "://" not in text:
        text = f"sqlite:///{Path(text).expanduser()}"
    try:
        parsed = make_url(text)
    except ArgumentError as error:
        raise ConfigurationError(f"store: not a database URL: {text!r} ({error})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"store: {parsed.get_backend_name()!r} is not supported: use sqlite:///FILE or "
            "postgresql://USER@HOST/DB"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver, so that SQLAlchemy's begin below is the only BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock at once: a writer waits its turn (busy timeout)
        # instead of failing when another process writes between its read and its write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _engine(url: str) -> Engine:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    try:
        return create_engine(
            url,
            pool_size=2,
            max_overflow=2,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={"connect_timeout": 5},
        )
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            f"store: the PostgreSQL driver is missing ({error.name}): "
            "pip install 'escalate[postgres]'"
        ) from None


def _insert(connection: Connection, rows: Any) -> None:
    connection.execute(insert(s.calls), rows.calls)
    for table, batch in (
        (s.attempts, rows.attempts),
        (s.moves, rows.moves),
        (s.scores, rows.scores),
        (s.tags, rows.tags),
        (s.audits, rows.audits),
    ):
        if batch:
            connection.execute(insert(table), batch)


class Store:
    """Receipts in a database. Opening is lazy: the engine and the schema are made on first
    use (by the background writer, off the caller's thread)."""

    def __init__(self, url: str | Path) -> None:
        self.url = normalise_url(url)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def engine(self) -> Engine:
        """The engine, created and migrated on first use."""
        with self._lock:
            if self._engine is None:
                engine = _engine(self.url)
                try:
                    with engine.begin() as connection:
                        s.migrate(connection)
                except BaseException:
                    engine.dispose()
                    raise
                self._engine = engine
            return self._engine

    def schema_version(self) -> int:
        with self.engine.connect() as connection:
            found = connection.execute(select(s.schema_migrations.c.version)).scalars().all()
        return max(found, default=0)

    def write(self, receipts: Sequence[Receipt]) -> int:
        """Insert a batch of receipts in one transaction; a receipt already stored (same
        id) makes the batch fail, so it never counts twice. A background audit's amended
        receipt is the exception: it replaces the rows stored under its id (the call's row,
        its attempts, moves, scores, tags and audit; feedback is kept), after the batch's
        new receipts, so an amendment written with its original still wins. Returns how
        many were written."""
        if not receipts:
            return 0
        new = [r for r in receipts if not is_amendment(r)]
        amended = [r for r in receipts if is_amendment(r)]
        with self.engine.begin() as connection:
            if new:
                _insert(connection, rows_of(new))
            if amended:
                ids = [r.id for r in amended]
                for table in (s.attempts, s.moves, s.scores, s.tags, s.audits):
                    connection.execute(delete(table).where(table.c.call_id.in_(ids)))
                connection.execute(delete(s.calls).where(s.calls.c.id.in_(ids)))
                _insert(connection, rows_of(amended))
        return len(receipts)

    def add_feedback(
        self,
        call_id: str,
        *,
        good: bool,
        reason: str | None = None,
        correction: str | None = None,
        at: datetime | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(s.feedback).values(
                    call_id=call_id,
                    good=good,
                    reason=reason,
                    correction=correction,
                    created_at=at or datetime.now(UTC),
                )
            )

    def count(self) -> int:
        """How many receipts the store holds."""
        from sqlalchemy import func

        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(s.calls)).scalar_one())

    def receipts(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[Receipt]:
        """The stored receipts, oldest first, read back from their full JSON."""
        query = select(s.calls.c.receipt).order_by(s.calls.c.started_at, s.calls.c.id)
        if since is not None:
            query = query.where(s.calls.c.started_at >= since)
        if until is not None:
            query = query.where(s.calls.c.started_at < until)
        with self.engine.connect() as connection:
            for (data,) in connection.execute(query):
                yield Receipt.from_json(data)

    def recent(self, function: str, task: str | None, limit: int) -> list[Receipt]:
        """The most recent ``limit`` receipts of one function and task class (``None``:
        the calls without a task), oldest first: one query on the function's index."""
        c = s.calls.c
        query = (
            select(c.receipt)
            .where(c.function == function)
            .where(c.task.is_(None) if task is None else c.task == task)
            .order_by(c.started_at.desc(), c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            found = [Receipt.from_json(data) for (data,) in connection.execute(query)]
        return found[::-1]

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
