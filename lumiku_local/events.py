"""In-process fan-out of progress events to Server-Sent Events subscribers.

Publishers are worker threads; subscribers are asyncio tasks in the server's loop. Scale-out
would put a broker behind the same two methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import AsyncIterator
from typing import Any

MAX_BACKLOG = 1000


class EventBus:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[tuple[int, dict[str, Any]]]] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event: dict[str, Any]) -> None:
        """Thread-safe; never blocks the worker."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._subscribers:
            return
        with self._lock:
            event_id = next(self._ids)
        with contextlib.suppress(RuntimeError):  # the loop closed while we were publishing
            loop.call_soon_threadsafe(self._fan_out, event_id, event)

    def _fan_out(self, event_id: int, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():  # a stalled client loses its oldest events, never the worker's time
                queue.get_nowait()
            queue.put_nowait((event_id, event))

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def subscribe(
        self, keepalive: float = 15.0
    ) -> AsyncIterator[tuple[int, dict[str, Any]] | None]:
        """Yield (id, event) pairs, or None every `keepalive` seconds of silence."""
        queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        try:
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield None
        finally:
            self._subscribers.discard(queue)
