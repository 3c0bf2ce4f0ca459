"""`lumiku`: serve (the default) and open the browser; `lumiku doctor` checks the data."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.handlers
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings, SettingsError, load_settings

LOCK_FILE = "lumiku.lock"
SERVER_FILE = "server.json"  # where a second launch finds the running one
log = logging.getLogger("lumiku")
_windowed = False  # started without a console (a windowed build): errors go to a dialog too


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumiku", description="Lumiku Local: your avatar studio, on this computer."
    )
    parser.add_argument("--version", action="version", version=f"lumiku {__version__}")
    commands = parser.add_subparsers(dest="command")
    for name, help_text in (
        ("serve", "start the studio (the default)"),
        ("doctor", "check the data folder, database, queue and credits"),
        ("models", "list, download (pull) or remove (rm) AI models"),
        ("worker", "only generate, beside servers sharing PostgreSQL and Redis"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--home", help="data folder (default: your user data folder)")
        if name == "serve":
            sub.add_argument("--host", help="address to bind (default 127.0.0.1)")
            sub.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
            sub.add_argument("--workers", type=int, help="generation worker threads (default 2)")
            sub.add_argument("--no-browser", action="store_true", help="do not open a browser")
            sub.add_argument(
                "--no-workers",
                action="store_true",
                help="serve the API and pages only; `lumiku worker` processes generate",
            )
        if name == "worker":
            sub.add_argument("--workers", type=int, help="generation worker threads (default 2)")
            sub.add_argument(
                "--models",
                help="comma-separated model keys this worker runs (default: every model)",
            )
        if name == "doctor":
            sub.add_argument(
                "--repair",
                action="store_true",
                help="re-import quarantined images as the project 'Recovered images' "
                "(and start a new database if it is missing, empty or damaged)",
            )
            sub.add_argument(
                "--remove-orphans",
                action="store_true",
                help="delete the quarantined images that no avatar names",
            )
        if name == "models":
            sub.add_argument("action", choices=("list", "pull", "rm"), nargs="?", default="list")
            sub.add_argument("key", nargs="?", help="model key, e.g. avatar-creator:sd-turbo")
    return parser


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()  # a frozen child process runs its task, not the CLI
    _ensure_streams()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    flags = {"home": args.home}
    if args.command == "serve":
        flags.update(host=args.host, port=args.port, workers=args.workers)
        if args.no_browser:
            flags["open_browser"] = False
        if args.no_workers:
            flags["run_workers"] = False
    if args.command == "worker":
        flags.update(workers=args.workers, worker_models=args.models)
    try:
        settings = load_settings(flags)
    except SettingsError as exc:
        print(f"lumiku: {exc}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        return doctor(settings, repair=args.repair, remove_orphans=args.remove_orphans)
    if args.command == "models":
        from .model_cli import models_command

        return models_command(settings, args.action, args.key)
    if args.command == "worker":
        from .worker_cli import run_worker

        return run_worker(settings)
    if not settings.run_workers and settings.embedded:
        return _fail(
            "--no-workers leaves generating to `lumiku worker` processes, which share a "
            "PostgreSQL database and a Redis queue: set database_url and queue_url first."
        )
    if settings.uses_postgres:
        from .backends import problems

        found = problems(settings)
        if found:
            return _fail("; ".join(found))
    else:
        from .data_folder import DataFolderProblem, check

        try:
            check(settings)
        except DataFolderProblem as exc:
            return _fail(exc.message)
    return serve(settings)


def doctor(settings: Settings, repair: bool = False, remove_orphans: bool = False) -> int:
    from .doctor import repair_data_folder, run_checks

    if repair or remove_orphans:
        from filelock import FileLock, Timeout

        settings.home.mkdir(parents=True, exist_ok=True)
        lock = FileLock(settings.home / LOCK_FILE)  # the one a running server holds
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return _fail("Lumiku is running on this data folder; quit it first, then repair.")
        try:
            for line in repair_data_folder(settings, reimport=repair, remove=remove_orphans):
                print(line)
        finally:
            lock.release()
    checks = run_checks(settings)
    for check in checks:
        print(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    failed = [check for check in checks if not check.ok]
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0


def _ensure_streams() -> None:
    """A windowed build has no console: sys.stdout and sys.stderr are None, and libraries that
    write to them or call isatty() would crash. Give them a sink; the log file has it all."""
    global _windowed
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            _windowed = True
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


def _fail(message: str) -> int:
    """Tell the user why Lumiku cannot start (console, log, and a dialog when windowed)."""
    print(f"lumiku: {message}", file=sys.stderr, flush=True)
    if log.hasHandlers():  # else logging's last resort would print it a second time
        log.error("%s", message)
    if _windowed and sys.platform == "win32":  # pragma: no cover - Windows without a console
        import ctypes

        ctypes.windll.user32.MessageBoxW(None, message, "Lumiku", 0x10)
    return 1


def _setup_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    handlers: list[logging.Handler] = [console]
    try:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
            )
        )
    except OSError as exc:
        print(f"lumiku: cannot write the log {settings.log_file} ({exc})", file=sys.stderr)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    # Huey logs two INFO lines per task ("Executing", "executed in"): noise in a person's log,
    # and 6 % of a worker's time on one-image jobs. Its warnings and errors still come through;
    # a generation's own story is lumiku's to log. LUMIKU_LOG_LEVEL=debug shows them again.
    if level > logging.DEBUG:
        logging.getLogger("huey").setLevel(logging.WARNING)


def _unwritable(folder: Path) -> str | None:
    """Why Lumiku cannot keep its data in `folder`, or None when it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio: NODELAY
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(settings: Settings, port: int) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class RunningServer:
    """Where a started Lumiku answers; server.json keeps it for a second launch."""

    url: str  # what this computer probes, e.g. http://127.0.0.1:8765
    address: str  # what a person opens: the network address, with the token when shared
    token: str | None = None  # shared beyond loopback, every request needs it

    @property
    def page(self) -> str:
        """The page the launcher opens on this computer: logged in at once when shared."""
        return f"{self.url}/?token={self.token}" if self.token else self.url


def _running_server(settings: Settings, port: int, token: str | None) -> RunningServer:
    url = _url(settings, port)
    if token is None:
        return RunningServer(url, url)
    host = settings.host
    if host in ("0.0.0.0", "::"):
        host = _network_host(socket.AF_INET6 if host == "::" else socket.AF_INET)
    host = f"[{host}]" if ":" in host else host
    return RunningServer(url, f"http://{host}:{port}/?token={token}", token)


def _network_host(family: socket.AddressFamily) -> str:
    """This computer's address on the network other devices share with it, else its name."""
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
        # a UDP connect only picks the outgoing route: no packet is sent
        probe.connect(("10.255.255.255", 1) if family == socket.AF_INET else ("fd00::1", 1))
        address = probe.getsockname()[0]
        if not address.startswith(("127.", "0.")) and address not in ("::1", "::"):
            return address
    return socket.gethostname()


def _health_status(url: str, timeout: float = 0.5, token: str | None = None) -> str | None:
    import urllib.error
    import urllib.request

    # shared beyond loopback, /health too needs the token, from this computer as from any other
    headers = {"x-lumiku-token": token} if token else {}
    try:
        request = urllib.request.Request(f"{url}/health", headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read()).get("status")
    except urllib.error.HTTPError as exc:  # 503 degraded still means it is Lumiku
        with contextlib.suppress(Exception):
            return json.loads(exc.read()).get("status")
        return None
    except (OSError, ValueError):
        return None


def _announce_when_ready(server: Any, running: RunningServer, open_browser: bool) -> None:
    """Once the server has started and /health answers, print the address and open the browser."""
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)  # a flag, not a request: the server starts undisturbed
    if not server.started:
        return
    if _health_status(running.url, timeout=10, token=running.token) is None:
        print(
            f"lumiku: the server started but {running.url}/health does not answer",
            file=sys.stderr,
        )
        return
    import webbrowser

    print(f"Lumiku is running at {running.address}  (press Ctrl+C to stop)", flush=True)
    if open_browser:
        webbrowser.open(running.page)


def _open_running(running: RunningServer, settings: Settings) -> int:
    import webbrowser

    print(f"Lumiku is already running at {running.address}", flush=True)
    if settings.open_browser:
        webbrowser.open(running.page)
    return 0


def serve(settings: Settings) -> int:
    from filelock import FileLock, Timeout

    problem = _unwritable(settings.home)
    if problem:
        return _fail(
            f"cannot write to the data folder {settings.home} ({problem}). Choose another "
            "with --home or LUMIKU_HOME, or give your user write access to it."
        )
    if not settings.embedded:  # several servers share the database: the worker table tells
        return _serve_locked(settings)  # them apart, and each has its own home and port
    # One server per data folder: on one machine, the SQLite file is that server's alone.
    lock = FileLock(settings.home / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        running = _running(settings)
        # a Lumiku holds the folder: give it time to answer even on a busy machine
        if running and _health_status(running.url, timeout=5, token=running.token) is not None:
            return _open_running(running, settings)
        return _fail(
            f"another Lumiku is using the data folder {settings.home}. "
            "Close it first, or choose another folder with --home."
        )
    try:
        return _serve_locked(settings)
    finally:
        (settings.home / SERVER_FILE).unlink(missing_ok=True)
        lock.release()


def _running(settings: Settings) -> RunningServer | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        record = json.loads((settings.home / SERVER_FILE).read_text(encoding="utf-8"))
        return RunningServer(
            record["url"], record.get("address", record["url"]), record.get("token")
        )
    return None


def _record_running(settings: Settings, running: RunningServer) -> None:
    """Write server.json whole (a second launch never reads half of it), private: it holds the
    token when shared."""
    record = {**asdict(running), "pid": os.getpid()}
    path = settings.home / SERVER_FILE
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(record, out)
    os.replace(partial, path)


def _serve_locked(settings: Settings) -> int:
    import uvicorn

    from .app import create_app
    from .safety import ensure_access_token

    _setup_logging(settings)
    token = None if settings.is_loopback else ensure_access_token(settings)
    try:
        sock = _bind(settings)
    except OSError as exc:
        other = _running_server(settings, settings.port, token)
        if _health_status(other.url, token=token) is not None:
            return _open_running(other, settings)
        try:  # another program has the port: a desktop app just takes a free one
            sock = _bind(settings.with_changes(port=0))
        except OSError:
            return _fail(
                f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}) "
                "nor on any other port. Check your firewall or choose one with --port."
            )
        print(
            f"Port {settings.port} is used by another program; Lumiku uses "
            f"{sock.getsockname()[1]} instead.",
            flush=True,
        )
    port = sock.getsockname()[1]
    if token:
        print(f"Sharing on {settings.host}: anyone opening Lumiku needs the token in the URL.")
    running = _running_server(settings, port, token)
    _record_running(settings, running)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # our handlers: the log file, and a console only where there is one
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    bus = app.state.event_bus

    class Server(uvicorn.Server):
        def stop(self) -> None:
            """Quit as Ctrl+C does; for the Quit action and the tray, from any thread."""
            bus.close()  # end open event streams so shutdown does not wait on browser tabs
            self.should_exit = True

        def handle_exit(self, sig: int, frame: Any) -> None:
            bus.close()
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after its shutdown, which would kill us before our
            # own clean-up (and print a KeyboardInterrupt traceback on Ctrl+C): a stop asked
            # for by the user is a normal exit
            self._captured_signals.clear()

    server = Server(config)
    app.state.request_shutdown = server.stop  # POST /api/admin/shutdown
    threading.Thread(
        target=_announce_when_ready, args=(server, running, settings.open_browser), daemon=True
    ).start()
    tray = _start_tray(settings, running, server.stop) if settings.tray else None
    if tray is not None and tray.needs_main_thread:  # macOS: AppKit's loop owns the main thread
        serving = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="lumiku-server"
        )
        serving.start()
        try:
            tray.run_until(serving)
        except Exception:  # no status bar after all: keep serving without the icon
            log.warning("the tray icon failed; Lumiku runs on without it", exc_info=True)
        serving.join()
    else:
        try:
            server.run(sockets=[sock])
        finally:
            if tray is not None:
                tray.stop()
    log.info("Lumiku stopped")
    return 0


def _start_tray(settings: Settings, running: RunningServer, quit_app: Any) -> Any:
    """The tray icon where there is one (Windows, macOS with pystray); None elsewhere."""
    from .tray import make_tray

    def open_page() -> None:
        import webbrowser

        webbrowser.open(running.page)

    return make_tray(running.url, open_page, quit_app, interactive=_isatty())


def _isatty() -> bool:
    with contextlib.suppress(Exception):
        return sys.stdin.isatty()
    return False


if __name__ == "__main__":
    raise SystemExit(main())
