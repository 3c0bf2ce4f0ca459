"""`lumiku`: serve (the default) and open the browser; `lumiku doctor` checks the data."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.handlers
import os
import socket
import sys
import threading
import time
from typing import Any

from . import __version__
from .config import Settings, SettingsError, load_settings

LOCK_FILE = "lumiku.lock"
SERVER_FILE = "server.json"  # where a second launch finds the running one


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
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--home", help="data folder (default: your user data folder)")
        if name == "serve":
            sub.add_argument("--host", help="address to bind (default 127.0.0.1)")
            sub.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
            sub.add_argument("--workers", type=int, help="generation worker threads (default 2)")
            sub.add_argument("--no-browser", action="store_true", help="do not open a browser")
        if name == "models":
            sub.add_argument("action", choices=("list", "pull", "rm"), nargs="?", default="list")
            sub.add_argument("key", nargs="?", help="model key, e.g. avatar-creator:sd-turbo")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    flags = {"home": args.home}
    if args.command == "serve":
        flags.update(host=args.host, port=args.port, workers=args.workers)
        if args.no_browser:
            flags["open_browser"] = False
    try:
        settings = load_settings(flags)
    except SettingsError as exc:
        print(f"lumiku: {exc}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        return doctor(settings)
    if args.command == "models":
        from .model_cli import models_command

        return models_command(settings, args.action, args.key)
    return serve(settings)


def doctor(settings: Settings) -> int:
    from .doctor import run_checks

    checks = run_checks(settings)
    for check in checks:
        print(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    failed = [check for check in checks if not check.ok]
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0


def _setup_logging(settings: Settings) -> None:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    file_handler = logging.handlers.RotatingFileHandler(
        settings.logs_dir / "lumiku.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
    )
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[file_handler, console],
        force=True,
    )


def _bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio: NODELAY
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(settings: Settings, port: int) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def _health_status(url: str, timeout: float = 0.5) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return json.loads(response.read()).get("status")
    except urllib.error.HTTPError as exc:  # 503 degraded still means it is Lumiku
        with contextlib.suppress(Exception):
            return json.loads(exc.read()).get("status")
        return None
    except (OSError, ValueError):
        return None


def _announce_when_ready(server: Any, url: str, open_browser: bool, token: str | None) -> None:
    """Once the server has started and /health answers, print the address and open the browser."""
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)  # a flag, not a request: the server starts undisturbed
    if not server.started:
        return
    if _health_status(url, timeout=10) is None:
        print(f"lumiku: the server started but {url}/health does not answer", file=sys.stderr)
        return
    import webbrowser

    address = f"{url}/?token={token}" if token else url
    print(f"Lumiku is running at {address}  (press Ctrl+C to stop)", flush=True)
    if open_browser:
        webbrowser.open(address)


def _open_running(url: str, settings: Settings) -> int:
    import webbrowser

    print(f"Lumiku is already running at {url}", flush=True)
    if settings.open_browser:
        webbrowser.open(url)
    return 0


def serve(settings: Settings) -> int:
    from filelock import FileLock, Timeout

    settings.home.mkdir(parents=True, exist_ok=True)
    # One server per data folder: two would take each other's running jobs for orphans.
    lock = FileLock(settings.home / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        url = _running_url(settings)
        if url and _health_status(url) is not None:
            return _open_running(url, settings)
        print(
            f"lumiku: another Lumiku is using the data folder {settings.home}. "
            "Close it first, or choose another folder with --home.",
            file=sys.stderr,
        )
        return 1
    try:
        return _serve_locked(settings)
    finally:
        (settings.home / SERVER_FILE).unlink(missing_ok=True)
        lock.release()


def _running_url(settings: Settings) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((settings.home / SERVER_FILE).read_text(encoding="utf-8"))["url"]
    return None


def _serve_locked(settings: Settings) -> int:
    import uvicorn

    from .app import create_app
    from .safety import ensure_access_token

    _setup_logging(settings)
    try:
        sock = _bind(settings)
    except OSError as exc:
        url = _url(settings, settings.port)
        if _health_status(url) is not None:
            return _open_running(url, settings)
        try:  # another program has the port: a desktop app just takes a free one
            sock = _bind(settings.with_changes(port=0))
        except OSError:
            print(
                f"lumiku: cannot listen on {settings.host}:{settings.port} ({exc.strerror}) "
                "nor on any other port. Check your firewall or choose one with --port.",
                file=sys.stderr,
            )
            return 1
        print(
            f"Port {settings.port} is used by another program; Lumiku uses "
            f"{sock.getsockname()[1]} instead.",
            flush=True,
        )
    port = sock.getsockname()[1]
    token = None
    if not settings.is_loopback:
        token = ensure_access_token(settings)
        print(f"Sharing on {settings.host}: anyone opening Lumiku needs the token in the URL.")
    url = _url(settings, port)
    (settings.home / SERVER_FILE).write_text(
        json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=10
    )
    bus = app.state.event_bus

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            bus.close()  # end open event streams so shutdown does not wait on browser tabs
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after its shutdown, which would kill us before our
            # own clean-up (and print a KeyboardInterrupt traceback on Ctrl+C): a stop asked
            # for by the user is a normal exit
            self._captured_signals.clear()

    server = Server(config)
    threading.Thread(
        target=_announce_when_ready, args=(server, url, settings.open_browser, token), daemon=True
    ).start()
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
