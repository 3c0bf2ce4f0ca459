"""`lumiku worker`: a process that only generates, beside servers, on this or another machine.

It shares the servers' PostgreSQL database, Redis queue and files folder (README "Running on
several machines"); it serves no HTTP. SIGTERM or Ctrl+C stops it gracefully: running jobs stop
at the next image or step and stay `processing` under its boot id, which it removes from the
worker table, so another worker (or its next start) resumes them at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from . import backends
from .config import Settings

log = logging.getLogger("lumiku.worker")


def run_worker(settings: Settings) -> int:
    from .app import build_core, open_data
    from .cli import _fail, _setup_logging

    if settings.embedded:
        return _fail(
            "lumiku worker runs beside servers on a shared PostgreSQL database and Redis queue: "
            "set database_url (postgresql://…) and queue_url (redis://…). On one machine, "
            "`lumiku` runs its own workers."
        )
    if not settings.run_workers:
        return _fail("a worker with no workers would do nothing: leave out --no-workers")
    _setup_logging(settings)
    found = backends.problems(settings)
    if found:
        return _fail("; ".join(found))
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for name in ("SIGTERM", "SIGINT"):
        signal.signal(getattr(signal, name), on_signal)
    core = build_core(settings, "worker")
    try:
        open_data(settings, core.runtime)
        core.job_queue.start()
        models = ", ".join(sorted(settings.model_filter)) or "every model"
        print(
            f"Lumiku worker {core.runtime.boot_id[:8]} is running {settings.workers} "
            f"thread(s) for {models} (Ctrl+C stops it)",
            flush=True,
        )
        stop.wait()
    finally:
        core.stop()
    log.info("worker %s stopped", core.runtime.boot_id)
    return 0
