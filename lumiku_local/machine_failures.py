"""Failures of the machine under Lumiku: a full disk, a database another program holds, a folder
Lumiku may not write. Recognised in SQLite's and the system's exceptions, worded so that a person
can act, remembered for /health, and probed cheaply."""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import peewee

from .config import Settings, redacted
from .errors import DatabaseBusy, DataFolderUnwritable, DiskFull, LumikuError, ServiceUnavailable

log = logging.getLogger("lumiku")
LOW_DISK_BYTES = 50 * 2**20  # below this SQLite and image writes start failing
REMEMBER_SECONDS = 60.0  # a failure seen by a request is reported this long, unless a write works
PROBE_WAIT_SECONDS = 0.5  # /health waits this long for the database's write lock
_FULL = {errno.ENOSPC, errno.EDQUOT}
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


def disk_full(settings: Settings, where: Path | None = None) -> DiskFull:
    folder = where or settings.home
    return DiskFull(
        f"The disk holding {_describe(settings, folder)} is full, so nothing was saved. "
        f"Free some space on it and try again."
    )


def database_busy(settings: Settings) -> DatabaseBusy:
    if settings.uses_postgres:
        return DatabaseBusy(
            "Lumiku's PostgreSQL database is busy, so nothing was saved. Try again in a moment."
        )
    return DatabaseBusy(
        f"Another program is holding Lumiku's database ({settings.database_path}) for writing, "
        f"so nothing was saved. Close that program (a database browser, a backup or sync tool) "
        f"and try again."
    )


def unwritable(settings: Settings, reason: str, where: Path | None = None) -> DataFolderUnwritable:
    folder = where or settings.home
    return DataFolderUnwritable(
        f"Lumiku cannot write to {_describe(settings, folder)} ({reason.lower()}), so nothing "
        f"was saved. Make it writable for your user, or start Lumiku with --home set to a "
        f"folder that is, and try again."
    )


def _describe(settings: Settings, folder: Path) -> str:
    if folder == settings.home or settings.home in folder.parents:
        return f"Lumiku's data folder ({settings.home})"
    return str(folder)


def classify(exc: BaseException, settings: Settings) -> LumikuError | None:
    """The machine failure behind `exc` or an exception it was raised from, if it is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (error := _classify_one(current, settings)) is not None:
            return error
        current = current.__cause__ or current.__context__
    return None


def _server_failure(exc: BaseException, settings: Settings) -> LumikuError | None:
    """PostgreSQL or Redis (several machines): a server out of reach, or a write that lost a
    race it cannot win by waiting (a deadlock or serialization failure: tried again, it works)."""
    module = type(exc).__module__
    text = str(exc).lower()
    if module.startswith("redis") and type(exc).__name__ in ("ConnectionError", "TimeoutError"):
        return ServiceUnavailable(
            f"Lumiku cannot reach its Redis queue ({redacted(settings.queue_url)}), so the job "
            "was not queued. Check that the Redis server is running and reachable; work already "
            "saved is queued again once it is.",
            code="queue_unreachable",
        )
    if not settings.uses_postgres:
        return None
    if module.startswith("psycopg") or isinstance(exc, peewee.DatabaseError):
        if "deadlock detected" in text or "could not serialize" in text:
            return DatabaseBusy(
                "Lumiku's database was busy with another change, so nothing was saved. Try again."
            )
        if "no space left" in text or "could not extend file" in text:
            return DiskFull(
                "The disk of Lumiku's PostgreSQL server is full, so nothing was saved. Free "
                "some space on that server and try again.",
            )
        if isinstance(exc, peewee.OperationalError | peewee.InterfaceError) or any(
            words in text
            for words in ("connection", "server closed", "terminating", "timeout expired")
        ):
            return ServiceUnavailable(
                "Lumiku cannot reach its PostgreSQL database "
                f"({redacted(settings.database_url)}), so nothing was saved. Check that the "
                "server is running and reachable, then try again.",
                code="database_unreachable",
            )
    return None


def _classify_one(exc: BaseException, settings: Settings) -> LumikuError | None:
    if (server := _server_failure(exc, settings)) is not None:
        return server
    if isinstance(exc, sqlite3.OperationalError | peewee.OperationalError):
        text = str(exc).lower()  # peewee's wrapper keeps SQLite's words
        if "database is locked" in text or "database is busy" in text:
            return database_busy(settings)
        if "database or disk is full" in text:
            return disk_full(settings)
        if "readonly database" in text or "unable to open database" in text:
            return unwritable(settings, "the database file is read-only or missing")
        return None
    if isinstance(exc, OSError) and (exc.errno in _FULL or exc.errno in _UNWRITABLE):
        where = Path(exc.filename) if isinstance(exc.filename, str) else None
        folder = where.parent if where is not None else None
        if exc.errno in _FULL:
            return disk_full(settings, folder)
        return unwritable(settings, exc.strerror or "permission denied", folder)
    return None


class FailureMemory:
    """The last machine failure a request met, until a change succeeds or it grows old."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[float, LumikuError] | None = None

    def record(self, error: LumikuError) -> None:
        with self._lock:
            self._last = (time.monotonic(), error)

    def clear(self) -> None:
        with self._lock:
            self._last = None

    def recent(self) -> LumikuError | None:
        with self._lock:
            if self._last is None or time.monotonic() - self._last[0] > REMEMBER_SECONDS:
                return None
            return self._last[1]


def probe(settings: Settings) -> list[str]:
    """What stops Lumiku from saving right now: little free space, a folder it may not write,
    a database write lock held elsewhere. Cheap: one stat, two empty files, one BEGIN."""
    problems: list[str] = []
    try:
        free = shutil.disk_usage(settings.home).free
    except OSError:
        free = None
    if free is not None and free < LOW_DISK_BYTES:
        problems.append(
            f"Only {free / 2**20:.0f} MB are free on the disk holding Lumiku's data folder "
            f"({settings.home}). Free some space on it."
        )
    for folder in (settings.home, settings.files_dir):
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            error = classify(exc, settings)
            problems.append(error.message if error else f"Lumiku cannot write to {folder}: {exc}")
            break
    problems += _probe_database(settings)
    return problems


def _probe_database(settings: Settings) -> list[str]:
    if not settings.embedded:
        from .backends import problems

        return problems(settings, timeout=max(1.0, PROBE_WAIT_SECONDS))
    uri = f"{settings.database_path.as_uri()}?mode=rw"  # never creates a database
    try:
        probe_connection = sqlite3.connect(
            uri, uri=True, timeout=PROBE_WAIT_SECONDS, isolation_level=None
        )
    except sqlite3.Error as exc:
        return [_database_problem(exc, settings)]
    try:
        probe_connection.execute("BEGIN IMMEDIATE")
        probe_connection.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return [_database_problem(exc, settings)]
    finally:
        probe_connection.close()
    return []


def _database_problem(exc: sqlite3.Error, settings: Settings) -> str:
    error = classify(exc, settings)
    return error.message if error else f"Lumiku's database cannot be written: {exc}."


def noticed(state: Any, exc: BaseException) -> LumikuError | None:
    """The machine failure behind an exception a request raised, remembered for /health."""
    error = classify(exc, state.runtime.settings)
    if error is not None:
        state.machine_failures.record(error)
        log.warning("%s: %s", error.code, exc)
    return error
