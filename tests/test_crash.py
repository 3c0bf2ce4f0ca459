"""Crash tests: the real server as a subprocess, killed mid-batch, restarted; nothing is lost."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import API, Server, backend_env, doctor, lumiku_env, spawn_lumiku, wait_for

pytestmark = pytest.mark.backends

START_TIMEOUT = 30


def assert_batch_recovered(server: Server, project: str, home: Path, env: dict[str, str]) -> None:
    generations = server.get(f"{API}/projects/{project}/generations")["generations"]
    assert len(generations) == 1
    generation_id = generations[0]["id"]
    done = server.wait_generation(generation_id)
    assert done["status"] == "completed", done
    keys = [avatar["variationKey"] for avatar in done["avatars"]]
    assert sorted(keys) == ["v0", "v1", "v2", "v3"]
    assert done["countCompleted"] == 4 and done["creditRefunded"] == 0
    assert server.get("/api/me")["creditBalance"] == 1000 - 4
    history = server.get("/api/credits/history")["entries"]
    assert [(e["kind"], e["amount"]) for e in history] == [("debit", -4), ("grant", 1000)]
    assert not list((home / "files").rglob("*.tmp"))
    assert (home / "lumiku.db").exists() is not bool(env)  # the data is where the backend says
    result = doctor(home, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_sigkill_mid_batch_then_restart_completes_exactly_once(servers, tmp_path, settings):
    home = tmp_path / "home"
    server = servers("engine.generate=delay(0.4)")
    status, project = server.request("POST", f"{API}/projects", {"name": "crash"})
    assert status == 201
    status, body = server.request(
        "POST",
        f"{API}/projects/{project['id']}/avatars/generate",
        {"prompt": "crash test", "count": 4},
    )
    assert status == 202
    generation_id = body["generation"]["id"]
    wait_for(
        lambda: (
            server.get(f"{API}/generations/{generation_id}")["generation"]["countCompleted"] >= 1
        ),
        timeout=20,
    )
    server.kill()
    let_the_lease_pass_for_temp_files(home, settings)
    restarted = servers()
    assert_batch_recovered(restarted, project["id"], home, backend_env(settings))


def raw_database(settings, home: Path):
    """A plain DB-API connection to the test's database, beside the app (a crash's leftovers);
    committed when the block ends."""
    if settings.uses_postgres:
        import psycopg

        return psycopg.connect(settings.database_url)
    import sqlite3

    return sqlite3.connect(home / "lumiku.db")


def let_the_lease_pass_for_temp_files(home: Path, settings) -> None:
    """On PostgreSQL the start-up sweep leaves temp files younger than the lease (a worker on
    another machine may be writing one): age the crash's leftovers past it, as time would."""
    if not settings.uses_postgres:
        return
    past = time.time() - settings.lease_seconds - 60
    for path in (home / "files").rglob("*.tmp"):
        os.utime(path, (past, past))


CRASH_POINTS = [
    "engine.generate=crash@3",  # before the third image is rendered
    "storage.save=crash@4",  # a temp file written, not yet renamed
    "generation.record=crash@2",  # the file is in place, its row is not
    "generation.finish=crash",  # every image stored, the final status not written
    "generation.enqueue=crash",  # committed and charged, never enqueued
]


@pytest.mark.parametrize("failpoint", CRASH_POINTS)
def test_crash_failpoint_then_restart_completes_the_batch(servers, tmp_path, settings, failpoint):
    home = tmp_path / "home"
    server = servers(failpoint)
    status, project = server.request("POST", f"{API}/projects", {"name": "crash"})
    assert status == 201
    # the enqueue crash takes the server down before it answers
    with contextlib.suppress(urllib.error.URLError, ConnectionError):
        server.request(
            "POST",
            f"{API}/projects/{project['id']}/avatars/generate",
            {"prompt": "crash test", "count": 4},
        )
    assert server.wait_exit() == -signal.SIGKILL
    let_the_lease_pass_for_temp_files(home, settings)
    restarted = servers()
    assert_batch_recovered(restarted, project["id"], home, backend_env(settings))


# the single-instance lock is SQLite's; on PostgreSQL several servers on one database is the point
@pytest.mark.sqlite_only
def test_second_launch_on_the_same_data_folder_opens_the_running_one(servers, tmp_path):
    first = servers()
    second = subprocess.run(
        [sys.executable, "-m", "lumiku_local", "serve", "--port", "0", "--no-browser"],
        env=lumiku_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert f"already running at {first.url}" in second.stdout
    assert first.get("/health") == {"status": "ok"}  # untouched


def test_deleted_avatar_files_left_by_a_crash_are_swept_at_start(servers, tmp_path, settings):
    home = tmp_path / "home"
    server = servers()
    status, project = server.request("POST", f"{API}/projects", {"name": "sweep"})
    status, body = server.request(
        "POST", f"{API}/projects/{project['id']}/avatars/generate", {"prompt": "x"}
    )
    generation_id = body["generation"]["id"]
    wait_for(
        lambda: (
            server.get(f"{API}/generations/{generation_id}")["generation"]["status"] == "completed"
        )
    )
    server.kill()
    # as if the process died between committing a delete (which records its files) and
    # unlinking them
    with raw_database(settings, home) as db:
        db.execute("update avatar set deleted_at = '2026-01-01 00:00:00'")
        for column in ("image_file", "thumbnail_file"):
            db.execute(
                f"insert into file_deletion (name, recorded_at) "
                f"select {column}, '2026-01-01 00:00:00' from avatar"
            )
    assert list((home / "files").rglob("*.png"))
    restarted = servers()
    assert restarted.get("/health") == {"status": "ok"}
    assert not list((home / "files").rglob("*.*"))  # removed, not quarantined


def test_serve_opens_the_browser_once_health_answers(tmp_path, settings):
    """`lumiku` opens the browser at its URL; $BROWSER stands in for the user's browser."""
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.py"
    fake_browser.write_text(
        "import sys, urllib.request, pathlib\n"
        "status = urllib.request.urlopen(sys.argv[1] + '/health').status\n"
        f"pathlib.Path({str(opened)!r}).write_text(sys.argv[1] + ' ' + str(status))\n"
    )
    browser = f"{sys.executable} {fake_browser} %s"
    env = lumiku_env(tmp_path / "home", BROWSER=browser, **backend_env(settings))
    process = spawn_lumiku("--port", "0", env=env)
    try:
        line = process.stdout.readline()
        url = line.split("running at ", 1)[1].split()[0]
        wait_for(lambda: opened.exists() and opened.read_text(), timeout=30)
        assert opened.read_text() == f"{url} 200"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0  # a graceful stop on SIGTERM
        process.stdout.close()


def test_a_port_taken_by_another_program_falls_back_to_a_free_one(tmp_path, settings):
    import socket

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    taken = squatter.getsockname()[1]
    env = lumiku_env(tmp_path / "home", **backend_env(settings))
    process = spawn_lumiku("--port", str(taken), "--no-browser", env=env)
    try:
        notice = process.stdout.readline()
        running = process.stdout.readline()
        assert f"Port {taken} is used by another program" in notice
        url = running.split("running at ", 1)[1].split()[0]
        assert not url.endswith(f":{taken}")
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        process.stdout.close()
        squatter.close()
