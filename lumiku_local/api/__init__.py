"""The JSON API: thin routes that parse, call a service and shape the answer."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")


def blocking(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """Run a handler that touches SQLite in a worker thread, keeping the event loop free.

    Used instead of Litestar's `sync_to_thread=True`, which wraps the function again each time
    a module-level handler is registered on a new app (every test builds one).
    """

    @functools.wraps(fn)
    async def handler(*args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return handler
