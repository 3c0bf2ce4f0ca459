"""Core performance figures of Lumiku Local, measured on the real server over loopback HTTP.

What it measures, each printed against its target with PASS or FAIL:

1. Cold start: seconds from just before `Popen` of `python -m lumiku_local serve` on a fresh
   (empty) data folder to the first HTTP 200 of GET /health, median of N starts. A bare
   Litestar + uvicorn hello-world (bench/hello_app.py) is started the same way, interleaved
   with Lumiku, for the ratio. A second start on the same, now initialised, folder gives the
   warm-home median (no target).
2. Idle memory: RSS of the server process about 2 s after its first 200 (and the
   hello-world's, for comparison).
3. Pickup latency: created -> processing of one-image generations submitted one at a time,
   i.e. started_at - created_at, read with microsecond precision from lumiku.db (the API's
   createdAt/startedAt have only millisecond precision and are shown as a cross-check); then
   again after the server has sat idle for a minute.
4. Instant batch of 4: wall time from just before POST .../avatars/generate {"count": 4}
   until its `completed` event arrives on the SSE stream /api/events. SSE is used rather than
   polling because it timestamps the completion within a fraction of a millisecond and adds
   no load to the 2 cores the worker is using.
5. Project read: GET of a project holding 1,000 avatars, all generated through the API
   (125 generations of 8 on a fresh data folder, exactly the 1,000 starting credits).
6. For information, no target: the round trip of a small GET on a reused keep-alive
   connection, as a browser makes it.
7. Load: 50 clients at once for 30 s, each on its own keep-alive connection, GETting the
   project list (of 560 projects), /api/me, a project, the /projects page and /health in turn
   while one more keeps generating Instant batches of 4: p50/p95/p99, and the server's open
   files before, right after and settled after; the same 50 clients on the hello-world.
8. Style picker, cold: Chromium (Debian's, through Playwright) opens a project page of a server
   that has just started, opens the style picker and presses Generate: from navigation start to
   all 61 samples loaded and decoded (timed in the page), the Generate request's round trip
   (the button is grey meanwhile) and click to the generation's completed event; then the same
   again on the now warm server, in a fresh browser context (no cache).
9. Instant throughput: batches of 8 queued at once on a server with 1 worker, then 2 (one
   render process each): images per second, and the ratio.

Run it from the repository root with the project's virtualenv active:

    python bench/core.py            # the full run: about 4 minutes on 2 cores
    python bench/core.py --quick    # a smoke run: fewer repetitions, 5 s instead of the idle minute
    python bench/core.py --only load,picker,throughput   # some steps (names: see --help)

Servers listen on 127.0.0.1 only and keep their data in temp folders; every subprocess is
stopped on exit, Ctrl+C included. This is a benchmark, not a test: it exits 0 whatever the
figures say, and 1 only when it could not take them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
HELLO_APP = ROOT / "bench" / "hello_app.py"
ONE_PIXEL = ROOT / "bench" / "one_pixel.py"
ONE_PIXEL_MODEL = "bench:one-pixel"  # bench/one_pixel.MODEL_KEY
HOST = "127.0.0.1"
API = "/api/apps/avatar-creator"
POLL_S = 0.005  # how often /health is polled while nothing listens yet
# Lumiku binds its socket before it builds the app, so a probe connects at once and waits for
# the first answer: the timeout must outlast start-up, or the answer would go to a closed probe.
PROBE_TIMEOUT_S = 2.0
START_TIMEOUT_S = 60.0
RSS_DELAY_S = 2.0
TERMINAL = ("completed", "failed", "canceled")
# The 1,000 avatars of the project-read test are generated at the engine's smallest size: the
# GET reads rows, never images, and 64 px instead of 512 px cuts the fill from ~60 s to seconds.
FILL_SIZE = 64
KEEPALIVE_GETS = 20
CHROMIUM = "/usr/bin/chromium"  # Debian's, as tests/browser.py drives it
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Plan:
    """How many repetitions of each measurement a run makes."""

    starts: int = 7
    memory_samples: int = 3
    pickups: int = 50
    idle_seconds: float = 60.0
    pickups_after_idle: int = 10
    batches: int = 15
    fill_generations: int = 125  # of 8 images: 1,000 avatars for 1,000 credits
    project_gets: int = 100
    load_clients: int = 50
    load_seconds: float = 30.0
    load_projects: int = 560  # as many as the probe that found the leak listed
    throughput_batches: int = 8
    bursts: int = 3
    burst_jobs: int = 200
    instant_images: int = 100


FULL = Plan()
QUICK = Plan(
    starts=3,
    memory_samples=1,
    pickups=15,
    idle_seconds=5.0,
    pickups_after_idle=5,
    batches=5,
    project_gets=30,
    load_seconds=10.0,
    throughput_batches=4,
    bursts=1,
    instant_images=40,
)


class BenchError(RuntimeError):
    """The benchmark could not take a figure (a server did not start, a job failed...)."""


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ statistics and the report


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: int) -> float:
    """The pct-th percentile, interpolated between the closest ranks."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


@dataclass
class Row:
    label: str
    value: str
    target: str = ""
    ok: bool | None = None  # None: reported for information, no target


@dataclass
class Report:
    sections: list[tuple[str, list[Row]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(self, title: str) -> list[Row]:
        rows: list[Row] = []
        self.sections.append((title, rows))
        return rows

    def render(self) -> str:
        rows = [row for _, section in self.sections for row in section]
        width = max([len(row.label) for row in rows] + [40])
        value_width = max([len(row.value) for row in rows] + [10])
        header = f"{'measure':<{width}}  {'value':>{value_width}}  {'target':<10}  result"
        lines = [header, "-" * len(header)]
        for title, section in self.sections:
            lines.append(title)
            for row in section:
                result = "" if row.ok is None else ("PASS" if row.ok else "FAIL")
                lines.append(
                    f"{row.label:<{width}}  {row.value:>{value_width}}  "
                    f"{row.target:<10}  {result}".rstrip()
                )
        judged = [row for row in rows if row.ok is not None]
        passed = sum(row.ok for row in judged)
        lines += ["-" * len(header), f"{passed} of {len(judged)} targets met"]
        if self.notes:
            lines += ["", "notes:"] + [f"  - {note}" for note in self.notes]
        return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# ------------------------------------------------------------------ subprocesses

_CHILDREN: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def child_env(home: Path | None, work: Path) -> dict[str, str]:
    """This environment without any LUMIKU_* setting that could skew a run, and with bytecode
    caching on, into a temp folder: an installed Lumiku starts from compiled bytecode, so a
    PYTHONDONTWRITEBYTECODE here must not make every start recompile the editable checkout."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LUMIKU_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    if home is not None:
        env["LUMIKU_HOME"] = str(home)
    return env


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL; also any process it started."""
    if proc.poll() is not None:
        return
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for child in family:
        with contextlib.suppress(psutil.Error):
            child.kill()


def stop_all() -> None:
    while _CHILDREN:
        stop(_CHILDREN.pop(), grace=5.0)


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def probe(port: int) -> int | None:
    """The status of GET /health, or None while nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen[bytes]
    port: int
    home: Path | None
    ready_s: float  # Popen to first 200 of /health

    def rss_bytes(self) -> int:
        """Resident memory of the server and any process it started."""
        process = psutil.Process(self.proc.pid)
        family = [process, *process.children(recursive=True)]
        return sum(member.memory_info().rss for member in family)


@contextlib.contextmanager
def serve(
    kind: str,
    home: Path | None,
    work: Path,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[Server]:
    """Start `kind` ("lumiku", "one-pixel": lumiku with bench/one_pixel.py's model, or "hello")
    on a free port, time it to the first 200, stop it. `env`: LUMIKU_* settings for this server
    (e.g. LUMIKU_WORKERS); `extra`: more `serve` arguments (--no-workers)."""
    port = free_port()
    if kind in ("lumiku", "one-pixel"):
        assert home is not None
        program = ["-m", "lumiku_local"] if kind == "lumiku" else [str(ONE_PIXEL)]
        argv = [sys.executable, *program, "serve", "--no-browser", *extra]
        argv += ["--port", str(port), "--home", str(home)]
    else:
        argv = [sys.executable, str(HELLO_APP), str(port)]
    log_path = work / "logs" / f"{kind}-{port}.log"
    with open(log_path, "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**child_env(home, work), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    _CHILDREN.append(proc)
    try:
        while (status := probe(port)) != 200:
            elapsed = time.perf_counter() - start
            if proc.poll() is not None or elapsed > START_TIMEOUT_S:
                raise BenchError(
                    f"{kind} did not answer 200 on /health (last status {status}, "
                    f"exit code {proc.poll()}):\n{tail(log_path)}"
                )
            time.sleep(POLL_S)
        yield Server(kind, proc, port, home, time.perf_counter() - start)
    finally:
        stop(proc)
        _CHILDREN.remove(proc)


# ------------------------------------------------------------------ HTTP clients


class Api:
    """JSON over a keep-alive connection, as a script (no Origin header) to 127.0.0.1:PORT."""

    IDLE_RECONNECT_S = 2.0  # uvicorn closes keep-alive connections idle for 5 s

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def raw(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending the request to the last byte of the answer)."""
        if self.conn is None or time.monotonic() - self.last_used > self.IDLE_RECONNECT_S:
            self.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            self.conn.connect()
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        start = time.perf_counter()
        try:
            self.conn.request(method, path, payload, headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        elapsed = time.perf_counter() - start
        self.last_used = time.monotonic()
        return response.status, data, elapsed

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, data, _ = self.raw(method, path, body)
        if status != expect:
            raise BenchError(f"{method} {path} answered {status}, not {expect}: {data[:300]!r}")
        return json.loads(data) if data else None

    def create_project(self, name: str) -> str:
        return self.call("POST", f"{API}/projects", {"name": name}, expect=201)["id"]

    def generate(self, project_id: str, count: int, **options: Any) -> str:
        answer = self.call(
            "POST",
            f"{API}/projects/{project_id}/avatars/generate",
            {"prompt": "bench", "count": count, **options},
            expect=202,
        )
        return answer["generation"]["id"]

    def generation(self, generation_id: str) -> dict[str, Any]:
        return self.call("GET", f"{API}/generations/{generation_id}")["generation"]


class EventStream:
    """Reads /api/events in a thread and timestamps the first time each generation reaches
    each status (time.perf_counter, when its `data:` event has been read)."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection(HOST, port, timeout=10)
        self._seen: dict[str, dict[str, float]] = {}
        self._changed = threading.Condition()
        self._connected = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._listen, name="bench-sse", daemon=True)

    def __enter__(self) -> EventStream:
        self._thread.start()
        if not self._connected.wait(10):
            raise BenchError(f"the event stream did not open: {self._error!r}")
        # The server subscribes this stream to its event bus only after sending ": connected";
        # give it a moment so the first job's events are not published to nobody.
        time.sleep(0.1)
        return self

    def __exit__(self, *_: object) -> None:
        sock = self._conn.sock
        if sock is not None:  # wakes the reader with end-of-stream; it then exits
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._conn.close()

    def _listen(self) -> None:
        try:
            self._conn.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
            response = self._conn.getresponse()
            if response.status != 200:
                raise BenchError(f"/api/events answered {response.status}")
            assert self._conn.sock is not None
            self._conn.sock.settimeout(None)  # events may be a minute apart
            event, data = "", []
            while line := response.readline():
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith(":"):  # a comment: connected, or a keepalive
                    self._connected.set()
                elif text.startswith("event:"):
                    event = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].removeprefix(" "))
                elif not text:
                    if event == "generation" and data:
                        self._record(json.loads("\n".join(data)))
                    event, data = "", []
        except (OSError, http.client.HTTPException, ValueError, BenchError) as exc:
            self._error = exc  # at exit: the socket was shut down under the read
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    def _record(self, event: dict[str, Any]) -> None:
        now = time.perf_counter()
        with self._changed:
            self._seen.setdefault(event["id"], {}).setdefault(event["status"], now)
            self._changed.notify_all()

    def wait(self, generation_id: str, timeout: float = 60.0) -> float:
        """When the generation's `completed` event arrived; raises if it failed or never did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                seen = self._seen.get(generation_id, {})
                if "completed" in seen:
                    return seen["completed"]
                if "failed" in seen or "canceled" in seen:
                    raise BenchError(f"generation {generation_id} did not complete: {seen}")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise BenchError(
                        f"no completed event for {generation_id} "
                        f"(seen {sorted(seen)}, stream error {self._error!r})"
                    )
                self._changed.wait(remaining)


# ------------------------------------------------------------------ reading lumiku.db


def query(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read-only SQL on the server's live database (WAL lets it read beside the server)."""
    uri = (home / "lumiku.db").as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return db.execute(sql, params).fetchall()


def stored_time(text: str) -> dt.datetime:
    """Peewee's naive UTC 'YYYY-MM-DD HH:MM:SS.ffffff' (microseconds may be absent)."""
    return dt.datetime.fromisoformat(text)


def api_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.removesuffix("Z"))


def db_seconds_between(home: Path, ids: list[str], first: str, last: str) -> list[float]:
    """`last - first` column pairs of avatar_generation, in seconds, microsecond precision."""
    assert {first, last} <= {"created_at", "started_at", "completed_at"}
    marks = ",".join("?" * len(ids))
    rows = dict(
        (row[0], row[1:])
        for row in query(
            home,
            f"SELECT id, {first}, {last} FROM avatar_generation WHERE id IN ({marks})",
            tuple(ids),
        )
    )
    return [(stored_time(rows[i][1]) - stored_time(rows[i][0])).total_seconds() for i in ids]


# ------------------------------------------------------------------ 1 and 2: start-up, memory


def measure_starts(plan: Plan, work: Path, report: Report) -> None:
    fresh, warm, hello = [], [], []
    lumiku_rss, hello_rss = [], []

    def lumiku_round(home: Path, sample_rss: bool) -> None:
        with serve("lumiku", home, work) as server:
            fresh.append(server.ready_s)
            if sample_rss:
                time.sleep(RSS_DELAY_S)
                lumiku_rss.append(server.rss_bytes())
        with serve("lumiku", home, work) as server:  # the same folder, now initialised
            warm.append(server.ready_s)

    def hello_round(sample_rss: bool) -> None:
        with serve("hello", None, work) as server:
            hello.append(server.ready_s)
            if sample_rss:
                time.sleep(RSS_DELAY_S)
                hello_rss.append(server.rss_bytes())

    progress("one untimed start of each first: warms the OS file cache, compiles bytecode")
    with serve("hello", None, work), serve("lumiku", Path(tempfile.mkdtemp(dir=work)), work):
        pass
    for n in range(plan.starts):
        progress(f"cold starts, round {n + 1} of {plan.starts}")
        sample = n < plan.memory_samples
        home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
        if n % 2:  # alternate who goes first, so neither always follows the other
            lumiku_round(home, sample)
            hello_round(sample)
        else:
            hello_round(sample)
            lumiku_round(home, sample)

    rows = report.section(f"1. cold start to first 200 of /health (median of {plan.starts})")
    ratio = median(fresh) / median(hello)
    rows += [
        Row(
            "Lumiku, fresh home (empty folder, migrations)",
            f"{median(fresh):.3f} s",
            "<= 1.0 s",
            median(fresh) <= 1.0,
        ),
        Row("Lumiku, warm home (second start, same folder)", f"{median(warm):.3f} s"),
        Row("Litestar + uvicorn hello-world", f"{median(hello):.3f} s"),
        Row("ratio Lumiku fresh / hello-world", f"{ratio:.2f}x", "<= 1.6x", ratio <= 1.6),
        Row("  Lumiku fresh, min .. max", f"{min(fresh):.3f} .. {max(fresh):.3f} s"),
        Row("  hello-world, min .. max", f"{min(hello):.3f} .. {max(hello):.3f} s"),
    ]
    mb = 1024 * 1024
    lumiku_mb, hello_mb = median(lumiku_rss) / mb, median(hello_rss) / mb
    rows = report.section(
        f"2. idle RSS {RSS_DELAY_S:.0f} s after the first 200 (median of {plan.memory_samples})"
    )
    rows += [
        Row("Lumiku (fresh home)", f"{lumiku_mb:.1f} MB", "<= 120 MB", lumiku_mb <= 120),
        Row("Litestar + uvicorn hello-world", f"{hello_mb:.1f} MB"),
        Row("ratio Lumiku / hello-world", f"{lumiku_mb / hello_mb:.2f}x"),
    ]


# ------------------------------------------------------------------ 3 and 4: jobs on one server


def run_pickups(api: Api, events: EventStream, project_id: str, jobs: int) -> list[str]:
    """Submit one-image generations one at a time, each after the previous has completed."""
    ids = []
    for _ in range(jobs):
        generation_id = api.generate(project_id, count=1)
        events.wait(generation_id)
        ids.append(generation_id)
    return ids


def pickup_rows(api: Api, home: Path, ids: list[str], when: str) -> list[Row]:
    latencies = db_seconds_between(home, ids, "created_at", "started_at")
    via_api = []
    for generation_id in ids:
        shape = api.generation(generation_id)
        via_api.append(
            (api_time(shape["startedAt"]) - api_time(shape["createdAt"])).total_seconds()
        )
    p50, p95 = median(latencies), percentile(latencies, 95)
    return [
        Row(f"p50 {when} ({len(ids)} jobs)", ms(p50), "<= 5 ms", p50 <= 0.005),
        Row(f"p95 {when}", ms(p95), "<= 20 ms", p95 <= 0.020),
        Row(f"  max {when}", ms(max(latencies))),
        Row(f"  p50 {when} via API (ms resolution)", ms(median(via_api))),
    ]


def measure_jobs(plan: Plan, work: Path, report: Report) -> None:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    with serve("lumiku", home, work) as server, EventStream(server.port) as events:
        api = Api(server.port)
        project_id = api.create_project("bench")
        progress("warm-up generation (loads the DiceBear style once)")
        events.wait(api.generate(project_id, count=1))
        events.wait(api.generate(project_id, count=4))

        progress(f"pickup latency: {plan.pickups} one-image generations, one at a time")
        pickup_ids = run_pickups(api, events, project_id, plan.pickups)

        progress(f"instant batch of 4: {plan.batches} times")
        walls, batch_ids = [], []
        for _ in range(plan.batches):
            start = time.perf_counter()
            generation_id = api.generate(project_id, count=4)
            walls.append(events.wait(generation_id) - start)
            batch_ids.append(generation_id)

        api.close()
        progress(f"letting the server sit idle for {plan.idle_seconds:.0f} s")
        time.sleep(plan.idle_seconds)
        progress(f"pickup latency after idle: {plan.pickups_after_idle} generations")
        idle_ids = run_pickups(api, events, project_id, plan.pickups_after_idle)
        rss_mb = server.rss_bytes() / 1024 / 1024

        rows = report.section("3. pickup latency, created -> processing (started_at - created_at)")
        rows += pickup_rows(api, home, pickup_ids, "warm")
        idle = f"after {plan.idle_seconds:.0f} s idle"
        rows += pickup_rows(api, home, idle_ids, idle)

        server_side = db_seconds_between(home, batch_ids, "created_at", "completed_at")
        rows = report.section(
            f"4. instant batch of 4, POST to completed event (median of {plan.batches})"
        )
        rows += [
            Row(
                "median wall time (client clock, SSE)",
                ms(median(walls)),
                "<= 300 ms",
                median(walls) <= 0.300,
            ),
            Row("  p95 wall time", ms(percentile(walls, 95))),
            Row("  median created_at -> completed_at (db)", ms(median(server_side))),
            Row("  server RSS after all these jobs", f"{rss_mb:.1f} MB"),
        ]
        api.close()


# ------------------------------------------------------------------ 5: a project of 1,000 avatars


def wait_until_settled(home: Path, expected: int, timeout: float) -> None:
    """Poll lumiku.db (read-only, no load on the server) until no generation is unfinished."""
    deadline = time.monotonic() + timeout
    while True:
        counts = dict(query(home, "SELECT status, COUNT(*) FROM avatar_generation GROUP BY status"))
        if not set(counts) - set(TERMINAL):
            if counts.get("completed") != expected:
                raise BenchError(f"not every generation completed: {counts}")
            return
        if time.monotonic() > deadline:
            raise BenchError(f"generations still unfinished after {timeout:.0f} s: {counts}")
        time.sleep(0.25)


def measure_project_read(plan: Plan, work: Path, report: Report) -> None:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    avatars = plan.fill_generations * 8
    with serve("lumiku", home, work) as server:
        api = Api(server.port)
        project_id = api.create_project("a thousand avatars")
        progress(f"filling a project: {plan.fill_generations} generations of 8 through the API")
        start = time.perf_counter()
        for _ in range(plan.fill_generations):
            api.generate(project_id, count=8, width=FILL_SIZE, height=FILL_SIZE)
        api.close()
        wait_until_settled(home, plan.fill_generations, timeout=600)
        fill_s = time.perf_counter() - start

        path = f"{API}/projects/{project_id}"
        body = api.call("GET", path)["project"]
        if body["avatarCount"] != avatars or len(body["avatars"]) != avatars:
            raise BenchError(f"the project holds {body['avatarCount']} avatars, not {avatars}")
        progress(f"timing {plan.project_gets} GETs of the project, {KEEPALIVE_GETS} of /health")
        for _ in range(3):  # warm-up
            api.raw("GET", path)
        times, size = [], 0
        for _ in range(plan.project_gets):
            status, data, elapsed = api.raw("GET", path)
            if status != 200:
                raise BenchError(f"GET {path} answered {status}")
            times.append(elapsed)
            size = len(data)
        api.close()  # a fresh connection for the keep-alive round trips
        round_trips = [api.raw("GET", "/health")[2] for _ in range(KEEPALIVE_GETS)]
        api.close()

    rows = report.section(f"5. GET a project with {avatars:,} avatars ({plan.project_gets} GETs)")
    p95 = percentile(times, 95)
    rows += [
        Row("p50", ms(median(times))),
        Row("p95", ms(p95), "<= 50 ms", p95 <= 0.050),
        Row("  response size", f"{size / 1024:.0f} KiB"),
        Row(
            f"  filling it: {plan.fill_generations} x 8 at {FILL_SIZE} px through the API",
            f"{fill_s:.1f} s",
        ),
    ]
    rows = report.section(
        f"6. GET /health, {KEEPALIVE_GETS} times on one keep-alive connection (no target)"
    )
    rows += [
        Row("p50 (browsers reuse connections like this)", ms(median(round_trips))),
        Row("  the first request, on the new connection", ms(round_trips[0])),
    ]


# ------------------------------------------------------------------ 7: 50 clients at once


def open_files(pid: int) -> int:
    process = psutil.Process(pid)
    return process.num_fds() if hasattr(process, "num_fds") else process.num_handles()


@dataclass
class Load:
    latencies: list[float]
    errors: int
    seconds: float

    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def render_processes(pid: int) -> list[psutil.Process]:
    """The Instant engine's worker processes (not multiprocessing's resource tracker)."""
    return [
        child
        for child in psutil.Process(pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]


def wait_for_render_processes(pid: int, count: int) -> None:
    wait_until(lambda: len(render_processes(pid)) == count, timeout=30)


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"not true within {timeout:.0f} s: {predicate}")
        time.sleep(0.05)


def hammer(port: int, paths: list[str], clients: int, seconds: float) -> Load:
    """`clients` threads, each on its own keep-alive connection, GET the paths in turn."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def client(n: int) -> None:
        api = Api(port)
        start.wait()
        turn = n  # each client starts at another path, so all are busy from the first second
        while time.monotonic() < stop_at[0]:
            path = paths[turn % len(paths)]
            turn += 1
            try:
                status, _, elapsed = api.raw("GET", path)
            except (OSError, http.client.HTTPException):
                errors[n] += 1
                continue
            errors[n] += status != 200
            latencies[n].append(elapsed)
        api.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    stop_at.append(time.monotonic() + seconds)
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(seconds + 120)
    return Load([t for per in latencies for t in per], sum(errors), time.perf_counter() - began)


def keep_generating(port: int, project_id: str, stop: threading.Event) -> list[int]:
    """A person at work during the load: batches of 4 Instant images, one after another."""
    made: list[int] = []
    with EventStream(port) as events:
        api = Api(port)
        while not stop.is_set():
            events.wait(api.generate(project_id, count=4), timeout=120)
            made.append(4)
        api.close()
    return made


def measure_load(plan: Plan, work: Path, report: Report) -> None:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    clients, seconds = plan.load_clients, plan.load_seconds
    with serve("lumiku", home, work) as server:
        api = Api(server.port)
        progress(f"load: {plan.load_projects} projects, then {clients} clients for {seconds:.0f} s")
        project_ids = [api.create_project(f"project {n}") for n in range(plan.load_projects)]
        busy = project_ids[0]
        paths = [f"{API}/projects", "/api/me", f"{API}/projects/{busy}", "/projects", "/health"]
        fds_fresh = open_files(server.proc.pid)
        # a server in use: every route served once, the project page opened (it starts the
        # render processes), an image made (each worker keeps a database connection)
        for path in [*paths, f"/projects/{busy}"]:
            api.raw("GET", path)
        with EventStream(server.port) as events:
            events.wait(api.generate(busy, count=1))
        api.close()
        wait_for_render_processes(server.proc.pid, 2)
        fds_before = open_files(server.proc.pid)
        stop = threading.Event()
        made: list[int] = []
        generator = threading.Thread(
            target=lambda: made.extend(keep_generating(server.port, busy, stop)), daemon=True
        )
        generator.start()
        lumiku = hammer(server.port, paths, clients, seconds)
        stop.set()
        generator.join(120)
        fds_after = open_files(server.proc.pid)
        deadline = time.monotonic() + 10
        while (fds_settled := open_files(server.proc.pid)) > fds_before + 10:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    progress(f"load: the same {clients} clients for {seconds:.0f} s on the hello-world")
    with serve("hello", None, work) as hello:
        baseline = hammer(hello.port, ["/health"], clients, seconds)

    rows = report.section(
        f"7. {clients} clients at once for {seconds:.0f} s, keep-alive GETs "
        "(Lumiku: project list, /api/me, a project, /projects page, /health; "
        "hello-world: /health)"
    )
    for pct in (50, 95, 99):
        value = percentile(lumiku.latencies, pct)
        target = ("<= 500 ms", value <= 0.500) if pct == 99 else ("", None)
        rows.append(Row(f"Lumiku p{pct}", ms(value), target[0], target[1]))
        rows.append(Row(f"  hello-world p{pct}", ms(percentile(baseline.latencies, pct))))
    grown = fds_settled - fds_before
    rows += [
        Row("Lumiku requests/s (errors)", f"{lumiku.rate():.0f} ({lumiku.errors})"),
        Row("  hello-world requests/s (errors)", f"{baseline.rate():.0f} ({baseline.errors})"),
        Row("  Instant images made meanwhile (batches of 4)", f"{sum(made)}"),
        Row("  open files of the fresh server (no page, no job yet)", f"{fds_fresh}"),
        Row("open files before the load (in use: pages, a job)", f"{fds_before}"),
        Row("  right after the load", f"{fds_after}"),
        Row(
            "open files settled after (- before)",
            f"{fds_settled} ({grown:+d})",
            "<= +10",
            grown <= 10,
        ),
    ]


# ------------------------------------------------------------------ 8: the style picker, cold

# In the page from its first moment: when every sample of the picker is loaded and decoded
# (performance.now(), ms after navigation start), checked on each animation frame.
SAMPLES_WATCH_JS = """
window.__samplesShown = null;
(function watch() {
  const grid = [...document.querySelectorAll('.style-grid img')];
  if (grid.length && grid.every((img) => img.complete && img.naturalWidth > 0)) {
    window.__samplesShown = [performance.now(), grid.length];
    return;
  }
  requestAnimationFrame(watch);
})();
"""
PICKER_TIMES_JS = """() => {
  const post = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/generate'));
  return {
    shown: window.__samplesShown,
    generate: post ? post.responseEnd - post.startTime : null,
  };
}"""


@dataclass
class PickerRound:
    samples_s: float  # navigation start to every sample loaded and decoded
    count: int
    generate_post_s: float  # the Generate button's request (it is grey meanwhile)
    generate_done_s: float  # click to the generation's completed event


def picker_round(browser: Any, server: Server, events: EventStream, project_id: str) -> PickerRound:
    from urllib.parse import urlsplit

    context = browser.new_context(viewport={"width": 1280, "height": 2400})  # no cache yet
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.add_init_script(SAMPLES_WATCH_JS)
        page.goto(f"http://{HOST}:{server.port}/projects/{project_id}")
        page.click("[data-styles] summary")  # opens the picker: its 61 lazy images load now
        page.fill("#prompt", "bench: a style picker on a cold start")
        with page.expect_response(
            lambda r: r.request.method == "POST" and urlsplit(r.url).path.endswith("/generate")
        ):
            clicked = time.perf_counter()
            page.click("#generate button[type=submit]")
        assert server.home is not None
        (generation_id,) = query(
            server.home, "SELECT id FROM avatar_generation ORDER BY created_at DESC LIMIT 1"
        )[0]
        done = events.wait(generation_id, timeout=120) - clicked
        page.wait_for_function("() => window.__samplesShown !== null")
        times = page.evaluate(PICKER_TIMES_JS)
    finally:
        context.close()
    shown_ms, count = times["shown"]
    return PickerRound(shown_ms / 1000, count, (times["generate"] or 0) / 1000, done)


def catalog_styles() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from lumiku_local.catalog import dicebear_styles

    return dicebear_styles()


def warm_browser(browser: Any) -> None:
    """One page with an image, a script and a stylesheet, so Chromium's own first-page costs
    (processes, fonts, image decoders) are paid before the clock runs."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content(
            "<style>body{font:16px sans-serif}</style><script>1</script><p>warm</p>"
            '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        )
    finally:
        context.close()


def measure_style_picker(plan: Plan, work: Path, report: Report) -> None:
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    progress("style picker: a fresh server, the project page at once, then again warm")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            warm_browser(browser)  # the server's cold start is measured, not Chromium's
            with serve("lumiku", home, work) as server, EventStream(server.port) as events:
                api = Api(server.port)
                project_id = api.create_project("style picker")
                api.close()
                cold = picker_round(browser, server, events, project_id)
                warm = picker_round(browser, server, events, project_id)
        finally:
            browser.close()
    rows = report.section(
        "8. style picker: page load to every sample shown, and Generate meanwhile "
        "(cold: the first page of a fresh server; warm: the same again, empty browser cache)"
    )
    rows += [
        Row(
            f"cold: all {cold.count} samples shown",
            f"{cold.samples_s:.3f} s",
            "<= 1.0 s",
            cold.samples_s <= 1.0 and cold.count == len(catalog_styles()),
        ),
        Row(f"  warm: all {warm.count} samples shown", f"{warm.samples_s:.3f} s"),
        Row("cold: Generate request round trip (button grey)", ms(cold.generate_post_s)),
        Row("  warm: Generate request round trip", ms(warm.generate_post_s)),
        Row("cold: Generate click to completed (4 images)", ms(cold.generate_done_s)),
        Row("  warm: Generate click to completed", ms(warm.generate_done_s)),
    ]


# ------------------------------------------------------------------ 9: Instant, 1 worker vs 2


def measure_throughput(plan: Plan, work: Path, report: Report) -> None:
    rates: dict[int, float] = {}
    images = plan.throughput_batches * 8
    for workers in (1, 2):
        home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
        progress(f"throughput: {plan.throughput_batches} batches of 8 with {workers} worker(s)")
        env = {"LUMIKU_WORKERS": str(workers)}
        with serve("lumiku", home, work, env) as server, EventStream(server.port) as events:
            api = Api(server.port)
            project_id = api.create_project("throughput")
            api.raw("GET", f"/projects/{project_id}")  # the page starts the render processes
            wait_for_render_processes(server.proc.pid, workers)
            # one job per worker first: every render process has loaded the style
            for warming in [api.generate(project_id, count=1) for _ in range(workers)]:
                events.wait(warming)
            start = time.perf_counter()
            ids = [api.generate(project_id, count=8) for _ in range(plan.throughput_batches)]
            finished = max(events.wait(generation_id, timeout=600) for generation_id in ids)
            rates[workers] = images / (finished - start)
            api.close()
    ratio = rates[2] / rates[1]
    rows = report.section(
        f"9. Instant throughput: {plan.throughput_batches} batches of 8 at 512 px, queued at once"
    )
    rows += [
        Row("1 worker (1 render process)", f"{rates[1]:.1f} images/s"),
        Row("2 workers (2 render processes)", f"{rates[2]:.1f} images/s"),
        Row("ratio 2 workers / 1", f"{ratio:.2f}x", ">= 1.6x", ratio >= 1.6),
    ]


# ------------------------------------------------------------------ 10: the Pose Generator


def measure_poses(plan: Plan, work: Path, report: Report) -> None:
    """An Instant pose batch of 3 poses x 4 variations, POST to completed event, next to an
    Avatar Creator batch of the same 12 images as the baseline; then the export of four pose
    generations of 12 poses x 4 variations (192 images, about the issue's 200)."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    poses_api = "/api/apps/pose-generator"
    with serve("lumiku", home, work) as server, EventStream(server.port) as events:
        api = Api(server.port)
        project_id = api.create_project("poses")
        source = api.generate(project_id, count=1)
        events.wait(source)
        avatar_id = api.generation(source)["avatars"][0]["id"]
        pose_ids = [p["id"] for p in api.call("GET", f"{poses_api}/poses")["poses"][:12]]

        def pose_batch(poses: list[str], variations: int) -> str:
            body = {"avatarId": avatar_id, "poseIds": poses, "variations": variations}
            return api.call("POST", f"{poses_api}/generate", body, expect=202)["generation"]["id"]

        progress("warm-up pose batch (cuts the head, loads the render process)")
        events.wait(pose_batch(pose_ids[:3], 4))
        events.wait(api.generate(project_id, count=8))
        poses_walls, avatar_walls = [], []
        for _ in range(plan.batches):
            start = time.perf_counter()
            poses_walls.append(events.wait(pose_batch(pose_ids[:3], 4)) - start)
            start = time.perf_counter()
            first = api.generate(project_id, count=8)
            second = api.generate(project_id, count=4)
            avatar_walls.append(max(events.wait(first), events.wait(second)) - start)
        progress("a pose generation of 48 images, four times: 192 images to export")
        export_ids = [pose_batch(pose_ids, 4) for _ in range(4)]
        for generation_id in export_ids:
            events.wait(generation_id, timeout=300)
        export_times, export_bytes = [], 0
        rss_before = server.rss_bytes()
        for generation_id in export_ids:
            start = time.perf_counter()
            status, data, _ = api.raw("GET", f"{poses_api}/generations/{generation_id}/export")
            export_times.append(time.perf_counter() - start)
            if status != 200:
                raise BenchError(f"export answered {status}")
            export_bytes += len(data)
        rss_growth = (server.rss_bytes() - rss_before) / 1024 / 1024
        api.close()
    ratio = median(poses_walls) / median(avatar_walls)
    rows = report.section(
        f"10. Pose Generator, Instant, 3 poses x 4 variations (median of {plan.batches})"
    )
    rows += [
        Row("pose batch of 12, POST to completed event", ms(median(poses_walls))),
        Row("  baseline: Avatar Creator, 12 images (8 + 4)", ms(median(avatar_walls))),
        Row("ratio poses / avatars", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5),
        Row("export, 4 pose generations of 48 (192 images)", ms(sum(export_times))),
        Row("  zip bytes sent", f"{export_bytes / 1024 / 1024:.1f} MB"),
        Row(
            "  server RSS growth over the exports",
            f"{rss_growth:.1f} MB",
            "<= 50 MB",
            rss_growth <= 50,
        ),
    ]


# ------------------------------------------------------------------ main


# ------------------------------------------------------------------ 11: the queue, on both backends


@dataclass
class Backend:
    """Where one setup of step 11 keeps its data: the SQLite default, or PostgreSQL + Redis."""

    label: str
    home: Path
    worker_processes: int  # 0: the server's own (embedded) worker threads
    database_url: str = ""
    queue_url: str = ""

    def env(self) -> dict[str, str]:
        if not self.database_url:
            return {}
        return {
            "LUMIKU_DATABASE_URL": self.database_url,
            "LUMIKU_QUEUE_URL": self.queue_url,
            "LUMIKU_FILES_DIR": str(self.home / "files"),
        }

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.database_url:
            return query(self.home, sql, params)
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())

    def seconds_between(self, ids: list[str], first: str, last: str) -> list[float]:
        marks = ",".join("?" * len(ids))
        rows = {
            row[0]: row[1:]
            for row in self.rows(
                f"SELECT id, {first}, {last} FROM avatar_generation WHERE id IN ({marks})",
                tuple(ids),
            )
        }

        def at(value: Any) -> dt.datetime:
            return value if isinstance(value, dt.datetime) else stored_time(value)

        return [(at(rows[i][1]) - at(rows[i][0])).total_seconds() for i in ids]


@contextlib.contextmanager
def lumiku_worker(backend: Backend, work: Path, kind: str = "one-pixel") -> Iterator[None]:
    """One `lumiku worker --workers 1` process on the backend's PostgreSQL + Redis."""
    program = ["-m", "lumiku_local"] if kind == "lumiku" else [str(ONE_PIXEL)]
    argv = [sys.executable, *program, "worker", "--workers", "1", "--home", str(backend.home)]
    log_path = work / "logs" / f"worker-{len(_CHILDREN)}-{time.monotonic_ns()}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**child_env(backend.home, work), **backend.env()},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    _CHILDREN.append(proc)
    try:
        yield
    finally:
        stop(proc)
        _CHILDREN.remove(proc)


@contextlib.contextmanager
def backend_setup(backend: Backend, work: Path, kind: str = "one-pixel") -> Iterator[Server]:
    """The server (with its own workers, or --no-workers beside `worker_processes` workers),
    once every worker process has registered."""
    extra = ("--no-workers",) if backend.worker_processes else ()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(serve(kind, backend.home, work, backend.env(), extra))
        for _ in range(backend.worker_processes):
            stack.enter_context(lumiku_worker(backend, work, kind))
        if backend.worker_processes:
            api = Api(server.port)

            def registered() -> bool:
                processes = api.call("GET", "/api/health/workers")["processes"]
                return sum(p["kind"] == "worker" for p in processes) >= backend.worker_processes

            wait_until(registered, START_TIMEOUT_S)
            api.close()
        yield server


def burst(
    port: int, events: EventStream, project_id: str, jobs: int, clients: int
) -> tuple[float, float, list[float]]:
    """`jobs` one-image generations POSTed at once by `clients` keep-alive connections:
    (seconds from the first POST to the last completed event, to the last POST's answer,
    every POST's round trip)."""
    ids: list[str] = []
    posts: list[float] = []
    lock = threading.Lock()
    share = [jobs // clients + (n < jobs % clients) for n in range(clients)]
    go = threading.Event()

    def client(count: int) -> None:
        api = Api(port)
        go.wait()
        for _ in range(count):
            status, data, seconds = api.raw(
                "POST",
                f"{API}/projects/{project_id}/avatars/generate",
                {"prompt": "burst", "count": 1, "modelKey": ONE_PIXEL_MODEL},
            )
            if status != 202:
                raise BenchError(f"burst POST answered {status}: {data[:300]!r}")
            with lock:
                ids.append(json.loads(data)["generation"]["id"])
                posts.append(seconds)
        api.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in share]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    answered = time.perf_counter() - start
    if len(ids) != jobs:
        raise BenchError(f"only {len(ids)} of {jobs} burst POSTs were accepted")
    last = max(events.wait(generation_id, timeout=300) for generation_id in ids)
    return last - start, answered, posts


def warm_every_worker(
    api: Api, backend: Backend, events: EventStream, project_id: str, **options: Any
) -> None:
    """One-image jobs until each worker process has run one (its engine loaded, its render
    process started): Redis hands a job to whichever worker pops first."""
    wanted = max(backend.worker_processes, 1)
    seen: set[str] = set()
    for _ in range(40):
        generation_id = api.generate(project_id, count=1, **options)
        events.wait(generation_id)
        sql = "SELECT boot_id FROM avatar_generation WHERE id = ?"
        seen.add(backend.rows(sql, (generation_id,))[0][0])
        if len(seen) >= wanted:
            return
    raise BenchError(f"only {len(seen)} of {wanted} worker processes took a warm-up job")


def measure_queue(plan: Plan, work: Path, report: Report) -> None:
    """Pickup, POST and a burst of one-pixel jobs on SQLite and on PostgreSQL + Redis with 1
    and 2 `lumiku worker` processes; then Instant at 512 px with 1 and 2 worker processes."""
    sys.path.insert(0, str(ROOT))
    from tests import servers as throwaway

    started = throwaway.start()
    try:
        _measure_queue(plan, work, report, started)
    finally:
        throwaway.stop(started)


def _fresh_backend(label: str, work: Path, servers: Any, processes: int) -> Backend:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    if processes == 0:
        return Backend(label, home, 0)
    import psycopg
    import redis

    name = f"bench_{home.name.replace('-', '_').lower()}"
    with psycopg.connect(servers.postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(servers.redis_url).flushall()
    database_url = servers.postgres_url.rsplit("/", 1)[0] + "/" + name
    return Backend(label, home, processes, database_url, servers.redis_url)


def huey_alone(storage: str, work: Path, redis_url: str, jobs: int) -> tuple[float, float]:
    """The baseline, in this process: Lumiku's own Huey storage (queue.db with its wake-up, or
    the per-model Redis lists) and 2 consumer threads running empty tasks, no HTTP and no
    database. (pickup p50 from enqueue to the task's start, jobs/s of a burst of `jobs`)."""
    from huey import Huey

    from lumiku_local.queue import EmbeddedConsumer, ModelRedisStorage, WakingSqliteStorage

    if storage == "sqlite":
        huey = Huey(
            "bench",
            results=False,
            storage_class=WakingSqliteStorage,
            filename=str(Path(tempfile.mkdtemp(dir=work)) / "queue.db"),
        )
    else:
        redis_module = __import__("redis")
        redis_module.Redis.from_url(redis_url).flushall()
        huey = Huey("bench", results=False, storage_class=ModelRedisStorage, url=redis_url)
    started: dict[int, float] = {}
    done = threading.Condition()

    @huey.task()
    def empty(n: int) -> None:
        with done:
            started[n] = time.perf_counter()
            done.notify_all()

    def wait(count: int) -> None:
        with done:
            if not done.wait_for(lambda: len(started) >= count, timeout=60):
                raise BenchError(f"Huey alone ran {len(started)} of {count} tasks")

    consumer = EmbeddedConsumer(huey, workers=2, worker_type="thread", periodic=False)
    consumer.start()
    try:
        pickups = []
        for n in range(50):
            sent = time.perf_counter()
            empty(n)
            wait(n + 1)
            pickups.append(started[n] - sent)
        first = time.perf_counter()
        for n in range(50, 50 + jobs):
            empty(n)
        wait(50 + jobs)
        rate = jobs / (max(started.values()) - first)
    finally:
        consumer.stop_flag.set()
        huey.storage.wake_all(2)
        for _, thread in consumer.worker_threads:
            thread.join(10)
    return median(pickups), rate


def _measure_queue(plan: Plan, work: Path, report: Report, servers: Any) -> None:
    setups = [
        ("SQLite (embedded, 2 threads)", 0),
        ("PostgreSQL + Redis, 1 worker process", 1),
        ("PostgreSQL + Redis, 2 worker processes", 2),
    ]
    figures: dict[str, dict[str, float]] = {}
    for label, processes in setups:
        backend = _fresh_backend(label, work, servers, processes)
        progress(f"queue: {label}")
        with backend_setup(backend, work) as server, EventStream(server.port) as events:
            api = Api(server.port)
            project_id = api.create_project("queue")
            options = {"modelKey": ONE_PIXEL_MODEL}
            warm_every_worker(api, backend, events, project_id, **options)
            ids, posts = [], []
            for _ in range(plan.pickups):
                status, data, seconds = api.raw(
                    "POST",
                    f"{API}/projects/{project_id}/avatars/generate",
                    {"prompt": "pickup", "count": 1, **options},
                )
                if status != 202:
                    raise BenchError(f"POST answered {status}: {data[:300]!r}")
                generation_id = json.loads(data)["generation"]["id"]
                events.wait(generation_id)
                ids.append(generation_id)
                posts.append(seconds)
            pickups = backend.seconds_between(ids, "created_at", "started_at")
            bursts, answered = [], []
            burst_posts: list[float] = []
            for _ in range(plan.bursts):
                seconds, posted, round_trips = burst(
                    server.port, events, project_id, plan.burst_jobs, 4
                )
                bursts.append(plan.burst_jobs / seconds)
                answered.append(plan.burst_jobs / posted)
                burst_posts += round_trips
            api.close()
        figures[label] = {
            "pickup50": median(pickups),
            "pickup95": percentile(pickups, 95),
            "post50": median(posts),
            "burst": median(bursts),
            "burstpost50": median(burst_posts),
            "accepted": median(answered),
        }

    rows = report.section(
        f"11. the queue: {plan.pickups} one-pixel jobs one at a time, then {plan.bursts} bursts "
        f"of {plan.burst_jobs} (4 keep-alive clients), median burst"
    )
    sqlite_label = setups[0][0]
    for label, _ in setups:
        f = figures[label]
        on_sqlite = label == sqlite_label
        pickup_target = 0.0015 if on_sqlite else 0.003
        rows += [
            Row(label, ""),
            Row(
                "  pickup p50 (created -> processing)",
                ms(f["pickup50"]),
                f"<= {pickup_target * 1000:g} ms",
                f["pickup50"] <= pickup_target,
            ),
            Row("  pickup p95", ms(f["pickup95"])),
            Row(
                "  generate POST p50, keep-alive, idle server",
                ms(f["post50"]),
                "<= 3 ms" if on_sqlite else "",
                f["post50"] <= 0.003 if on_sqlite else None,
            ),
            Row(
                f"  burst of {plan.burst_jobs}, first POST -> last completed",
                f"{f['burst']:.0f} jobs/s",
                ">= 300 jobs/s" if on_sqlite else "",
                f["burst"] >= 300 if on_sqlite else None,
            ),
            Row("  POST p50 during the burst", ms(f["burstpost50"])),
            Row("  POSTs answered (first POST -> last answer)", f"{f['accepted']:.0f} jobs/s"),
        ]
    for storage, label in (("sqlite", "queue.db"), ("redis", "Redis lists")):
        pickup, rate = huey_alone(storage, work, servers.redis_url, plan.burst_jobs)
        rows.append(
            Row(
                f"baseline, Huey alone on {label}: pickup, burst",
                f"{ms(pickup)}, {rate:.0f} jobs/s",
            )
        )
    rows += [Row("BullMQ on Redis, empty jobs (the original's queue alone)", "2 ms, 669 jobs/s")]

    rates: dict[int, float] = {}
    for processes in (1, 2):
        label = f"Instant, {processes} worker process(es)"
        backend = _fresh_backend(label, work, servers, processes)
        progress(f"queue: Instant at 512 px, {plan.instant_images} images, {processes} worker(s)")
        with backend_setup(backend, work, "lumiku") as server, EventStream(server.port) as events:
            api = Api(server.port)
            project_id = api.create_project("instant")
            warm_every_worker(api, backend, events, project_id)
            start = time.perf_counter()
            ids = [api.generate(project_id, count=4) for _ in range(plan.instant_images // 4)]
            finished = max(events.wait(generation_id, timeout=600) for generation_id in ids)
            rates[processes] = (plan.instant_images // 4 * 4) / (finished - start)
            api.close()
    ratio = rates[2] / rates[1]
    rows += [
        Row(f"Instant 512 px, {plan.instant_images} images, batches of 4, PostgreSQL + Redis", ""),
        Row("  1 worker process", f"{rates[1]:.1f} images/s"),
        Row("  2 worker processes", f"{rates[2]:.1f} images/s"),
        Row("  ratio 2 / 1", f"{ratio:.2f}x", ">= 1.6x", ratio >= 1.6),
    ]


STEPS: dict[str, Callable[[Plan, Path, Report], None]] = {
    "starts": measure_starts,
    "jobs": measure_jobs,
    "project": measure_project_read,
    "load": measure_load,
    "picker": measure_style_picker,
    "throughput": measure_throughput,
    "poses": measure_poses,
    "queue": measure_queue,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and a 5 s idle wait instead of 60 s"
    )
    parser.add_argument(
        "--only",
        help="comma-separated steps to run, of: " + ", ".join(STEPS) + " (default: all)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    chosen = args.only.split(",") if args.only else list(STEPS)
    if unknown := set(chosen) - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    # SIGTERM unwinds like Ctrl+C does, so the finally blocks stop every server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    report = Report()
    report.notes += [
        f"{'quick' if args.quick else 'full'} run, {time.strftime('%Y-%m-%d %H:%M:%S')}; "
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start",
        "start-up: one untimed start of each first (OS file cache warm, bytecode compiled into "
        f"a temp PYTHONPYCACHEPREFIX, data folder still empty); /health polled every "
        f"{POLL_S * 1000:.0f} ms",
        "pickup latency: one-image jobs submitted after the previous completed; "
        "microseconds from lumiku.db",
        "batch: timed on the client from just before the POST to the completed SSE event",
    ]
    started = time.perf_counter()
    steps = [STEPS[name] for name in chosen]
    with tempfile.TemporaryDirectory(prefix="lumiku-bench-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        (work / "logs").mkdir()
        try:
            for step in steps:
                step(plan, work, report)
        except BenchError as exc:
            print(f"bench/core.py: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench/core.py: interrupted; every server it started is stopped", file=sys.stderr)
            return 130
        finally:
            stop_all()
    report.notes.append(f"the whole run took {time.perf_counter() - started:.0f} s")
    print(report.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
