"""What services need from the running app: settings, this boot's id, the queue and the events."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Settings


@dataclass
class Runtime:
    settings: Settings
    user_id: int = 0
    boot_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    enqueue_fn: Callable[[str, float | None, str | None], None] | None = None
    publish_fn: Callable[[dict[str, Any]], object] | None = None
    last_heartbeat: float = field(default_factory=time.time)
    # generations a worker thread of this process is running now: never taken from it, even
    # when a clock jump makes its heartbeat look stale
    running: set[str] = field(default_factory=set)
    # set when the server stops: running jobs pause at the next image or step and stay
    # `processing`, so the next start resumes them (another boot id)
    stopping: threading.Event = field(default_factory=threading.Event)

    def enqueue(
        self, generation_id: str, delay: float | None = None, model_key: str | None = None
    ) -> None:
        """`model_key`: the generation's model, when the caller has it (else the queue looks
        it up, on Redis, to hand the job to a worker that runs that model)."""
        if self.enqueue_fn is None:
            raise RuntimeError("the job queue is not running")
        self.enqueue_fn(generation_id, delay, model_key)

    def publish(self, event: dict[str, Any]) -> None:
        if self.publish_fn is not None:
            self.publish_fn(event)

    def touch(self) -> None:
        """A worker is alive and working (wall-clock, for the health endpoint)."""
        self.last_heartbeat = time.time()
