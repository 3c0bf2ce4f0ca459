"""The launcher (issue 5): quit from the page, a windowed start without a console, a data folder
or port that cannot be used, one server per data folder, and the tray icon where there is one."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import API, BASE_URL, Server, lumiku_env, wait_for
from filelock import FileLock

from lumiku_local import cli, tray
from lumiku_local.config import load_settings

QUIT_WITHIN = 30  # seconds: every quit path finishes or checkpoints its jobs within this


def post(url: str, path: str, body: dict | None = None, **headers: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def health(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as response:
            return json.loads(response.read())["status"]
    except (OSError, ValueError):
        return None


# -- Quit: POST /api/admin/shutdown


def test_quit_is_same_origin_only_and_stops_the_server_with_exit_0(tmp_path):
    server = Server(tmp_path / "home")
    try:
        status, body = post(server.url, "/api/admin/shutdown", origin="http://evil.example")
        assert status == 403 and body["error"]["code"] == "cross_origin"
        status, _ = post(server.url, "/api/admin/shutdown", **{"sec-fetch-site": "cross-site"})
        assert status == 403
        assert server.process.poll() is None and health(server.url) == "ok"  # still serving

        status, body = post(server.url, "/api/admin/shutdown", origin=server.url)
        assert status == 202 and body["stopping"] is True
        assert server.process.wait(QUIT_WITHIN) == 0
        assert not (tmp_path / "home" / "server.json").exists()
        assert health(server.url) is None
    finally:
        server.kill()


def test_quit_mid_batch_pauses_the_job_and_the_next_start_finishes_it(tmp_path):
    home = tmp_path / "home"
    server = Server(home, failpoints="engine.generate=delay(0.3)")
    try:
        _, project = post(server.url, f"{API}/projects", {"name": "quit"}, origin=server.url)
        status, body = post(
            server.url,
            f"{API}/projects/{project['id']}/avatars/generate",
            {"prompt": "quit mid-batch", "count": 8},
            origin=server.url,
        )
        assert status == 202
        generation_id = body["generation"]["id"]
        path = f"{API}/generations/{generation_id}"
        wait_for(lambda: server.get(path)["generation"]["countCompleted"] >= 1, timeout=20)
        assert post(server.url, "/api/admin/shutdown", origin=server.url)[0] == 202
        assert server.process.wait(QUIT_WITHIN) == 0
    finally:
        server.kill()

    restarted = Server(home)
    try:
        done = wait_for(
            lambda: (g := restarted.get(path)["generation"])["status"] == "completed" and g,
            timeout=30,
        )
        assert sorted(a["variationKey"] for a in done["avatars"]) == [f"v{n}" for n in range(8)]
        assert done["creditRefunded"] == 0
    finally:
        restarted.kill()


def test_quit_answers_409_where_no_launcher_can_stop_the_server(client):
    """An app served some other way (tests, another ASGI server) has nothing to stop."""
    response = client.post("/api/admin/shutdown", headers={"origin": BASE_URL})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_launcher"


def test_quit_calls_the_launcher_once_and_only_from_the_same_origin(client):
    calls: list[str] = []
    client.app.state.request_shutdown = lambda: calls.append("quit")
    refused = client.post("/api/admin/shutdown", headers={"origin": "http://evil.example"})
    assert refused.status_code == 403 and calls == []
    response = client.post("/api/admin/shutdown", headers={"sec-fetch-site": "same-origin"})
    assert response.status_code == 202
    assert response.json() == {"message": "Lumiku is stopping", "stopping": True}
    assert calls == ["quit"]


# -- a windowed build: no console at all

WINDOWED = """
import sys
sys.stdout = sys.stderr = sys.__stdout__ = sys.__stderr__ = None  # as in a windowed build
from lumiku_local.cli import main
raise SystemExit(main(["serve", "--port", "0", "--no-browser"]))
"""


def test_a_windowed_run_without_stdout_or_stderr_serves_generates_and_logs(tmp_path):
    home = tmp_path / "home"
    process = subprocess.Popen(
        [sys.executable, "-c", WINDOWED],
        env=lumiku_env(home, LUMIKU_LOG_LEVEL="debug"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def running_url() -> str | None:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                return json.loads((home / "server.json").read_text())["url"]
            except (OSError, ValueError):
                return None

        url = wait_for(running_url, timeout=30)
        wait_for(lambda: running_url() and health(url) == "ok", timeout=30)
        _, project = post(url, f"{API}/projects", {"name": "windowed"})
        _, body = post(
            url,
            f"{API}/projects/{project['id']}/avatars/generate",
            {"prompt": "no console", "count": 2},
        )
        generation = f"{url}{API}/generations/{body['generation']['id']}"
        wait_for(
            lambda: (
                json.loads(urllib.request.urlopen(generation).read())["generation"]["status"]
                == "completed"
            ),
            timeout=30,
        )
        assert post(url, "/api/admin/shutdown", origin=url)[0] == 202
        assert process.wait(QUIT_WITHIN) == 0
        assert process.stdout.read() == b""  # nothing reached the (missing) console
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdout.close()
    log = (home / "logs" / "lumiku.log").read_text(encoding="utf-8")
    assert "Lumiku stopped" in log
    assert "Traceback" not in log


# -- a data folder or a port Lumiku cannot use


@pytest.mark.parametrize("where", ["inside a file", "is a file"])
def test_a_data_folder_that_cannot_be_written_is_a_clear_error(tmp_path, capsys, where):
    # a path through a regular file cannot be created even by root (chmod would not stop root)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    home = blocker / "home" if where == "inside a file" else blocker
    assert cli.main(["serve", "--home", str(home), "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write to the data folder {home}" in err
    assert "--home or LUMIKU_HOME" in err
    assert "Traceback" not in err


def test_a_data_folder_that_cannot_be_written_fails_the_command_too(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "lumiku_local", "--no-browser"],
        env=lumiku_env(blocker / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot write to the data folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_that_cannot_be_bound_on_localhost_is_a_clear_error(tmp_path, capsys, monkeypatch):
    """No port at all on 127.0.0.1 (a firewall, a sandbox): a message and exit 1."""

    def refuse(sock: socket.socket, address: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    home = tmp_path / "home"
    assert cli.main(["serve", "--home", str(home), "--port", "8765", "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1:8765 (Permission denied) nor on any other port" in err
    assert "Traceback" not in err
    assert not (home / "server.json").exists()
    assert FileLock(home / cli.LOCK_FILE).acquire(timeout=0)  # released for the next start


def test_a_locked_data_folder_with_no_server_to_open_is_a_clear_error(tmp_path):
    """Another Lumiku holds the folder but answers nowhere (still starting, or hung)."""
    home = tmp_path / "home"
    home.mkdir()
    with FileLock(home / cli.LOCK_FILE):
        result = subprocess.run(
            [sys.executable, "-m", "lumiku_local", "--port", "0", "--no-browser"],
            env=lumiku_env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"another Lumiku is using the data folder {home}" in result.stderr


def test_a_second_launch_on_another_folder_but_the_same_port_opens_the_first(tmp_path):
    first = Server(tmp_path / "one")
    try:
        port = first.url.rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "lumiku_local", "--port", port, "--no-browser"],
            env=lumiku_env(tmp_path / "two"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 0, second.stderr
        assert f"already running at {first.url}" in second.stdout
        assert not (tmp_path / "two" / "server.json").exists()
        assert health(first.url) == "ok"
    finally:
        first.kill()


# -- logs


def test_logs_go_to_the_platform_log_folder_unless_a_data_folder_is_chosen(tmp_path):
    import platformdirs

    default = load_settings({}, environ={})
    assert default.log_file == Path(platformdirs.user_log_dir("Lumiku", appauthor=False)) / (
        "lumiku.log"
    )
    chosen = load_settings({"home": str(tmp_path)}, environ={})
    assert chosen.log_file == tmp_path.resolve() / "logs" / "lumiku.log"


def test_doctor_says_where_the_log_is(tmp_path, capsys):
    assert cli.main(["doctor", "--home", str(tmp_path / "nowhere")]) == 1
    out = capsys.readouterr().out
    assert f"[ok] log: {tmp_path / 'nowhere' / 'logs' / 'lumiku.log'} (not written yet)" in out


# -- the tray icon


class FakeIcon:
    """Stands in for pystray.Icon: records what the launcher does with it."""

    def __init__(self, name, image, title, menu) -> None:
        self.name, self.image, self.title, self.menu = name, image, title, menu
        self.calls: list[str] = []

    def run_detached(self) -> None:
        self.calls.append("run_detached")

    def stop(self) -> None:
        self.calls.append("stop")


def fake_pystray() -> types.ModuleType:
    module = types.ModuleType("pystray")
    module.Icon = FakeIcon
    module.Menu = lambda *items: list(items)
    module.MenuItem = lambda text, action, default=False: (text, action, default)
    return module


def test_no_tray_on_linux_or_without_pystray(monkeypatch):
    def unused() -> None:
        raise AssertionError("not called")

    assert tray.make_tray(BASE_URL, unused, unused, platform="linux") is None
    monkeypatch.setitem(sys.modules, "pystray", None)  # not installed: the import fails
    assert tray.make_tray(BASE_URL, unused, unused, platform="win32") is None


def test_the_windows_tray_opens_the_page_and_quits(monkeypatch):
    monkeypatch.setitem(sys.modules, "pystray", fake_pystray())
    calls: list[str] = []
    icon = tray.make_tray(
        BASE_URL, lambda: calls.append("open"), lambda: calls.append("quit"), platform="win32"
    )
    assert icon is not None and not icon.needs_main_thread
    assert icon.icon.calls == ["run_detached"]  # its own message loop thread
    assert icon.icon.image.size == (64, 64)
    (open_text, open_action, is_default), (quit_text, quit_action, _) = icon.icon.menu
    assert (open_text, is_default, quit_text) == ("Open Lumiku", True, "Quit Lumiku")
    open_action(icon.icon, None)
    quit_action(icon.icon, None)
    assert calls == ["open", "quit"]
    icon.stop()
    assert icon.icon.calls == ["run_detached", "stop"]


def test_the_macos_tray_runs_on_the_main_thread_and_not_from_a_terminal(monkeypatch):
    monkeypatch.setitem(sys.modules, "pystray", fake_pystray())

    def unused() -> None:
        raise AssertionError("not called")

    from_finder = tray.make_tray(BASE_URL, unused, unused, platform="darwin")
    assert from_finder is not None and from_finder.needs_main_thread
    assert from_finder.icon.calls == []  # the launcher runs it on the main thread
    assert tray.make_tray(BASE_URL, unused, unused, platform="darwin", interactive=True) is None
