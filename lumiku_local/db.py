"""The Peewee database: one proxy, SQLite with WAL, foreign keys and a busy timeout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peewee import DatabaseProxy, SqliteDatabase

from . import failpoints

database = DatabaseProxy()

PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "cache_size": -16_000,
}


class _Database(SqliteDatabase):
    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            failpoints.hit("sqlite.write")  # where a full disk or a foreign lock would strike
        return super().execute_sql(sql, params)


def open_database(path: Path, busy_timeout: float = 10.0) -> SqliteDatabase:
    """Bind the proxy to the SQLite file at `path`; connections open per thread on demand.

    `busy_timeout`: seconds a write waits for another connection's write lock before failing.
    """
    db = _Database(str(path), pragmas=PRAGMAS, timeout=busy_timeout, check_same_thread=False)
    database.initialize(db)
    return db


@contextmanager
def connection() -> Iterator[None]:
    """Open this thread's connection for a unit of work and close it afterwards."""
    if not database.is_closed():
        yield
        return
    database.connect()
    try:
        yield
    finally:
        database.close()


def write_transaction():  # type: ignore[no-untyped-def]
    """A read-then-write transaction that takes the write lock up front (BEGIN IMMEDIATE)."""
    return database.atomic("IMMEDIATE")


def utcnow() -> dt.datetime:
    """Naive UTC: SQLite stores it as sortable text; the API adds the Z."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # a value read back by raw SQL
        moment = dt.datetime.fromisoformat(moment)
    return moment.isoformat(timespec="milliseconds") + "Z"
