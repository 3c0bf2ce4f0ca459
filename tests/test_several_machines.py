"""One server and two `lumiku worker` processes on PostgreSQL + Redis; one is SIGKILLed mid-batch
(issue 13). Real processes, real servers (tests/servers.py), the Instant engine held by a
failpoint so the batch is still running when the kill comes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
from conftest import API, wait_for

LEASE = 3.0


def _env(postgres_url: str, redis_url: str, files: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LUMIKU_DATABASE_URL": postgres_url,
        "LUMIKU_QUEUE_URL": redis_url,
        "LUMIKU_FILES_DIR": str(files),
        "LUMIKU_TRAY": "0",
        "LUMIKU_LEASE_SECONDS": str(LEASE),
        **extra,
    }


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "lumiku_local", *args], env=env, stdout=out, stderr=out
        )


def _call(base: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "origin": base},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class _Events:
    """The server's /api/events, read in a thread: every generation event, as received."""

    def __init__(self, base: str) -> None:
        url = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.open.wait(30), "the event stream did not open"

    def _read(self) -> None:
        try:
            self.conn.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
            response = self.conn.getresponse()
            assert self.conn.sock is not None
            self.conn.sock.settimeout(None)
            while line := response.readline():
                text = line.decode().rstrip("\r\n")
                if text.startswith(":"):
                    self.open.set()
                elif text.startswith("data:"):
                    event = json.loads(text[5:])
                    if event.get("type", "generation") == "generation":
                        with self.lock:
                            self.seen.append(event)
        except (OSError, http.client.HTTPException, ValueError):
            pass  # closed at the end of the test

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def progress(self, ids: set[str], since: int = 0) -> list[dict]:
        """The events of `ids` (from the `since`th on) that report a delivered image."""
        with self.lock:
            return [e for e in self.seen[since:] if e.get("id") in ids and e.get("countCompleted")]

    def close(self) -> None:
        if self.conn.sock is not None:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.conn.close()


def test_a_sigkilled_worker_loses_nothing_and_its_jobs_finish_elsewhere(
    tmp_path, postgres_url, redis_url
):
    files = tmp_path / "files"
    env = _env(postgres_url, redis_url, files)
    server_home = tmp_path / "server"
    processes = [
        _start(
            ["serve", "--no-workers", "--no-browser", "--port", "0", "--home", str(server_home)],
            env,
            tmp_path / "server.log",
        )
    ]
    try:
        record = wait_for(lambda: (server_home / "server.json").is_file(), timeout=60)
        assert record
        base = json.loads((server_home / "server.json").read_text())["url"]
        wait_for(lambda: _healthy(base), timeout=60)
        slow = {"LUMIKU_FAILPOINTS": "engine.generate=delay(0.5)"}
        workers = [
            _start(
                ["worker", "--workers", "1", "--home", str(tmp_path / f"w{n}")],
                {**env, **slow},
                tmp_path / f"w{n}.log",
            )
            for n in (1, 2)
        ]
        processes += workers
        live = lambda: [  # noqa: E731
            p
            for p in _call(base, "GET", "/api/health/workers")["processes"]
            if p["kind"] == "worker"
        ]
        wait_for(lambda: len(live()) == 2, timeout=60)
        pid_of = {p["pid"]: p["bootId"] for p in live()}
        events = _Events(base)  # the server's stream: workers' events reach it only via Redis
        project = _call(base, "POST", f"{API}/projects", {"name": "team"})["id"]
        ids = [
            _call(
                base,
                "POST",
                f"{API}/projects/{project}/avatars/generate",
                {"prompt": "a wizard", "count": 4},
            )["generation"]["id"]
            for _ in range(4)
        ]
        with psycopg.connect(postgres_url, autocommit=True) as db:

            def owners() -> dict[str, str]:
                rows = db.execute(
                    "SELECT id, boot_id FROM avatar_generation WHERE status = 'processing'"
                ).fetchall()
                return dict(rows)

            victim = workers[0]
            victim_boot = pid_of[victim.pid]

            # the kill comes while the victim holds a job it has not finished, once the server's
            # stream has carried an image of that job (the victim's progress, through Redis)
            def victim_progress() -> list[str]:
                held = {job for job, boot in owners().items() if boot == victim_boot}
                return [e["id"] for e in events.progress(held)]

            assert wait_for(victim_progress, timeout=60)
            seen: dict[str, str] = owners()
            held = [job for job, boot in seen.items() if boot == victim_boot]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            cut = events.count()
            # what the victim delivered of its jobs: any image beyond is the survivor's
            by_victim = dict(
                db.execute(
                    "SELECT generation_id, COUNT(*) FROM avatar WHERE generation_id = ANY(%s) "
                    "GROUP BY generation_id",
                    (held,),
                ).fetchall()
            )
            changes = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                for job, boot in owners().items():
                    if job in seen and seen[job] != boot:
                        changes.append((job, seen[job], boot))
                    seen[job] = boot
                statuses = [
                    status
                    for (status,) in db.execute(
                        "SELECT status FROM avatar_generation WHERE id = ANY(%s)", (ids,)
                    ).fetchall()
                ]
                if all(status == "completed" for status in statuses):
                    break
                time.sleep(0.05)
            assert statuses == ["completed"] * 4, statuses
            # a job changed hands only from the killed worker: never while a heartbeat was fresh
            assert all(old == victim_boot for _, old, _ in changes), changes
            # what the killed worker held was finished by the other one (read from the rows, so
            # a busy machine's slow sampling above cannot miss it)
            finishers = dict(
                db.execute(
                    "SELECT id, boot_id FROM avatar_generation WHERE id = ANY(%s)", (held,)
                ).fetchall()
            )
            assert held and all(boot != victim_boot for boot in finishers.values()), finishers
            # ...and the stream carried the survivor's progress too (after the kill, every image
            # is the survivor's), the takeover's among it
            taken_over = lambda: [  # noqa: E731
                e
                for e in events.progress(set(held), since=cut)
                if e["countCompleted"] > by_victim.get(e["id"], 0)
            ]
            assert wait_for(taken_over, timeout=30)
            avatars = db.execute(
                "SELECT id, image_file, generation_id, variation_key FROM avatar"
            ).fetchall()
            assert len(avatars) == 16
            assert len({row[1] for row in avatars}) == 16  # no duplicate file
            assert len({(row[2], row[3]) for row in avatars}) == 16
            ((ledger,),) = db.execute("SELECT SUM(amount) FROM credit_ledger").fetchall()
            ((balance,),) = db.execute('SELECT credit_balance FROM "user"').fetchall()
            assert ledger == balance == 1000 - 16
        for avatar_id, *_ in avatars:
            request = urllib.request.Request(f"{base}{API}/avatars/{avatar_id}/image")
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
        doctor = subprocess.run(
            [sys.executable, "-m", "lumiku_local", "doctor", "--home", str(server_home)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        events.close()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False
