"""The Peewee database: one proxy, bound to SQLite (WAL, foreign keys, a busy timeout: the
embedded default) or to PostgreSQL (several machines), with the same transaction guarantees on
both (write_transaction)."""

from __future__ import annotations

import datetime as dt
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from peewee import SQL, Database, DatabaseProxy, Node, SqliteDatabase, Value
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

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


# PostgreSQL: each process keeps at most this many connections; a server and a few workers stay
# well under the server's default max_connections of 100
PG_MAX_CONNECTIONS = 20
# the one lock every write transaction takes on PostgreSQL (pg_advisory_xact_lock): writes
# serialise as SQLite's BEGIN IMMEDIATE does, so a check-then-write (the balance before a
# debit, a status before a claim) means the same on both engines
WRITE_LOCK = "lumiku.write"


class _PostgresDatabase(PooledPostgresqlDatabase):
    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            failpoints.hit("sqlite.write")  # the same fault point on either engine
        return super().execute_sql(sql, params)


def lock_key(name: str) -> int:
    """A stable 32-bit key for a PostgreSQL advisory lock named `name`."""
    return zlib.crc32(f"lumiku:{name}".encode())


def open_url(url: str, busy_timeout: float = 10.0) -> Database:
    """Bind the proxy to the database at `url`: "" or sqlite:///… is handled by the caller
    (open_database); postgresql://user:password@host:port/name opens a pool of psycopg
    connections whose session clock is UTC, as every stored time is."""
    from playhouse.db_url import parse

    params = parse(url)
    name = params.pop("database")
    options = params.pop("options", "")
    db = _PostgresDatabase(
        name,
        max_connections=PG_MAX_CONNECTIONS,
        stale_timeout=STALE_SECONDS,
        timeout=busy_timeout,  # the pool's: how long to wait for a free connection
        prefer_psycopg3=True,
        options=f"{options} -c timezone=UTC".strip(),
        connect_timeout=max(1, int(busy_timeout)),
        **params,
    )
    database.initialize(db)
    return db


def open_for(settings: Any) -> Database:  # Settings (not imported: config imports nothing here)
    """Bind the proxy to the database the settings name."""
    if database.obj is not None:  # bound before (a restart in one process): close, not GC, its pool
        database.close_idle()
    if settings.uses_postgres:
        return open_url(settings.database_url, settings.busy_timeout_seconds)
    return open_database(settings.database_path, settings.busy_timeout_seconds)


def is_postgres() -> bool:
    return isinstance(database.obj, PooledPostgresqlDatabase)


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


@contextmanager
def write_transaction(*keys: str) -> Iterator[None]:
    """A read-then-write transaction that holds the write lock from its first statement.

    SQLite: BEGIN IMMEDIATE (one writer at a time; `keys` change nothing). PostgreSQL: a
    transaction whose first statement takes the write lock (pg_advisory_xact_lock, released at
    commit or rollback), so reads inside it see every earlier write (read committed) and no
    other write can slip in between. Nested, it is a savepoint inside the outer one.

    `keys`: what the transaction's checks depend on ("user:1", "generation:<id>"). On
    PostgreSQL it then takes the write lock shared and each key's lock whole (sorted: two
    keyed transactions cannot deadlock), so the jobs of different generations claim and
    deliver side by side, while an unkeyed transaction still excludes every other writer.
    Only the hot paths name keys; a check on anything else needs the whole lock.
    """
    outermost = not database.in_transaction()
    if not is_postgres():
        with database.atomic("IMMEDIATE"):
            yield
        return
    if not outermost:
        with database.atomic():
            held = getattr(_held, "keys", None)  # None: the whole write lock (or no lock)
            if held is not None:  # inside a keyed one: the keys this part checks too
                if not keys:
                    raise AssertionError("an unkeyed write nested in a keyed one: name its keys")
                _lock_keys(sorted(set(keys) - held))
                _held.keys = held | frozenset(keys)
            yield
        return
    _held.keys = frozenset(keys) if keys else None
    try:
        with database.atomic():
            if keys:
                database.execute_sql("SELECT pg_advisory_xact_lock_shared(%s)", (_WRITE_KEY,))
                _lock_keys(sorted(set(keys)))
            else:
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_WRITE_KEY,))
            yield
    finally:
        _held.keys = None  # gone with the transaction: a later plain atomic() holds none


_held = threading.local()  # the keys the outermost write transaction of this thread holds
_WRITE_KEY = lock_key(WRITE_LOCK)


def _lock_keys(keys: list[str]) -> None:
    for key in keys:
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (lock_key(key),))


@contextmanager
def savepoint() -> Iterator[None]:
    """Inside a transaction: a statement that may break a unique key (IntegrityError), undone
    alone. PostgreSQL aborts the whole transaction at a failed statement; a savepoint keeps the
    rest of it (on SQLite it costs nothing)."""
    with database.atomic():
        yield


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold the lock `name` for a block that only one process may run at a time (migrations).

    PostgreSQL: a session advisory lock, waited for. SQLite: one data folder is one process (its
    single-instance lock), and each migration's BEGIN IMMEDIATE serialises the rest.
    """
    if not is_postgres():
        yield
        return
    key = lock_key(name)
    database.execute_sql("SELECT pg_advisory_lock(%s)", (key,))
    try:
        yield
    finally:
        database.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))


def now() -> dt.datetime:
    """The database's clock, naive UTC: the one clock every machine's leases are measured by.

    SQLite is one machine's file, so its clock is this process's (which tests may jump)."""
    if not is_postgres():
        return clock.utcnow()
    value = database.execute_sql("SELECT LOCALTIMESTAMP").fetchone()[0]
    return cast(dt.datetime, value)


def now_sql() -> Any:
    """now() for an UPDATE's SET: the value itself on SQLite, LOCALTIMESTAMP in the statement
    on PostgreSQL (no round trip)."""
    return SQL("LOCALTIMESTAMP") if is_postgres() else clock.utcnow()


def utcnow() -> dt.datetime:
    """Naive UTC: SQLite stores it as sortable text; the API adds the Z. It may jump."""
    return clock.utcnow()


def iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # a value read back by raw SQL
        moment = dt.datetime.fromisoformat(moment)
    return moment.isoformat(timespec="milliseconds") + "Z"


# ------------------------------------------------------------------ compiled hot-path reads

# Peewee builds a query's SQL text anew at every execution, which is half the CPU of a
# one-image job (a full-row SELECT of a generation is ~35 columns of string building). The few
# reads every job makes are built once per engine here and run with new parameters.
_COMPILED: dict[tuple[str, type], tuple[Any, str, list[Any]]] = {}


def _slot(n: int) -> str:
    return f"\x00lumiku-slot-{n}\x00"  # a text no caller's value is: replaced at execution


def _compiled(name: str, build: Callable[..., Any], arity: int) -> tuple[Any, str, list[Any]]:
    key = (name, type(database.obj))
    found = _COMPILED.get(key)
    if found is None:
        query = build(*(_slot(n) for n in range(arity)))
        sql, params = query.sql()
        slots = {_slot(n) for n in range(arity)}
        if len(slots & {p for p in params if isinstance(p, str)}) != arity:
            raise AssertionError(f"{name}: every argument must be a plain parameter")
        found = _COMPILED[key] = (query, sql, params)
    return found


def _run_compiled(name: str, build: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    query, sql, template = _compiled(name, build, len(args))
    values = {_slot(n): arg for n, arg in enumerate(args)}
    params = [values.get(p, p) if isinstance(p, str) else p for p in template]
    return query, database.execute_sql(sql, params)


def first(name: str, build: Callable[..., Any], *args: Any) -> Any:
    """The row a unique lookup `build(*args)` finds (a model, with its joins), or None.
    `name` identifies the query; `build` is called once per engine, with placeholders: each
    argument must be used as a plain value (compared, not transformed)."""
    query, cursor = _run_compiled(name, build, args)
    for row in query._get_cursor_wrapper(cursor):
        return row
    return None


def rows(name: str, build: Callable[..., Any], *args: Any) -> list[Any]:
    """Every row of `build(*args)` (see first())."""
    query, cursor = _run_compiled(name, build, args)
    return list(query._get_cursor_wrapper(cursor))


def scalar(name: str, build: Callable[..., Any], *args: Any) -> Any:
    """The first column of the first row of `build(*args)` (see first()), or None."""
    _, cursor = _run_compiled(name, build, args)
    row = cursor.fetchone()
    return None if row is None else row[0]


def update(
    name: str, model: Any, values: dict[str, Any], where: Callable[..., Any], *args: Any
) -> int:
    """`model.update(**values).where(where(*args))`, compiled once per engine and set of
    columns (see first()): the rows it changed. A value that is SQL (now_sql() on PostgreSQL)
    stays in the statement, so it must be the same SQL at every call of one `name`; the others
    are converted by their field, as Peewee would."""
    fields = model._meta.fields
    columns = sorted(values)
    literal = tuple(column for column in columns if isinstance(values[column], Node))
    params = [column for column in columns if column not in literal]

    def build(*slots: Any) -> Any:
        data = {fields[column]: values[column] for column in literal}
        for column, slot in zip(params, slots, strict=False):
            data[fields[column]] = Value(slot, converter=None, unpack=False)
        return model.update(data).where(where(*slots[len(params) :]))

    converted = [fields[column].db_value(values[column]) for column in params]
    key = f"{name}|{model.__name__}|{','.join(params)}|{','.join(literal)}"
    _, cursor = _run_compiled(key, build, (*converted, *args))
    return int(database.rows_affected(cursor))


def tuples(query: Any) -> Iterator[tuple[Any, ...]]:
    """The rows of a query as tuples: peewee's stubs type every row as a model instance."""
    return cast(Iterator[tuple[Any, ...]], iter(query.tuples()))


def dicts(query: Any) -> list[dict[str, Any]]:
    """The rows of a query as dicts of field name to value (foreign keys as ids)."""
    return cast(list[dict[str, Any]], list(query.dicts()))
