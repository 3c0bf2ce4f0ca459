"""In-process fan-out of progress events to Server-Sent Events subscribers.

Publishers are worker threads; subscribers are asyncio tasks in the server's loop. Scale-out
would put a broker behind the same two methods.

Order: events reach every subscriber in the order they were published (ids ascend). A
generation's terminal event is its last: an event of it published later (a worker's step that
lost the race with a cancel) is stale and dropped, so a page never shows a finished job running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from .models import TERMINAL_STATUSES

MAX_BACKLOG = 1000
MAX_FINISHED = 10_000  # finished generations remembered to drop their stale events
Item = tuple[int, dict[str, Any]]  # (event id, event)


class EventBus:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[Item | None]] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event: dict[str, Any]) -> bool:
        """Thread-safe; never blocks the worker. False when the event was stale and dropped."""
        with self._lock:  # held while queueing too: the loop runs the fan-outs in id order
            if not self._still_open(event):
                return False
            loop = self._loop
            if loop is None or loop.is_closed() or not self._subscribers:
                return True
            event_id = next(self._ids)
            with contextlib.suppress(RuntimeError):  # the loop closed while we were publishing
                loop.call_soon_threadsafe(self._fan_out, event_id, event)
        return True

    def _still_open(self, event: dict[str, Any]) -> bool:
        """False for an event of a generation whose terminal event already went out."""
        if event.get("type") != "generation" or not event.get("id"):
            return True
        generation_id = str(event["id"])
        if generation_id in self._finished:
            return False
        if event.get("status") in TERMINAL_STATUSES:
            self._finished[generation_id] = None
            if len(self._finished) > MAX_FINISHED:
                self._finished.popitem(last=False)
        return True

    def _fan_out(self, event_id: int, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():  # a stalled client loses its oldest events, never the worker's time
                queue.get_nowait()
            queue.put_nowait((event_id, event))

    def subscribe(self, keepalive: float = 15.0) -> AsyncIterator[Item | None]:
        """Register now; iterate for (id, event) pairs, or None every `keepalive` s of silence."""
        queue: asyncio.Queue[Item | None] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        return self._drain(queue, keepalive)

    async def _drain(
        self, queue: asyncio.Queue[Item | None], keepalive: float
    ) -> AsyncIterator[Item | None]:
        try:
            while not self._closed:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield None
                    continue
                if item is None:  # close(): the server is stopping
                    return
                yield item
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """End every stream so the server can stop without waiting on open browser tabs."""
        self._closed = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._fan_out_end)

    def _fan_out_end(self) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
