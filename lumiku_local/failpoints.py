"""Named fault points for tests, inert unless configured (LUMIKU_FAILPOINTS / settings.failpoints).

Spec: `name=action[@N][*M]`, several joined by `;` or `,`.
Actions: `error` (raise FailpointError), `crash` (the process dies at once, as under kill -9),
`delay(S)` (sleep S seconds), `jump(S)` (move the wall clock by S seconds, as a wake from
sleep or a clock set back would), `die` (kill the calling worker thread), and the machine's own
failures, raised as the machine raises them: `sqlite_full` and `sqlite_locked` (SQLite's
"database or disk is full" and "database is locked"), `enospc` (no space left on the disk),
`eacces` (permission denied) and `erofs` (a read-only file system).
`@N` fires from the Nth hit on; `*M` fires at most M times.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass

from . import clock

KNOWN_POINTS = (
    "engine.generate",
    "storage.save",
    "generation.record",
    "generation.finish",
    "generation.enqueue",
    "worker.dequeue",
    "sqlite.write",
    "files.delete",
)

_SPEC = re.compile(
    r"^(?P<name>[a-z.]+)=(?P<action>error|crash|die|[a-z_]+|delay\((?P<seconds>[0-9.]+)\)"
    r"|jump\((?P<jump>-?[0-9.]+)\))"
    r"(?:@(?P<start>\d+))?(?:\*(?P<limit>\d+))?$"
)


class FailpointError(RuntimeError):
    """A transient failure injected by a failpoint."""


MACHINE_FAILURES = {
    "sqlite_full": lambda: sqlite3.OperationalError("database or disk is full"),
    "sqlite_locked": lambda: sqlite3.OperationalError("database is locked"),
    "enospc": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    "eacces": lambda: PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
    "erofs": lambda: OSError(errno.EROFS, os.strerror(errno.EROFS)),
}


class WorkerDeath(BaseException):  # noqa: N818 - mirrors SystemExit: not an error, a death
    """Raised by `die` so the worker thread's loop ends as if it had crashed."""


@dataclass
class _Failpoint:
    action: str
    seconds: float = 0.0
    start: int = 1
    limit: int | None = None
    hits: int = 0
    fired: int = 0


_lock = threading.Lock()
_points: dict[str, _Failpoint] = {}


def configure(spec: str) -> None:
    """Replace all failpoints with those in `spec` (empty: none)."""
    parsed: dict[str, _Failpoint] = {}
    for part in filter(None, (p.strip() for p in re.split(r"[;,]", spec or ""))):
        match = _SPEC.match(part)
        actions = ("error", "crash", "die", *MACHINE_FAILURES)
        if (
            not match
            or match["name"] not in KNOWN_POINTS
            or not (match["seconds"] or match["jump"] or match["action"] in actions)
        ):
            raise ValueError(
                f"bad failpoint {part!r}: use name=ACTION[@N][*M] with an action among "
                f"{', '.join(actions)}, delay(S), jump(S) and a name among "
                f"{', '.join(KNOWN_POINTS)}"
            )
        action = "delay" if match["seconds"] else "jump" if match["jump"] else match["action"]
        parsed[match["name"]] = _Failpoint(
            action=action,
            seconds=float(match["seconds"] or match["jump"] or 0),
            start=int(match["start"] or 1),
            limit=int(match["limit"]) if match["limit"] else None,
        )
    with _lock:
        _points.clear()
        _points.update(parsed)


def hit(name: str) -> None:
    """Mark a fault point; does nothing unless a test configured it."""
    if not _points:
        return
    with _lock:
        point = _points.get(name)
        if point is None:
            return
        point.hits += 1
        if point.hits < point.start or (point.limit is not None and point.fired >= point.limit):
            return
        point.fired += 1
        action, seconds = point.action, point.seconds
    if action == "delay":
        time.sleep(seconds)
    elif action == "jump":
        clock.jump(seconds)
    elif action == "error":
        raise FailpointError(f"failpoint {name} injected an error")
    elif action == "die":
        raise WorkerDeath(name)
    elif action == "crash":
        _crash()
    elif action in MACHINE_FAILURES:
        raise MACHINE_FAILURES[action]()


def _crash() -> None:
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)


def hits(name: str) -> int:
    """How often a configured point was reached: lets a test wait until code is parked there."""
    with _lock:
        point = _points.get(name)
        return point.hits if point else 0
