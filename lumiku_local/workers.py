"""Who runs generations: one row per live process in the `worker` table, and leases for roles
only one process holds at a time (DESIGN §2).

A job names its worker by boot id. Its worker is *gone* when the row is missing, when its
heartbeat (the database's clock) is older than the lease, or when its process on this host has
exited: then, and only then, may another process take its jobs at once. A job of a worker whose
heartbeat is fresh is never taken (unless the job's own lease expired: its thread hung).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import psutil
from peewee import IntegrityError

from . import db
from .db import write_transaction
from .models import Lease, Worker

log = logging.getLogger("lumiku.workers")

HOST = socket.gethostname()


@dataclass(frozen=True)
class Me:
    """This process as the worker table knows it."""

    boot_id: str
    kind: str  # "embedded", "worker" or "server"
    threads: int
    models: tuple[str, ...] = ()


def register(me: Me) -> None:
    """Record this process (again): at start, and whenever its row went missing."""
    now = db.now()
    values: dict[str, Any] = {
        "host": HOST,
        "pid": os.getpid(),
        "kind": me.kind,
        "threads": me.threads,
        "models": list(me.models),
        "heartbeat_at": now,
    }
    with write_transaction(f"worker:{me.boot_id}"):
        updated = Worker.update(**values).where(Worker.boot_id == me.boot_id).execute()
        if not updated:
            Worker.create(boot_id=me.boot_id, started_at=now, **values)


def beat(me: Me) -> None:
    """This process is alive: refresh its heartbeat, or record it again if it was forgotten (a
    laptop that slept past the lease, whose row another process cleared)."""
    updated = Worker.update(heartbeat_at=db.now_sql()).where(Worker.boot_id == me.boot_id).execute()
    if not updated:
        log.warning("this process's worker row was gone (asleep past the lease?); recording it")
        register(me)


def unregister(boot_id: str) -> None:
    """A clean stop: its jobs are paused for whoever starts next, at once."""
    Worker.delete().where(Worker.boot_id == boot_id).execute()


def _exited(row: Worker) -> bool:
    """A process of this host that is no longer running (a fact, not a guess)."""
    return row.host == HOST and row.pid != os.getpid() and not psutil.pid_exists(row.pid)


def forget_gone(lease_seconds: float, keep: str) -> list[str]:
    """Delete the rows of workers that are gone: exited on this host, or silent for longer than
    the lease. Returns their boot ids. `keep`: this process's own boot id."""
    now = db.now()
    gone = [
        row.boot_id
        for row in Worker.select()
        if row.boot_id != keep and (_exited(row) or is_stale(row.heartbeat_at, now, lease_seconds))
    ]
    if gone:
        Worker.delete().where(Worker.boot_id.in_(gone)).execute()
        log.info("workers gone: %s", ", ".join(gone))
    return gone


def is_stale(heartbeat_at: dt.datetime | None, now: dt.datetime, lease_seconds: float) -> bool:
    """No heartbeat within the lease; one from the future beyond it (a clock set back) is no
    proof of life either."""
    if heartbeat_at is None:
        return True
    age = (now - heartbeat_at).total_seconds()
    return not -lease_seconds <= age <= lease_seconds


def _live_rows(now: dt.datetime, lease_seconds: float) -> list[Worker]:
    """Workers whose heartbeat is fresh and whose process has not exited, oldest first."""
    rows = Worker.select().order_by(Worker.started_at, Worker.boot_id)
    return [
        row
        for row in rows
        if not is_stale(row.heartbeat_at, now, lease_seconds) and not _exited(row)
    ]


def live_boots(now: dt.datetime, lease_seconds: float) -> set[str]:
    return {row.boot_id for row in _live_rows(now, lease_seconds)}


def live(lease_seconds: float) -> list[dict[str, Any]]:
    """Every live process, for GET /api/health/workers."""
    now = db.now()
    return [
        {
            "bootId": row.boot_id,
            "host": row.host,
            "pid": row.pid,
            "kind": row.kind,
            "threads": row.threads,
            "models": list(row.models or []),
            "startedAt": db.iso(row.started_at),
            "heartbeatAt": db.iso(row.heartbeat_at),
            "heartbeatAgeSeconds": round((now - row.heartbeat_at).total_seconds(), 3),
        }
        for row in _live_rows(now, lease_seconds)
    ]


def hold(name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease `name` for `seconds`; False while another holder's is unexpired.

    The reconciler and the files sweep run only in the process that holds theirs, so several
    servers and workers never reconcile at once."""
    now = db.now()
    until = now + dt.timedelta(seconds=seconds)
    with write_transaction(f"lease:{name}"):
        taken = (
            Lease.update(holder=holder, expires_at=until)
            .where((Lease.name == name) & ((Lease.holder == holder) | (Lease.expires_at < now)))
            .execute()
        )
        if taken:
            return True
        if Lease.select().where(Lease.name == name).exists():
            return False
        try:
            with db.savepoint():
                Lease.create(name=name, holder=holder, expires_at=until)
        except IntegrityError:
            return False
        return True


def release(name: str, holder: str) -> None:
    Lease.delete().where((Lease.name == name) & (Lease.holder == holder)).execute()
