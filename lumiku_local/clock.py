"""Wall-clock time in UTC, which may jump; and a test hook that jumps it.

Wall time is for records and for comparing across processes. Durations inside a process (a
deadline, a backoff) use `time.monotonic()`, which a laptop waking from sleep or a user setting
the clock back does not move (DESIGN §2).
"""

from __future__ import annotations

import datetime as dt

_offset = dt.timedelta(0)


def utcnow() -> dt.datetime:
    """Naive UTC: SQLite stores it as sortable text; the API adds the Z."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) + _offset


def jump(seconds: float) -> None:
    """Move this process's wall clock, as a wake from sleep or a clock change would (tests)."""
    global _offset
    _offset += dt.timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = dt.timedelta(0)
