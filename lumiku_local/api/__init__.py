"""The JSON API: thin routes that parse, call a service and shape the answer."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

from ..db import connection

P = ParamSpec("P")
T = TypeVar("T")

# Requests on the database at once. More threads gain nothing on SQLite under the GIL: they only
# stretch every request and hold more connections, whose files SQLite keeps open while any other
# connection of the process holds the database (it closes them when the last one goes).
DATABASE_THREADS = 2
_database_threads: RunVar[anyio.CapacityLimiter] = RunVar("lumiku_database_threads")


def _limiter() -> anyio.CapacityLimiter:
    """This event loop's limiter (each test app runs its own loop)."""
    try:
        return _database_threads.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(DATABASE_THREADS)
        _database_threads.set(limiter)
        return limiter


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` in a worker thread on a database connection opened for this call only.

    anyio's threads outlive requests: a connection left open on each of them is three open
    files (database, WAL, shared memory) per thread that nobody closes.
    """

    def call() -> T:
        with connection():
            return fn(*args, **kwargs)

    return await anyio.to_thread.run_sync(call, limiter=_limiter())


def blocking(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """Run a handler that touches SQLite in a worker thread, keeping the event loop free.

    Used instead of Litestar's `sync_to_thread=True`, which wraps the function again each time
    a module-level handler is registered on a new app (every test builds one).
    """

    @functools.wraps(fn)
    async def handler(*args: P.args, **kwargs: P.kwargs) -> T:
        return await in_thread(fn, *args, **kwargs)

    return handler
