"""In-process fan-out of progress events to Server-Sent Events subscribers.

Publishers are worker threads; subscribers are asyncio tasks in the server's loop. On several
machines RedisRelay carries every process's events to every server's bus.

Order: events reach every subscriber in the order they were published (ids ascend). A
generation's terminal event is its last: an event of it published later (a worker's step that
lost the race with a cancel) is stale and dropped, so a page never shows a finished job running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from .models import TERMINAL_STATUSES

log = logging.getLogger("lumiku.events")

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


CHANNEL = "lumiku.events"


class RedisRelay:
    """Events across processes (several machines): every process publishes to one Redis
    channel; each server listens and hands what arrives to its own EventBus, so the SSE stream
    of any server shows the progress of jobs that any worker runs. Pub/sub keeps no history: a
    client that reconnects catches up from the resources (GET), as on one machine."""

    def __init__(self, url: str, bus: EventBus | None = None) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, health_check_interval=30)
        self._bus = bus
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_at = 0.0

    def publish(self, event: dict[str, Any]) -> None:
        """Never blocks a worker for long nor fails it: an event lost to an unreachable Redis
        is caught up by the page's next GET."""
        try:
            self._redis.publish(CHANNEL, json.dumps(event, separators=(",", ":")))
        except Exception as exc:
            now = time.monotonic()
            if now - self._failed_at > 30:  # once in a while, not once per event
                log.warning("could not publish an event to Redis: %s", exc)
                self._failed_at = now

    def start(self) -> None:
        """Listen (servers only): a thread that relays the channel into the bus."""
        if self._bus is None:
            return
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, args=(ready,), name="lumiku-events", daemon=True
        )
        self._thread.start()
        ready.wait(5)  # subscribed before the server takes requests, or given up on for now

    def _listen(self, ready: threading.Event) -> None:
        assert self._bus is not None
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                ready.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._bus.publish(json.loads(message["data"]))
            except Exception as exc:
                log.warning("lost the Redis event channel (%s); reconnecting", exc)
                self._stop.wait(1.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self._redis.close()
