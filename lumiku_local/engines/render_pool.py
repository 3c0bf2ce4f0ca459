"""Worker processes for renders that hold the GIL: started on first use, replaced if one dies.

DiceBear builds each avatar in pure Python (and checks a style against its JSON schema for about
a second the first time a process uses it). Run in the server's threads, that work stalls every
request and the other worker; in processes, two workers render on two cores at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .base import TransientEngineError

log = logging.getLogger("lumiku.engines")
T = TypeVar("T")


class RenderPool:
    """A spawn-context ProcessPoolExecutor of `processes` workers, created lazily."""

    def __init__(
        self,
        processes: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.processes = max(1, processes)
        self._initializer = initializer
        self._initargs = initargs
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False  # a warm-up after close() would start workers nobody stops
        self._warmed: ProcessPoolExecutor | None = None

    def _ensure(self, unless_closed: bool = False) -> ProcessPoolExecutor | None:
        with self._lock:
            if unless_closed and self._closed:
                return None
            if self._executor is None:
                # spawn, not fork: the server has threads (and a fork of them can deadlock),
                # and spawn is what Windows and macOS do anyway, frozen app included
                self._executor = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(self._initializer, self._initargs),
                )
            return self._executor

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a worker process; a dead worker is a transient error, the pool renewed."""
        executor = self._ensure()
        assert executor is not None
        try:
            return executor.submit(fn, *args).result()
        except BrokenProcessPool:
            self._discard(executor)
            raise TransientEngineError(
                "the image renderer process stopped unexpectedly; it has been restarted"
            ) from None

    @property
    def warmed(self) -> bool:
        return self._warmed is not None and self._warmed is self._executor

    def warm_up(self, fn: Callable[..., Any], *args: Any) -> list[Future[Any]]:
        """Start every worker now (one task each, submitted at once), not at the first job;
        once per pool: later calls return no tasks."""
        executor = self._ensure(unless_closed=True)
        with self._lock:
            if executor is None or self._warmed is executor:
                return []
            self._warmed = executor
        try:
            return [executor.submit(fn, *args) for _ in range(self.processes)]
        except (BrokenProcessPool, RuntimeError):  # shut down meanwhile: the next use restarts
            log.debug("render pool warm-up skipped", exc_info=True)
            return []

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (none before the first use)."""
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}  # no public accessor
        return sorted(processes)

    def close(self) -> None:
        """Stop the workers (queued renders are canceled); the next use starts new ones."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """In each worker process as it starts: end with the server, then run `initializer`."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        # a worker holds its own end of the task pipe, so a killed server (kill -9, a crash)
        # would leave it waiting forever; its parent's sentinel says when the server is gone
        threading.Thread(
            target=_exit_with, args=(parent.sentinel,), name="lumiku-parent-watch", daemon=True
        ).start()
    if initializer is not None:
        initializer(*initargs)


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)
