"""The Peewee database: one proxy, SQLite with WAL, foreign keys and a busy timeout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peewee import DatabaseProxy, SqliteDatabase

database = DatabaseProxy()

PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "cache_size": -16_000,
}


def open_database(path: Path) -> SqliteDatabase:
    """Bind the proxy to the SQLite file at `path`; connections open per thread on demand."""
    db = SqliteDatabase(str(path), pragmas=PRAGMAS, timeout=10, check_same_thread=False)
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
