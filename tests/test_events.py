"""The event bus: what subscribers (the pages' /api/events streams) receive, and in which order."""

from __future__ import annotations

import asyncio
import sys
import threading

from conftest import wait_for

from lumiku_local.events import EventBus


def generation(status: str, generation_id: str = "g1") -> dict:
    return {"type": "generation", "id": generation_id, "status": status}


def received(events: list[dict]) -> list[tuple[int, dict]]:
    """Publish `events` from a worker thread, one after the other; return what a subscriber got."""

    async def scenario() -> list[tuple[int, dict]]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        stream = bus.subscribe(keepalive=60)

        def publish_all() -> None:
            for event in [*events, {"type": "end"}]:
                bus.publish(event)

        worker = threading.Thread(target=publish_all)
        worker.start()
        items = []
        async for item in stream:
            if item is not None and item[1]["type"] == "end":
                break
            items.append(item)
        worker.join()
        return items

    # a loop of its own in a thread of its own: the browser tests' session-wide Playwright keeps
    # an event loop running in the main thread, where asyncio.run would refuse to start
    result: list[list[tuple[int, dict]]] = []
    runner = threading.Thread(target=lambda: result.append(asyncio.run(scenario())))
    runner.start()
    runner.join(30)
    assert result, "the subscriber received nothing within 30 s"
    return result[0]


def test_a_generations_events_after_its_terminal_one_are_dropped():
    """A worker's step computed before a cancel but published after it must not make the page
    show the canceled job as running again."""
    items = received(
        [
            generation("processing"),
            generation("canceled"),
            generation("processing"),  # stale: the worker's step lost the race with the cancel
            generation("processing", "g2"),  # another generation goes on as usual
        ]
    )
    assert [(e["id"], e["status"]) for _, e in items] == [
        ("g1", "processing"),
        ("g1", "canceled"),
        ("g2", "processing"),
    ]
    assert [event_id for event_id, _ in items] == [1, 2, 3]


def test_events_reach_subscribers_in_the_order_they_were_published():
    """Two threads publish; the first one is slow to hand its event to the server's loop. The
    second must not overtake it: ids and delivery order are the publishing order."""
    bus = EventBus()
    handed: list[int] = []
    second_done = threading.Event()

    def publish_second() -> None:
        bus.publish(generation("processing", "second"))
        second_done.set()

    second = threading.Thread(target=publish_second)

    class Loop:  # the server's loop, as far as publish sees it
        def is_closed(self) -> bool:
            return False

        def call_soon_threadsafe(self, callback, event_id, event) -> None:
            if event["id"] == "first":  # the first publisher pauses here ...
                second.start()
                # ... until the second publisher is through, or waits on the bus for the first
                wait_for(lambda: second_done.is_set() or waiting_on_the_bus(second))
            handed.append(event_id)

    bus.bind(Loop())  # type: ignore[arg-type]
    bus._subscribers.add(asyncio.Queue())  # one subscriber, so events are handed on
    bus.publish(generation("processing", "first"))
    second.join(10)
    assert handed == [1, 2]


def waiting_on_the_bus(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or 0)
    return frame is not None and frame.f_code is EventBus.publish.__code__
