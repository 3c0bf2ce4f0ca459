"""The test servers and the backend fixtures themselves: PostgreSQL and Redis start, every test
gets a fresh database and a flushed Redis db, and the `backends` marker runs a test twice."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
import servers as throwaway_servers
from conftest import backend_env

ROOT = Path(__file__).resolve().parent.parent
# what one test left behind, for the next one to check that it was cleaned up
_left_behind: dict[str, list] = {"databases": [], "connections": []}


def test_postgres_runs_local_and_fast(postgres_url):
    with psycopg.connect(postgres_url) as connection:
        settings = dict(connection.execute("SELECT name, setting FROM pg_settings").fetchall())
        version = connection.execute("SHOW server_version_num").fetchone()[0]
    assert int(version) >= 150000
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["max_connections"] == "300"
    assert (settings["fsync"], settings["synchronous_commit"]) == ("off", "off")
    assert settings["full_page_writes"] == "off"
    assert postgres_url.startswith("postgresql://postgres@127.0.0.1:")


@pytest.mark.parametrize("run", [1, 2, 3])
def test_each_test_gets_a_fresh_database_and_the_last_one_is_dropped(postgres_url, run):
    name = postgres_url.rsplit("/", 1)[1]
    assert name.startswith("lumiku_t_")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        existing = connection.execute("SELECT datname FROM pg_database").fetchall()
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        connection.execute("CREATE TABLE probe (run integer)")  # fails if a run saw another's
    assert tables == []
    assert name not in _left_behind["databases"]
    # the previous run's database is gone although it left a connection open on it
    assert not {row[0] for row in existing} & set(_left_behind["databases"])
    for leftover in _left_behind["connections"]:
        with pytest.raises(psycopg.OperationalError):
            leftover.execute("SELECT 1")
        leftover.close()
    _left_behind["connections"] = [psycopg.connect(postgres_url, autocommit=True)]
    _left_behind["databases"].append(name)


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_flushed_redis_db(redis_url, backend_servers, run):
    base, number = redis_url.rsplit("/", 1)
    assert base == backend_servers[1] and 0 <= int(number) < 16
    with redis.Redis.from_url(redis_url) as connection:
        assert connection.dbsize() == 0
        connection.set("probe", run)
        assert connection.get("probe") == str(run).encode()
    for other in range(16):  # litter every db: the next run's db must still be empty
        with redis.Redis.from_url(f"{base}/{other}") as connection:
            connection.set("left-behind", run)


@pytest.mark.backends
def test_backends_marker_puts_the_test_on_its_backend(
    request, backend, backend_overrides, settings
):
    assert request.node.name.endswith(f"[{backend}]")
    assert settings.uses_postgres is settings.uses_redis is (backend == "pg")
    if backend == "sqlite":
        assert backend_overrides == {} and backend_env(settings) == {}
    else:
        assert backend_overrides["database_url"].startswith("postgresql://postgres@127.0.0.1:")
        assert backend_overrides["database_url"].rsplit("/", 1)[1].startswith("lumiku_t_")
        assert backend_overrides["queue_url"].startswith("redis://127.0.0.1:")
        assert backend_env(settings) == {
            "LUMIKU_DATABASE_URL": backend_overrides["database_url"],
            "LUMIKU_QUEUE_URL": backend_overrides["queue_url"],
        }


@pytest.mark.backends
@pytest.mark.sqlite_only
def test_sqlite_only_marker_keeps_one_backend(backend):
    assert backend == "sqlite"


def test_the_markers_yield_the_expected_test_ids():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["tests/test_servers.py", "-k", "marker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids = [line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line]
    assert ids == [
        "test_backends_marker_puts_the_test_on_its_backend[sqlite]",
        "test_backends_marker_puts_the_test_on_its_backend[pg]",
        "test_sqlite_only_marker_keeps_one_backend[sqlite]",
        "test_the_markers_yield_the_expected_test_ids",
    ], result.stdout + result.stderr


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_the_command_line_starts_and_stops_both_servers(tmp_path):
    env_file = tmp_path / "servers.env"
    command = [sys.executable, "-m", "tests.servers"]
    up = subprocess.run(
        [*command, "up", "--env-file", str(env_file)], cwd=ROOT, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    env = throwaway_servers.read_env_file(env_file)
    try:
        with psycopg.connect(env["LUMIKU_TEST_POSTGRES_URL"]) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        with redis.Redis.from_url(env["LUMIKU_TEST_REDIS_URL"]) as connection:
            assert connection.ping()
    finally:
        for _ in range(2):  # the second `down` finds nothing to do, and says so with rc 0
            down = subprocess.run(
                [*command, "down", "--env-file", str(env_file)], cwd=ROOT, capture_output=True
            )
            assert down.returncode == 0, down.stderr
    ports = [
        int(env[var].rsplit(":", 1)[1].split("/")[0])
        for var in ("LUMIKU_TEST_POSTGRES_URL", "LUMIKU_TEST_REDIS_URL")
    ]
    assert not [port for port in ports if _answers(port)]
    assert not Path(env["LUMIKU_TEST_SERVERS_DIR"]).exists()


def test_missing_binaries_say_how_to_install_them(monkeypatch, tmp_path):
    monkeypatch.setattr(throwaway_servers, "PG_BIN", tmp_path / "no-postgres")
    with pytest.raises(throwaway_servers.ServersError, match="apt-get install postgresql redis"):
        throwaway_servers.start()
