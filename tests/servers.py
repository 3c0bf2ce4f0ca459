"""Throwaway PostgreSQL (15 on Debian bookworm) and Redis for the tests, on 127.0.0.1.

Each run gets its own temp folder, free ports and fresh data; nothing depends on a server the
machine happens to run (no systemd, no /var/run). From the shell (what `.ci/run` does):

    python -m tests.servers up --env-file FILE     # starts both, writes LUMIKU_TEST_* lines
    python -m tests.servers down --env-file FILE   # stops both, removes the temp folder

From Python (the pytest session does this when the LUMIKU_TEST_* variables are not set):
`servers = start()` ... `stop(servers)`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def _postgres_bin() -> Path:
    """Debian's newest installed PostgreSQL (15 on bookworm), or LUMIKU_TEST_PG_BIN."""
    if os.environ.get("LUMIKU_TEST_PG_BIN"):
        return Path(os.environ["LUMIKU_TEST_PG_BIN"])
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    newest = max(versions, key=lambda p: int(p.parent.name), default=None)
    return newest or Path("/usr/lib/postgresql/15/bin")


PG_BIN = _postgres_bin()
REDIS_SERVER = os.environ.get("LUMIKU_TEST_REDIS_SERVER", "/usr/bin/redis-server")
INSTALL_HINT = "install them with: apt-get install postgresql redis-server"
POSTGRES_URL_VAR = "LUMIKU_TEST_POSTGRES_URL"
REDIS_URL_VAR = "LUMIKU_TEST_REDIS_URL"
DIR_VAR = "LUMIKU_TEST_SERVERS_DIR"
PG_USER = "postgres"
# test speed: the data is thrown away at the end, so durability buys nothing
PG_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class ServersError(RuntimeError):
    """A server could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Servers:
    """Where the two servers of one run live."""

    root: Path  # the temp folder: pg/ (data), pg-sock/, redis/ (pid file, log)
    postgres_port: int
    redis_port: int

    @property
    def postgres_url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.postgres_port}/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    def env(self) -> dict[str, str]:
        return {
            POSTGRES_URL_VAR: self.postgres_url,
            REDIS_URL_VAR: self.redis_url,
            DIR_VAR: str(self.root),
        }


def check_binaries() -> None:
    missing = [str(p) for p in (PG_BIN / "initdb", PG_BIN / "pg_ctl") if not p.is_file()]
    if not Path(REDIS_SERVER).is_file():
        missing.append(REDIS_SERVER)
    if missing:
        raise ServersError(
            f"the PostgreSQL 15 / Redis test servers are missing ({', '.join(missing)}); "
            + INSTALL_HINT
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", PG_USER, "--", *args]


def _run(args: list[str], what: str, timeout: float = 120) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ServersError(f"{what} failed ({result.returncode}): {result.stderr or result.stdout}")


def _make_dirs() -> Path:
    root = Path(tempfile.mkdtemp(prefix="lumiku-servers-"))
    root.chmod(0o755)  # the postgres user must reach pg/ inside it
    for name in ("pg", "pg-sock"):
        (root / name).mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(root / name, PG_USER, PG_USER)
    (root / "redis").mkdir(mode=0o700)
    return root


def _start_postgres(root: Path) -> int:
    data = root / "pg"
    _run(
        _as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust"]
            + ["-E", "UTF8", "--locale=C", "--no-sync"]
        ),
        "initdb",
    )
    for _attempt in range(5):  # a free port can be taken between asking and listening
        port = free_port()
        conf = {
            **PG_SETTINGS,
            "port": str(port),
            "unix_socket_directories": f"'{root / 'pg-sock'}'",
        }
        (data / "postgresql.auto.conf").write_text(
            "".join(f"{key} = {value}\n" for key, value in conf.items())
        )
        log = root / "pg-sock" / "postgres.log"
        result = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w"])
            + ["-t", "60", "start"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        if result.returncode == 0:
            return port
        text = log.read_text(errors="replace") if log.exists() else result.stderr
        if "Address already in use" not in text:
            raise ServersError(f"PostgreSQL did not start: {result.stderr}\n{text[-2000:]}")
    raise ServersError("PostgreSQL found no free port in 5 tries")


def _start_redis(root: Path) -> int:
    folder = root / "redis"
    for _attempt in range(5):
        port = free_port()
        log = folder / "redis.log"
        result = subprocess.run(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes"]
            + ["--save", "", "--appendonly", "no", "--dir", str(folder)]
            + ["--pidfile", str(folder / "redis.pid"), "--logfile", str(log)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise ServersError(f"redis-server failed: {result.stderr or result.stdout}")
        if _wait_redis(port, folder / "redis.pid", log):
            return port
    raise ServersError("Redis found no free port in 5 tries")


def _wait_redis(port: int, pidfile: Path, log: Path, timeout: float = 30) -> bool:
    """True once Redis answers PING; False when it gave up on a taken port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG") and pidfile.exists():
                    return True
        except OSError:
            pass
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Address already in use" in text:
            log.unlink()
            return False
        time.sleep(0.05)
    raise ServersError(f"Redis did not answer on port {port} within {timeout}s")


def start() -> Servers:
    """Start PostgreSQL and Redis in a new temp folder; on any failure nothing is left running."""
    check_binaries()
    root = _make_dirs()
    try:
        postgres_port = _start_postgres(root)
        redis_port = _start_redis(root)
    except BaseException:
        stop_dir(root)
        raise
    return Servers(root, postgres_port, redis_port)


def stop(servers: Servers) -> None:
    stop_dir(servers.root)


def stop_dir(root: Path) -> None:
    """Stop whatever of the two servers runs from `root`, then remove it. Idempotent."""
    if not root.name.startswith("lumiku-servers-"):
        raise ServersError(f"{root} is not a test-servers folder; refusing to remove it")
    if (root / "pg" / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(root / "pg"), "-m", "immediate"])
            + ["-w", "-t", "60", "stop"],
            capture_output=True,
            timeout=90,
        )
    pidfile = root / "redis" / "redis.pid"
    if pidfile.exists():
        _kill_and_wait(int(pidfile.read_text().strip() or 0))
    shutil.rmtree(root, ignore_errors=True)


def _kill_and_wait(pid: int, timeout: float = 30) -> None:
    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--env-file", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            servers = start()
            args.env_file.write_text("".join(f"{k}={v}\n" for k, v in servers.env().items()))
            print(f"PostgreSQL at {servers.postgres_url}, Redis at {servers.redis_url}")
        else:
            root = read_env_file(args.env_file).get(DIR_VAR)
            if root and Path(root).exists():
                stop_dir(Path(root))
    except ServersError as exc:
        print(f"tests.servers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
