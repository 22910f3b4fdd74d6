"""The store's schema and its versioned migrations, one for SQLite and PostgreSQL alike.

Every receipt is one row of ``calls`` (its full JSON in ``receipt``, beside the columns a
report groups by), one row per attempt in ``attempts``, per move in ``moves``, per score
in ``scores`` and per tag in ``tags``; ``feedback`` holds users' verdicts; ``audits`` (since
schema version 2) one row per audited call: the verdict, the gates the answer passed, the
audit's cost and both raw answers. The schema's
version is in ``schema_migrations``; :func:`migrate` brings any older store up to
:data:`SCHEMA_VERSION` and refuses a newer one, under a lock, so that many processes
opening one store at once create it once.

A stored receipt never breaks: the JSON in ``calls.receipt`` is read back with
``Receipt.from_json``, which parses every receipt schema version written before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "SCHEMA_VERSION",
    "StoreVersionError",
    "attempts",
    "audits",
    "calls",
    "feedback",
    "metadata",
    "migrate",
    "moves",
    "schema_migrations",
    "scores",
    "tags",
]

SCHEMA_VERSION = 2


class Usd(TypeDecorator[Decimal]):
    """An exact amount of dollars: NUMERIC on PostgreSQL; on SQLite, whose NUMERIC is a
    float, the decimal's text (so a report's sums equal the receipts' to the last digit)."""

    impl = Numeric(28, 12)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(28, 12, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def _utc(name: str, **kwargs: Any) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), **kwargs)


metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    _utc("applied_at", nullable=False),
)

calls = Table(
    "calls",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("receipt_version", Integer, nullable=False),
    Column("function", String(300), nullable=False),
    Column("task", String(200)),
    Column("outcome", String(20), nullable=False),
    Column("answered_by", String(200)),
    Column("start_tier", String(200), nullable=False),
    Column("route_source", String(20), nullable=False),
    Column("route_reason", String(500)),
    Column("path", String(1000), nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("attempt_count", Integer, nullable=False),
    Column("spent_attempts", Integer, nullable=False),
    Column("cost_usd", Usd()),
    Column("known_cost_usd", Usd(), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    _utc("started_at", nullable=False),
    _utc("finished_at", nullable=False),
    Column("hour", Integer, nullable=False),
    Column("latency_s", Float, nullable=False),
    Column("regenerates", String(36)),
    Column("receipt", Text, nullable=False),
    Index("ix_calls_started_at", "started_at"),
    Index("ix_calls_function_started", "function", "started_at"),
    Index("ix_calls_task_started", "task", "started_at"),
    Index("ix_calls_answered_by", "answered_by"),
    Index("ix_calls_path", "path"),
    Index("ix_calls_hour", "hour"),
    Index("ix_calls_regenerates", "regenerates"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("call_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("tier", String(200), nullable=False),
    Column("deployment", String(300), nullable=False),
    Column("provider", String(100), nullable=False),
    Column("requested_model", String(300), nullable=False),
    Column("served_model", String(300)),
    Column("purpose", String(20), nullable=False),
    Column("reask", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("trigger", String(30)),
    Column("gate", String(200)),
    Column("reason", Text),
    Column("status_code", Integer),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cached_tokens", BigInteger),
    Column("cost_usd", Usd()),
    Column("cost_source", String(20)),
    Column("latency_s", Float, nullable=False),
    _utc("started_at", nullable=False),
    Column("hour", Integer, nullable=False),
    Index("ix_attempts_tier", "tier"),
    Index("ix_attempts_trigger", "trigger"),
    Index("ix_attempts_gate", "gate"),
    Index("ix_attempts_served_model", "served_model"),
    Index("ix_attempts_started_at", "started_at"),
)

moves = Table(
    "moves",
    metadata,
    Column("call_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(10), nullable=False),
    Column("from_tier", String(200), nullable=False),
    Column("from_deployment", String(300), nullable=False),
    Column("to_tier", String(200), nullable=False),
    Column("to_deployment", String(300), nullable=False),
    Column("trigger", String(30), nullable=False),
    Column("gate", String(200)),
    Column("reason", Text, nullable=False),
    Index("ix_moves_trigger", "trigger"),
    Index("ix_moves_gate", "gate"),
    Index("ix_moves_from_to", "from_tier", "to_tier"),
)

scores = Table(
    "scores",
    metadata,
    Column("call_id", String(36), primary_key=True),
    Column("attempt_seq", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), primary_key=True),
    Column("value", Float, nullable=False),
    Column("tier", String(200), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("gate", String(200)),
    Index("ix_scores_name", "name"),
)

tags = Table(
    "tags",
    metadata,
    Column("call_id", String(36), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", String(1000), nullable=False),
    Index("ix_tags_key_value", "key", "value"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # No foreign key: a verdict may arrive before its receipt is flushed.
    Column("call_id", String(36), nullable=False),
    Column("good", Boolean, nullable=False),
    Column("reason", Text),
    Column("correction", Text),
    _utc("created_at", nullable=False),
    Index("ix_feedback_call_id", "call_id"),
)


audits = Table(
    "audits",
    metadata,
    # One per audited call; written with the call (inline) or when a background audit's
    # amended receipt replaces the call's rows. No foreign key, as for feedback.
    Column("call_id", String(36), primary_key=True),
    Column("tier", String(200), nullable=False),
    Column("of_tier", String(200), nullable=False),
    Column("agreed", Boolean),  # NULL: the audit got no answer (its attempt says why)
    Column("mode", String(20), nullable=False),
    Column("key", String(300)),
    Column("answer_key", Text),
    Column("audit_key", Text),
    Column("gates", Text, nullable=False),  # the gates the answer passed: a JSON list
    Column("cost_usd", Usd()),  # the audit's own attempts; NULL when one is unknown
    Column("known_cost_usd", Usd(), nullable=False),
    Column("answer_raw", Text),
    Column("audit_raw", Text),
    Index("ix_audits_of_tier", "of_tier"),
    Index("ix_audits_agreed", "agreed"),
)


class StoreVersionError(RuntimeError):
    """The store was written by a newer escalate than this one."""


def _v1(connection: Connection) -> None:
    metadata.create_all(
        connection, tables=[calls, attempts, moves, scores, tags, feedback], checkfirst=True
    )


def _v2(connection: Connection) -> None:
    """Audits (``escalating(audit=...)``): a table of their own, so version 1's rows are
    untouched and read as they were (a call with no row here was not audited)."""
    metadata.create_all(connection, tables=[audits], checkfirst=True)


MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = ((1, _v1), (2, _v2))
"""(version, step): each step brings a store of the version before it to its own; a new
version appends a step (add a column, an index) and never edits an old one."""

_PG_LOCK_KEY = 0x65736361  # "esca": one advisory lock id for escalate's migrations


def migrate(connection: Connection) -> int:
    """Bring the store to :data:`SCHEMA_VERSION` inside the caller's transaction (which,
    on SQLite, is ``BEGIN IMMEDIATE``: the write lock; on PostgreSQL an advisory lock is
    taken). Returns the version found before."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    schema_migrations.create(connection, checkfirst=True)
    found = connection.execute(text("SELECT MAX(version) FROM schema_migrations")).scalar()
    current = int(found or 0)
    if current > SCHEMA_VERSION:
        raise StoreVersionError(
            f"this store is at schema version {current}, newer than this escalate's "
            f"{SCHEMA_VERSION}: upgrade escalate to read or write it"
        )
    for version, step in MIGRATIONS:
        if version > current:
            step(connection)
            connection.execute(
                schema_migrations.insert().values(version=version, applied_at=datetime.now(UTC))
            )
    return current
