"""The Peewee database: one proxy, SQLite with WAL, foreign keys and a busy timeout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from peewee import DatabaseProxy, SqliteDatabase
from playhouse.pool import PooledSqliteDatabase

from . import clock, failpoints

database = DatabaseProxy()

PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "cache_size": -16_000,
}


# A bound, not a target: requests take at most api.DATABASE_THREADS at once, each worker one
# (kept) and each running job one more for its heartbeat.
MAX_CONNECTIONS = 64
STALE_SECONDS = 600  # a pooled connection is replaced when it is this old


class _Database(PooledSqliteDatabase):
    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            failpoints.hit("sqlite.write")  # where a full disk or a foreign lock would strike
        return super().execute_sql(sql, params)


def open_database(path: Path, busy_timeout: float = 10.0) -> SqliteDatabase:
    """Bind the proxy to the SQLite file at `path`; connections open per thread on demand.

    `busy_timeout`: seconds a write waits for another connection's write lock before failing.
    Connections come from a pool: `connection()` takes one and gives it back, so a request
    neither pays for opening one nor leaves one open on its thread.
    """
    db = _Database(
        str(path),
        # first: the journal_mode pragma after it may already wait for a lock
        pragmas={"busy_timeout": int(busy_timeout * 1000), **PRAGMAS},
        max_connections=MAX_CONNECTIONS,
        stale_timeout=STALE_SECONDS,
        timeout=busy_timeout,  # the pool's: how long to wait for a free connection
        check_same_thread=False,
    )
    database.initialize(db)
    return db


@contextmanager
def connection() -> Iterator[None]:
    """Take a connection for this thread's unit of work and give it back to the pool after."""
    if not database.is_closed():
        yield
        return
    database.connect()
    try:
        yield
    finally:
        database.close()


def write_transaction() -> Any:  # peewee's transaction context (atomic or savepoint)
    """A read-then-write transaction that takes the write lock up front (BEGIN IMMEDIATE)."""
    return database.atomic("IMMEDIATE")


def utcnow() -> dt.datetime:
    """Naive UTC: SQLite stores it as sortable text; the API adds the Z. It may jump."""
    return clock.utcnow()


def iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # a value read back by raw SQL
        moment = dt.datetime.fromisoformat(moment)
    return moment.isoformat(timespec="milliseconds") + "Z"


def tuples(query: Any) -> Iterator[tuple[Any, ...]]:
    """The rows of a query as tuples: peewee's stubs type every row as a model instance."""
    return cast(Iterator[tuple[Any, ...]], iter(query.tuples()))


def dicts(query: Any) -> list[dict[str, Any]]:
    """The rows of a query as dicts of field name to value (foreign keys as ids)."""
    return cast(list[dict[str, Any]], list(query.dicts()))
