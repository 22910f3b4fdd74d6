"""Fixtures for the receipt store's tests: a SQLite file, and a real PostgreSQL server.

PostgreSQL comes from ``ESCALATE_TEST_POSTGRES`` (a SQLAlchemy URL; ``.ci/run`` starts a
server and sets it), else this module starts a throwaway cluster itself when Debian's
``initdb`` is installed (as the ``postgres`` user when run as root: initdb refuses root).
Without either the PostgreSQL tests skip, saying why, except under CI (``CI`` set), where
they fail: CI must never skip them.

Each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import escalate

PG_ENV = "ESCALATE_TEST_POSTGRES"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _tool(name: str) -> str | None:
    candidate = PG_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


@contextlib.contextmanager
def _own_cluster() -> Iterator[str]:
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("no initdb/pg_ctl on this machine (apt-get install postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="escalate-pg-"))
    root.chmod(0o755)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_postgres(stop), check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI and is not available: {reason}")
    pytest.skip(f"no PostgreSQL: {reason} (set {PG_ENV} or install postgresql-15)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's ``postgres`` database."""
    given = os.environ.get(PG_ENV)
    if given:
        yield given
        return
    cluster = _own_cluster()
    try:
        url = cluster.__enter__()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        _unavailable(repr(error))
        return
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


def _admin(url: str, statement: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        autocommit=True,
    ) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL server."""
    from sqlalchemy.engine import make_url

    name = f"escalate_test_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server, f"CREATE DATABASE {name}")
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(postgres_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'receipts.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def use_store() -> Iterator[Callable[..., None]]:
    """``use_store(url, **configure_kwargs)``; every store it configured is turned off
    (flushed and closed) when the test ends."""
    configured: list[dict[str, object]] = []

    def configure(url: str, **kwargs: object) -> None:
        escalate.configure(store=url, **kwargs)  # type: ignore[arg-type]
        configured.append(kwargs)

    yield configure
    for kwargs in configured:
        functions = kwargs.get("functions")
        escalate.configure(store=None, functions=functions)  # type: ignore[arg-type]
