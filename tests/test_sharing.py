"""Sharing on the network (issue 9, item 11): `lumiku serve --host 0.0.0.0` starts, says the
address with the token, lets in whoever has the token and tells a stranger nothing, not even
which routes exist; a second launch opens the running one, logged in.

Only 127.0.0.1 receives traffic here, although the server listens on every interface."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import API, Client, lumiku_env, spawn_lumiku
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from lumiku_local.app import create_app

READY = re.compile(r"Lumiku is running at (http://(\S+):(\d+)/\?token=(\S+))")


@dataclass
class Shared:
    home: Path
    process: subprocess.Popen
    address: str  # as printed: the network address with the token
    host: str  # the printed address's host
    local: str  # where the test sends its requests: http://127.0.0.1:PORT
    token: str


def _lines(process: subprocess.Popen) -> tuple[queue.Queue[str], threading.Thread]:
    """The process's output, line by line, so that a test waits on it with a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    return lines, pumping


def _wait_ready(process: subprocess.Popen, lines: queue.Queue[str], timeout: float = 60):
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            assert process.poll() is None, "".join(seen)
            continue
        seen.append(line)
        if match := READY.search(line):
            return match
        assert "lumiku:" not in line, "".join(seen)  # the launcher's own error message
    raise AssertionError(f"no ready line within {timeout}s: {''.join(seen)}")


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[Shared]:
    home = tmp_path_factory.mktemp("shared") / "home"
    process = spawn_lumiku(
        "serve", "--host", "0.0.0.0", "--port", "0", "--no-browser", env=lumiku_env(home)
    )
    lines, pumping = _lines(process)
    try:
        match = _wait_ready(process, lines)
        yield Shared(
            home=home,
            process=process,
            address=match.group(1),
            host=match.group(2),
            local=f"http://127.0.0.1:{match.group(3)}",
            token=match.group(4),
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        pumping.join(10)  # the output ends with the process
        process.stdout.close()


def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_the_launcher_says_the_address_with_the_token_once_it_answers(shared):
    assert shared.token == (shared.home / "access-token").read_text().strip()
    assert shared.host not in ("0.0.0.0", "127.0.0.1", "localhost")  # one that other devices reach
    status, body, _ = fetch(f"{shared.local}/health", headers={"x-lumiku-token": shared.token})
    assert (status, body) == (200, b'{"status":"ok"}')


def test_a_stranger_gets_one_answer_for_routes_unknown_paths_and_wrong_methods(shared):
    asks = [
        ("GET", "/health", {}),
        ("GET", f"{API}/projects", {}),
        ("POST", f"{API}/projects", {"content-type": "application/json"}),
        ("GET", "/no-such-page", {}),
        ("GET", "/assets/no-such-file.css", {}),
        ("DELETE", "/health", {}),  # a route that has no DELETE
        ("OPTIONS", "/api/me", {}),
        ("GET", "/api/me", {"x-lumiku-token": "wrong"}),
        ("GET", "/api/me", {"cookie": "lumiku_token=wrong"}),
        ("GET", "/api/me", {"host": "rebound.example"}),  # DNS rebinding onto 127.0.0.1
    ]
    answers = {
        (method, path): fetch(shared.local + path, method, hdrs) for method, path, hdrs in asks
    }
    for ask, (status, body, _) in answers.items():
        assert status == 401, ask
        assert body == answers[("GET", "/health")][1], ask
    assert b"token_required" in answers[("GET", "/health")][1]
    assert b"/health" not in answers[("GET", "/health")][1]
    assert "allow" not in {k.lower() for k in answers[("DELETE", "/health")][2]}


def test_the_token_lets_a_person_in_and_a_cookie_keeps_them_in(shared):
    status, _, headers = fetch(f"{shared.local}/api/me?token={shared.token}")
    assert status == 200
    cookie = headers["set-cookie"].split(";", 1)[0]
    assert fetch(f"{shared.local}/api/me", headers={"cookie": cookie})[0] == 200
    status, _, _ = fetch(f"{shared.local}/no-such-page", headers={"cookie": cookie})
    assert status == 404  # only someone with the token learns what is not there


def browser_hook(folder: Path) -> tuple[dict[str, str], Path]:
    """A BROWSER for Python's webbrowser that records the pages it is asked to open."""
    opened = folder / "opened.txt"
    script = folder / "record-browser"
    script.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"with open({str(opened)!r}, 'a') as out:\n    out.write(sys.argv[1] + '\\n')\n"
    )
    script.chmod(0o755)
    return {"BROWSER": str(script), "DISPLAY": "", "WAYLAND_DISPLAY": ""}, opened


@pytest.mark.parametrize("host", ["0.0.0.0", None])
def test_a_second_launch_opens_the_shared_one_logged_in(shared, tmp_path, host):
    """The same data folder, shared again or started plainly: it opens the running server."""
    hook, opened = browser_hook(tmp_path)
    args = ["serve", "--port", "0", *(["--host", host] if host else [])]
    result = subprocess.run(
        [sys.executable, "-m", "lumiku_local", *args],
        env=lumiku_env(shared.home, **hook),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Lumiku is already running at {shared.address}" in result.stdout
    assert "another Lumiku" not in result.stderr
    page = opened.read_text().split()
    assert page == [f"{shared.local}/?token={shared.token}"]
    status, body, headers = fetch(page[0], headers={"accept": "text/html"})
    assert status == 200 and b"<html" in body.lower()
    assert headers["set-cookie"].startswith(f"lumiku_token={shared.token};")
    assert shared.process.poll() is None  # the first one serves on


# -- in-process: the same checks stand in front of routing


@pytest.fixture
def stranger(settings) -> Iterator[TestClient]:
    shared_settings = settings.with_changes(host="0.0.0.0", access_token="s3cret-token")
    with Client(app=create_app(shared_settings), base_url="http://192.0.2.10:8765") as client:
        yield client


def test_unknown_paths_and_wrong_methods_are_refused_before_routing(stranger):
    expected = stranger.get("/api/me")
    assert expected.status_code == 401
    for response in (
        stranger.get("/no-such-page"),
        stranger.delete("/health"),
        stranger.put("/api/me"),
        stranger.get("/schema/openapi.json"),
    ):
        assert (response.status_code, response.content) == (401, expected.content)
    with_token = {"x-lumiku-token": "s3cret-token"}
    assert stranger.get("/no-such-page", headers=with_token).status_code == 404
    assert stranger.delete("/health", headers=with_token).status_code == 405


def test_a_websocket_without_the_token_is_closed_before_routing(stranger):
    with pytest.raises(WebSocketDisconnect) as refused, stranger.websocket_connect("/no-socket"):
        pass
    assert refused.value.code == 1008
