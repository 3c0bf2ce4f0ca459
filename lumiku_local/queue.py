"""The Huey queue (queue.db, or Redis for several machines), its thread consumer, instant
wake-up, this process's worker row and the reconciler."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from huey import Huey
from huey.consumer import Consumer
from huey.storage import RedisStorage, SqliteStorage

from . import failpoints, workers
from .config import Settings
from .db import connection, database

log = logging.getLogger("lumiku.queue")

TASK_NAME = "run_generation"
RECONCILER = "reconciler"  # the lease of the one process that reconciles


class WakingSqliteStorage(SqliteStorage):
    """SqliteStorage that blocks in dequeue() until enqueue() wakes it (DESIGN §2).

    Huey's worker sleeps between polls (up to 10 s) unless the storage is `blocking`. Here an
    idle worker waits on a semaphore released by every enqueue of this process, so a job
    starts within a millisecond or two; the timeout catches tasks enqueued by another process.
    """

    blocking = True

    def __init__(self, *args: Any, wake_timeout: float = 1.0, **kwargs: Any) -> None:
        self.wake_timeout = wake_timeout
        self._wake = threading.Semaphore(0)
        self.polled_at: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        # WAL + NORMAL cannot corrupt; a lost last enqueue is re-made by the reconciler
        conn.execute("pragma synchronous=NORMAL")
        return conn

    def enqueue(self, data: bytes, priority: float | None = None) -> None:
        super().enqueue(data, priority)
        self._wake.release()

    def dequeue(self) -> bytes | None:
        failpoints.hit("worker.dequeue")
        self.polled_at[threading.current_thread().name] = time.time()
        data = super().dequeue()
        if data is None and self._wake.acquire(timeout=self.wake_timeout):
            data = super().dequeue()
        return data

    def wake_all(self, count: int) -> None:
        for _ in range(count):
            self._wake.release()


class ModelRedisStorage(RedisStorage):
    """Huey's RedisStorage with one list per model: a worker BRPOPs the lists of the models it
    runs (`lumiku worker --models`), so a job waits for a worker that can run it and pickup is
    immediate (BRPOP blocks; no polling). Unrouted tasks go to Huey's own list, which every
    worker that runs all models reads too.

    BRPOP takes from the first non-empty list it is given, so each dequeue starts at the next
    list in turn: first in, first out within a model, and round robin across models (a stream
    of Instant jobs cannot starve a FLUX one)."""

    def __init__(self, *args: Any, models: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.only = models
        self.known: tuple[str, ...] = ()
        self.polled_at: dict[str, float] = {}
        self._turn = 0
        self.serve(())

    def key_for(self, model_key: str) -> str:
        return f"{self.queue_key}.model.{re.sub('[^A-Za-z0-9_.:-]', '_', model_key)}"

    def serve(self, model_keys: Iterable[str]) -> None:
        """The catalog's model keys (read at start and by every reconcile)."""
        self.known = tuple(sorted(set(model_keys) | self.only))
        served = [key for key in self.known if not self.only or key in self.only]
        lists = [self.key_for(key) for key in served]
        self.read_keys = lists if self.only else [self.queue_key, *lists]

    def all_keys(self) -> list[str]:
        return [self.queue_key, *(self.key_for(key) for key in self.known)]

    def push(self, model_key: str, data: bytes) -> None:
        self.conn.lpush(self.key_for(model_key), data)

    def dequeue(self) -> bytes | None:
        failpoints.hit("worker.dequeue")
        self.polled_at[threading.current_thread().name] = time.time()
        keys = self.read_keys
        if len(keys) > 1:  # threads may race on the turn: a list read twice in a row is fine
            self._turn = turn = (self._turn + 1) % len(keys)
            keys = keys[turn:] + keys[:turn]
        try:
            popped = self.conn.brpop(keys, timeout=self.read_timeout)
        except (TimeoutError, TypeError, IndexError):
            return None
        return None if popped is None else popped[1]

    def wake_all(self, count: int) -> None:
        pass  # BRPOP returns within read_timeout by itself

    def queue_size(self) -> int:
        pipe = self.conn.pipeline()
        for key in self.all_keys():
            pipe.llen(key)
        return sum(pipe.execute())

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Oldest first within each list, the lists taken in turn (as dequeue takes them)."""
        pipe = self.conn.pipeline()
        for key in self.all_keys():
            pipe.lrange(key, 0, -1)
        lists = [values[::-1] for values in pipe.execute()]
        items = [item for turn in zip_longest(*lists) for item in turn if item is not None]
        return items[:limit] if limit else items

    def flush_queue(self) -> None:
        self.conn.delete(*self.all_keys())

    def initialize_schema(self) -> None:
        pass  # Redis has none

    def close(self) -> None:
        self.pool.disconnect()


class EmbeddedConsumer(Consumer):
    """Huey's consumer without signal handlers: uvicorn owns SIGINT/SIGTERM."""

    def _set_signal_handlers(self) -> None:
        pass


@dataclass
class WorkerHealth:
    alive: bool
    workers: int
    workers_alive: int
    problems: list[str] = field(default_factory=list)
    last_heartbeat: float | None = None


class JobQueue:
    """Owns the Huey instance, the embedded consumer and the supervisor thread."""

    def __init__(
        self,
        settings: Settings,
        run_task: Callable[[str], None],
        reconcile: Callable[[set[str]], object],
        me: workers.Me | None = None,
        route: Callable[[str], str | None] | None = None,
        model_keys: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        """`me`: this process in the worker table; `route`: a generation's model key, so a
        Redis queue hands it to a worker that runs that model; `model_keys`: the catalog's."""
        self.settings = settings
        self.me = me or workers.Me(boot_id="", kind="embedded", threads=settings.workers)
        self._route = route
        self._model_keys = model_keys
        self.storage: Any
        if settings.uses_redis:
            self.huey = Huey(
                "lumiku",
                results=False,
                utc=True,
                storage_class=ModelRedisStorage,
                url=settings.queue_url,
                read_timeout=settings.wake_timeout_seconds,
                models=settings.model_filter,
            )
        else:
            self.huey = Huey(
                "lumiku",
                results=False,
                utc=True,
                storage_class=WakingSqliteStorage,
                filename=str(settings.queue_path),
                wake_timeout=settings.wake_timeout_seconds,
                create_tables=False,  # created at start(), when the data dir exists
            )
        self.storage = self.huey.storage

        def run_generation(generation_id: str) -> None:
            run_task(generation_id)  # on this worker thread's own connection, kept open

        def close_connection() -> None:  # runs in each worker thread as it stops
            if not database.is_closed():
                database.close()

        self.task = self.huey.task(name=TASK_NAME)(run_generation)
        self.huey.on_shutdown()(close_connection)
        self._reconcile = reconcile
        self.consumer: EmbeddedConsumer | None = None
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.dead_since: dict[str, float] = {}
        self.reconciled_at: float | None = None
        self.beat_at: float | None = None
        self._leading = False  # this process held the reconciler's lease at its last round
        self._timers: dict[str, threading.Timer] = {}
        self._timers_lock = threading.Lock()

    # -- producer side

    def enqueue(
        self, generation_id: str, delay: float | None = None, model_key: str | None = None
    ) -> None:
        """Queue the job now, or after `delay` seconds of monotonic time.

        A delayed job waits on a timer, not in Huey's schedule: Huey compares the wall clock,
        so a clock set back an hour would hold a retry for an hour. The row's next_attempt_at
        is the record that survives a restart (the reconciler enqueues it when due).
        """
        if not delay:
            self._push(generation_id, model_key)
            return
        timer = threading.Timer(delay, self._enqueue_due, args=(generation_id, model_key))
        timer.daemon = True
        with self._timers_lock:
            self._timers[generation_id] = timer
        timer.start()

    def _enqueue_due(self, generation_id: str, model_key: str | None) -> None:
        with self._timers_lock:
            self._timers.pop(generation_id, None)
        if self._stop.is_set():
            return  # pending in the database: the next start enqueues it
        try:
            with connection():
                self._push(generation_id, model_key)
        except Exception:
            log.exception("could not enqueue the retry of %s; the reconciler will", generation_id)

    def _push(self, generation_id: str, model_key: str | None) -> None:
        if not isinstance(self.storage, ModelRedisStorage):
            self.task(generation_id)
            return
        if model_key is None and self._route is not None:
            model_key = self._route(generation_id)
        data = self.huey.serialize_task(self.task.s(generation_id))
        if model_key is None:
            self.storage.enqueue(data)
        else:
            self.storage.push(model_key, data)

    def queued_generation_ids(self) -> set[str]:
        """Ids with a task waiting in the queue or the schedule (a cheap read of queue.db), or
        on a retry timer."""
        ids = set()
        for task in self.huey.pending() + self.huey.scheduled():
            if task.args:
                ids.add(task.args[0])
        with self._timers_lock:
            ids.update(self._timers)
        return ids

    def pickup_order(self) -> list[str]:
        """Generation ids in the order the workers will dequeue them: Huey's queue as its
        dequeue() reads it (priority, then arrival), then its schedule by time. An id queued
        twice (a reconciler's re-enqueue) counts where it first appears. Retry timers are not
        here: their rows' next_attempt_at says when they join the end of the queue."""
        ids: dict[str, None] = {}
        for task in self.huey.pending() + self.huey.scheduled():
            if task.args:
                ids.setdefault(task.args[0], None)
        return list(ids)

    def queue_length(self) -> int:
        with self._timers_lock:
            waiting = len(self._timers)
        return self.storage.queue_size() + self.storage.schedule_size() + waiting

    # -- consumer side

    def start(self) -> None:
        """Record this process, recover the work of processes that are gone (its own earlier
        run among them: at once, not after a lease), then start the worker threads."""
        self.storage.initialize_schema()
        with connection():
            workers.register(self.me)
        if self.settings.run_workers:
            self.consumer = EmbeddedConsumer(
                self.huey,
                workers=self.settings.workers,
                worker_type="thread",
                periodic=False,
                check_worker_health=False,
                scheduler_interval=1,
            )
        self.reconcile_now(at_start=True)
        if self.consumer is not None:
            self.consumer.start()
        self._supervisor = threading.Thread(
            target=self._supervise, name="lumiku-supervisor", daemon=True
        )
        self._supervisor.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully: running jobs finish their current image, queued work stays queued."""
        self._stop.set()
        with self._timers_lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        if self.consumer is not None:
            self.consumer.stop_flag.set()
            self.storage.wake_all(self.settings.workers)
            deadline = time.monotonic() + timeout
            for _, thread in self.consumer.worker_threads + [(None, self.consumer.scheduler)]:
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        try:
            with connection():
                workers.release(RECONCILER, self.me.boot_id)
                # paused jobs stay `processing` under this boot: gone now, so the next process
                # to start (or the reconciler) resumes them at once
                workers.unregister(self.me.boot_id)
        except Exception:
            log.exception("could not record this process as stopped; its lease will expire")
        self.storage.close()

    def _serve_models(self) -> None:
        if isinstance(self.storage, ModelRedisStorage):
            self.storage.serve(self._model_keys())

    def reconcile_now(self, at_start: bool = False) -> None:
        """Put unfinished work back in the queue, in the one process holding the reconciler's
        lease. At start a process reconciles whatever the lease says: it may be recovering its
        own earlier run's jobs, which must not wait for another holder's next turn (a second
        enqueue of a job is harmless: a claim takes a job once)."""
        try:
            with connection():
                lead = workers.hold(
                    RECONCILER, self.me.boot_id, self.settings.reconcile_seconds * 3
                )
                self._leading = lead
                if not (lead or at_start):
                    return
                workers.forget_gone(self.settings.lease_seconds, keep=self.me.boot_id)
                self._serve_models()
                self._reconcile(self.queued_generation_ids())
            self.reconciled_at = time.time()
        except Exception:
            log.exception("reconciler failed; it will run again")

    def _supervise(self) -> None:
        next_reconcile = time.monotonic() + self.settings.reconcile_seconds
        while not self._stop.wait(self.settings.worker_check_seconds):
            self._check_workers()
            self._beat()
            if time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + self.settings.reconcile_seconds
                self.reconcile_now()

    def _beat(self) -> None:
        try:
            with connection():
                workers.beat(self.me)
                # the reconciler's holder notices a worker gone within a beat, not at its next
                # round: the gone worker's jobs resume one lease after its last heartbeat
                gone = self._leading and workers.forget_gone(
                    self.settings.lease_seconds, keep=self.me.boot_id
                )
            self.beat_at = time.time()
        except Exception:
            log.exception("could not record this process's heartbeat; trying again")
            return
        if gone:
            self.reconcile_now()

    def _check_workers(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        now = time.time()
        for _, thread in consumer.worker_threads:
            if not thread.is_alive() and thread.name not in self.dead_since:
                log.error(
                    "worker %s died; restarting it in %ss",
                    thread.name,
                    self.settings.worker_restart_seconds,
                )
                self.dead_since[thread.name] = now
        restart_due = [
            name
            for name, since in self.dead_since.items()
            if now - since >= self.settings.worker_restart_seconds
        ]
        if restart_due and not self._stop.is_set():
            consumer.check_worker_health()  # Huey replaces dead workers with fresh threads
            for name in restart_due:
                self.dead_since.pop(name, None)
            self.reconcile_now()  # the dead worker may have held a job

    def health(self) -> WorkerHealth:
        consumer = self.consumer
        if consumer is None and not self.settings.run_workers:
            return WorkerHealth(True, 0, 0, [], self.beat_at)  # `serve --no-workers`
        if consumer is None:
            return WorkerHealth(False, self.settings.workers, 0, ["the job queue is not running"])
        alive = [thread for _, thread in consumer.worker_threads if thread.is_alive()]
        problems = [
            f"worker thread {name} died; it restarts automatically"
            for name in sorted(self.dead_since)
        ]
        if len(alive) < len(consumer.worker_threads) and not problems:
            problems.append(f"{len(consumer.worker_threads) - len(alive)} worker thread(s) dead")
        if not consumer.scheduler.is_alive():
            problems.append("the queue scheduler thread is not running")
        polled = list(self.storage.polled_at.values())
        return WorkerHealth(
            alive=not problems,
            workers=len(consumer.worker_threads),
            workers_alive=len(alive),
            problems=problems,
            last_heartbeat=max(polled) if polled else None,
        )
