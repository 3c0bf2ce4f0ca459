"""Server-Sent Events: generation status and progress as they happen."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from litestar import get
from litestar.datastructures import State
from litestar.response import ServerSentEvent, ServerSentEventMessage


@get("/api/events", tags=["events"])
async def events(state: State) -> ServerSentEvent:
    """A stream of `generation` events; a comment line every 15 s keeps proxies from closing it."""
    bus = state.event_bus

    subscription = bus.subscribe()  # registered before "connected": no event falls in between

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        yield ServerSentEventMessage(data=None, comment="connected", retry=2000)
        async for item in subscription:
            if item is None:
                yield ServerSentEventMessage(data=None, comment="keepalive")
                continue
            event_id, event = item
            yield ServerSentEventMessage(
                data=json.dumps(event), event=event.get("type", "message"), id=event_id
            )

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-store"})


routes = [events]
