"""Fixtures: a real app on a real SQLite file in a temp home, driven in-process."""

from __future__ import annotations

import io
import itertools
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from PIL import Image

from lumiku_local import clock, failpoints
from lumiku_local.app import create_app
from lumiku_local.config import Settings, load_settings

API = "/api/apps/avatar-creator"
BASE_URL = "http://127.0.0.1:8765"
TERMINAL = ("completed", "failed", "canceled")


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.01) -> Any:
    """Poll until predicate() is truthy; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def make_settings(home, **overrides: Any) -> Settings:
    flags = {"home": str(home), "open_browser": False, "retry_backoff_seconds": 0.05, **overrides}
    return load_settings(flags, environ={})


@pytest.fixture(autouse=True)
def _no_failpoints() -> Iterator[None]:
    failpoints.configure("")
    yield
    failpoints.configure("")
    clock.reset()  # a test that jumped the clock leaves the next one on time


@pytest.fixture
def settings(tmp_path, backend_overrides) -> Settings:
    return make_settings(tmp_path / "home", **backend_overrides)


class Client(TestClient):
    """TestClient with the helpers every test wants."""

    def project(self, name: str = "My project") -> str:
        response = self.post(f"{API}/projects", json={"name": name})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def generate(self, project_id: str, expect: int = 202, **body: Any) -> dict:
        body.setdefault("prompt", "a friendly wizard")
        response = self.post(f"{API}/projects/{project_id}/avatars/generate", json=body)
        assert response.status_code == expect, response.text
        return response.json()

    def generation(self, generation_id: str) -> dict:
        response = self.get(f"{API}/generations/{generation_id}")
        assert response.status_code == 200, response.text
        return response.json()["generation"]

    def wait_generation(
        self, generation_id: str, timeout: float = 20.0, statuses: tuple[str, ...] = TERMINAL
    ) -> dict:
        return wait_for(
            lambda: (g := self.generation(generation_id))["status"] in statuses and g,
            timeout=timeout,
        )

    def balance(self) -> int:
        return self.get("/api/me").json()["creditBalance"]


@pytest.fixture
def app_client(settings) -> Callable[..., Client]:
    """Start the app for given settings; stopped (gracefully) at the end of the test."""
    clients: list[Client] = []

    def start(custom: Settings | None = None) -> Client:
        client = Client(app=create_app(custom or settings), base_url=BASE_URL)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(app_client) -> Client:
    return app_client()


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "orange", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def live_server(settings) -> Iterator[str]:
    """The app served by uvicorn in a thread on a free port: for streaming (SSE) tests."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=15)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)
    sock.close()


def lumiku_env(home, **extra: str) -> dict[str, str]:
    """This process's environment without any LUMIKU_* setting, for a `lumiku` subprocess."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMIKU_")}
    env.update(LUMIKU_HOME=str(home), **extra)
    return env


def spawn_lumiku(*args: str, env: dict[str, str]):
    """`python -m lumiku_local ARGS` with stdout (and stderr) readable as text lines."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "lumiku_local", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def sibling_generation(generation_id: str, **fields: Any):
    """A generation row in the same project and model as `generation_id`, charging nothing:
    for putting the queue in states a crash or a scheduled retry would leave."""
    from lumiku_local.models import AvatarGeneration

    row = AvatarGeneration.get_by_id(generation_id)
    values = {
        "user": row.user_id,
        "project": row.project_id,
        "model": row.model_id,
        "prompt": "sibling",
        "options": row.options,
        "count": 1,
        "credit_cost": 0,
    }
    return AvatarGeneration.create(**{**values, **fields})


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright, one for the session: every browser test module
    shares it (a second sync Playwright in the same process refuses to start)."""
    from browser import CHROMIUM, CHROMIUM_FLAGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


BROWSER_TIMEOUT_MS = 20_000  # generous for a loaded 2-core CI machine; waits end when true


@pytest.fixture
def ui(browser):
    """A desktop page, plus its watch (call watch.allow(...) for an expected console error)."""
    from browser import DESKTOP, watched_context
    from playwright.sync_api import expect

    with watched_context(browser, viewport=DESKTOP) as (context, watch):
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        expect.set_options(timeout=BROWSER_TIMEOUT_MS)
        yield page, watch


@pytest.fixture
def servers(tmp_path, settings):
    """Start `lumiku serve` subprocesses on tmp_path/home (and the test's backend); each is
    killed at the end."""
    started: list[Server] = []

    def start(failpoints: str = "", **env_extra: str) -> Server:
        server = Server(tmp_path / "home", failpoints, **backend_env(settings), **env_extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def doctor(home: Path, *args: str, **env_extra: str):
    """`lumiku doctor ARGS` on the data folder `home` (env_extra: backend_env), as a subprocess."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "lumiku_local", "doctor", *args],
        env=lumiku_env(home, **env_extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


class Server:
    """`python -m lumiku_local serve` with its own data dir, on a free port unless given one."""

    def __init__(self, home: Path, failpoints: str = "", port: int = 0, **env_extra: str) -> None:
        env = lumiku_env(
            home,
            LUMIKU_FAILPOINTS=failpoints,
            LUMIKU_RETRY_BACKOFF_SECONDS="0.05",
            LUMIKU_OPEN_BROWSER="false",
            **env_extra,
        )
        self.process = spawn_lumiku("serve", "--port", str(port), "--no-browser", env=env)
        line = ""
        for line in self.process.stdout:  # the URL is printed once /health answers
            if "Lumiku is running at" in line:
                break
        else:
            raise AssertionError(f"server did not start: {line}")
        self.url = line.split("running at ", 1)[1].split()[0]

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def get(self, path: str) -> dict:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def read(self, path: str) -> bytes:
        """The raw body of a GET (an image)."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read()

    def upload(self, project_id: str, content: bytes, filename: str = "photo.png") -> dict:
        """Upload an image into a project (multipart, as the page sends it); the avatar JSON."""
        boundary = "lumikutestboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            f"{self.url}{API}/projects/{project_id}/avatars/upload",
            data=body,
            method="POST",
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["avatar"]

    def wait_generation(self, generation_id: str, timeout: float = 30.0) -> dict:
        """The generation once it is completed, failed or canceled."""
        return wait_for(
            lambda: (
                (g := self.get(f"{API}/generations/{generation_id}")["generation"])["status"]
                in TERMINAL
                and g
            ),
            timeout=timeout,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process.stdout.close()

    def wait_exit(self) -> int:
        code = self.process.wait(30)
        self.process.stdout.close()
        return code


# --- Backends: the contract suite on SQLite and on PostgreSQL + Redis (issue 13) ---------------
# A module with `pytestmark = pytest.mark.backends` runs each test twice, ids [sqlite] and [pg];
# on [pg] the `settings` fixture points at a fresh PostgreSQL database and a flushed Redis db.
# The servers come from LUMIKU_TEST_POSTGRES_URL / LUMIKU_TEST_REDIS_URL (`.ci/run` starts them
# with `python -m tests.servers up`), else this session starts its own and stops them at the end.

BACKENDS = ("sqlite", "pg")
_test_database_numbers = itertools.count(1)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("backends") is None:
        return
    only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
    names = ("sqlite",) if only_sqlite else BACKENDS
    metafunc.parametrize("backend", names, indirect=True, ids=names)


@pytest.fixture(autouse=True)
def backend(request) -> str:
    """The backend this test runs on: "sqlite" unless its module is marked `backends`."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def backend_overrides(request, backend) -> dict[str, str]:
    """The settings that put a test on its backend: none on SQLite (the embedded default)."""
    if backend == "sqlite":
        return {}
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "queue_url": request.getfixturevalue("redis_url"),
    }


def backend_env(settings: Settings) -> dict[str, str]:
    """The LUMIKU_* variables that put a `lumiku` subprocess on the same backend as `settings`."""
    database_url = getattr(settings, "database_url", "") or ""
    if not database_url.startswith("postgres"):
        return {}
    return {"LUMIKU_DATABASE_URL": database_url, "LUMIKU_QUEUE_URL": settings.queue_url}


@pytest.fixture(scope="session")
def backend_servers() -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL) of this session's test servers."""
    import os

    import servers as throwaway_servers

    postgres_url = os.environ.get(throwaway_servers.POSTGRES_URL_VAR)
    redis_url = os.environ.get(throwaway_servers.REDIS_URL_VAR)
    if postgres_url and redis_url:
        yield postgres_url, redis_url
        return
    started = throwaway_servers.start()
    try:
        yield started.postgres_url, started.redis_url
    finally:
        throwaway_servers.stop(started)


@pytest.fixture
def postgres_url(backend_servers) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test; dropped (connections cut) after it."""
    import os

    import psycopg

    admin_url = backend_servers[0]
    name = f"lumiku_t_{os.getpid()}_{next(_test_database_numbers)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield admin_url.rsplit("/", 1)[0] + "/" + name
    from lumiku_local.db import database, is_postgres

    if is_postgres():
        database.close_all()  # what the test's own model calls opened (the app closed its own)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(backend_servers) -> str:
    """A Redis database for this test (the 16 rotate), flushed before the test."""
    import redis

    number = next(_test_database_numbers) % 16
    url = f"{backend_servers[1]}/{number}"
    with redis.Redis.from_url(url) as connection:
        connection.flushdb()
    return url
