"""Database connections are returned after each request: bursts of clients leak no open files."""

from __future__ import annotations

import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psutil
from conftest import API, Server, wait_for

CLIENTS = 40
BURSTS = 3
SLACK = 10  # open files allowed above the start: a log rotation, a socket still closing


def open_files(pid: int) -> int:
    process = psutil.Process(pid)
    return process.num_fds() if hasattr(process, "num_fds") else process.num_handles()


def render_processes(pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]


def test_bursts_of_clients_return_their_database_connections(tmp_path):
    server = Server(tmp_path / "home")
    try:
        project_id = server.request("POST", f"{API}/projects", {"name": "busy"})[1]["id"]
        paths = [
            f"{API}/projects",
            f"{API}/projects/{project_id}",
            f"{API}/projects/{project_id}/generations",
            "/api/me",
            "/projects",
            f"/projects/{project_id}",  # the page that starts the render processes
            "/credits",
            "/assets/app.css",  # static files take threads from the same pool, many at once
        ]

        def visit(start: threading.Barrier) -> None:
            start.wait(30)  # all clients at once: the server needs as many threads as it has
            for path in paths:
                with urllib.request.urlopen(server.url + path, timeout=30) as response:
                    assert response.status == 200, path
                    response.read()

        # a server in use: it has served every route once, made an image (its workers keep a
        # connection each) and started its render processes
        for path in paths:
            with urllib.request.urlopen(server.url + path, timeout=30) as response:
                response.read()
        generation = server.request(
            "POST", f"{API}/projects/{project_id}/avatars/generate", {"prompt": "warm", "count": 1}
        )[1]["generation"]
        wait_for(
            lambda: (
                server.get(f"{API}/generations/{generation['id']}")["generation"]["status"]
                == "completed"
            )
        )
        wait_for(lambda: len(render_processes(server.process.pid)) == 2)
        at_start = open_files(server.process.pid)
        for _ in range(BURSTS):
            start = threading.Barrier(CLIENTS)
            with ThreadPoolExecutor(CLIENTS) as clients:
                for visited in [clients.submit(visit, start) for _ in range(CLIENTS)]:
                    visited.result()
            wait_for(
                lambda: open_files(server.process.pid) <= at_start + SLACK,
                timeout=15,
                interval=0.1,
            )
    finally:
        server.kill()
