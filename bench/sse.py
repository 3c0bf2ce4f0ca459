"""/api/events read in a thread, for the benches that run the app in their own process."""

from __future__ import annotations

import json
import threading
import time


class Events:
    """Collects /api/events with arrival times (monotonic)."""

    def __init__(self, url: str) -> None:
        import httpx

        self.items: list[tuple[float, dict]] = []
        self.connected = threading.Event()
        self._client = httpx.Client(timeout=None)
        threading.Thread(target=self._listen, args=(url,), daemon=True).start()

    def _listen(self, url: str) -> None:
        try:
            with self._client.stream("GET", f"{url}/api/events") as stream:
                for line in stream.iter_lines():
                    if line.startswith(":"):
                        self.connected.set()
                    elif line.startswith("data:") and line[5:].strip():
                        self.items.append((time.monotonic(), json.loads(line[5:])))
        except Exception:  # the server stopped: this listener ends with it
            return

    def wait(self, generation_id: str, status: str, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for moment, event in list(self.items):
                if event.get("id") == generation_id and event.get("status") == status:
                    return moment
            time.sleep(0.002)
        raise TimeoutError(f"{generation_id} never reached {status}")

    def of(self, generation_id: str) -> list[tuple[float, dict]]:
        return [(m, e) for m, e in list(self.items) if e.get("id") == generation_id]
