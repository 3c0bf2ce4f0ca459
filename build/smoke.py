"""Smoke test of the built app: does the binary we ship start, generate and quit?

    python build/smoke.py [--binary dist/lumiku/lumiku]

Starts the binary with a temporary data folder and --no-browser; waits for /health; checks the
worker is online and the home page renders; creates a project, generates 4 instant avatars,
fetches one PNG and uploads a WebP and a JPEG (Pillow's plugins made it in); starts a
second instance, which must exit 0 without a second server; refuses a cross-origin Quit; quits
through POST /api/admin/shutdown and expects exit 0 within 30 s. Prints the folder's size and the
time to the first /health. Standard library only: it runs under any Python, the build's or not.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API = "/api/apps/avatar-creator"
QUIT_WITHIN = 30.0
# 8x8 orange images, made by Pillow
UPLOADS = {
    "photo.webp": "UklGRj4AAABXRUJQVlA4IDIAAADQAQCdASoIAAgAAUAmJaACdLoB+AADsAD+8JCj/4cp8OU+"
    "HKf8OU/9QZ8tD5aH63AAAA==",
    "photo.jpg": "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHB"
    "wgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMj"
    "IyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQF"
    "BgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGR"
    "olJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ip"
    "qrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAA"
    "ECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYk"
    "NOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoq"
    "OkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDraKKK"
    "/KD7Q//Z",
}


class SmokeFailure(Exception):
    pass


def wait_for(what: str, predicate: Callable[[], Any], timeout: float) -> Any:
    """Poll predicate() until it is truthy; fail saying what did not happen by the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SmokeFailure(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)


def request(
    url: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw_body: bytes | None = None,
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else raw_body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str) -> Any:
    status, raw = request(url)
    if status != 200:
        raise SmokeFailure(f"GET {url} answered {status}: {raw[:300]!r}")
    return json.loads(raw)


def multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "lumiku-smoke-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def health(url: str) -> str | None:
    try:
        status, raw = request(f"{url}/health")
        return json.loads(raw).get("status")
    except (OSError, ValueError):
        return None  # not listening yet


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def default_binary() -> Path:
    return ROOT / "dist" / "lumiku" / ("lumiku.exe" if sys.platform == "win32" else "lumiku")


def run(binary: Path, home: Path, output: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUMIKU_")}
    env["LUMIKU_HOME"] = str(home)
    args = [str(binary), "serve", "--port", "0", "--no-browser"]
    server_file = home / "server.json"

    with output.open("w", encoding="utf-8") as out:
        started = time.monotonic()
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            # the port file appears once the socket listens (it is how a second launch finds us)
            url = wait_for(
                "the server's port file",
                lambda: _alive(process) and read_server_file(server_file).get("url"),
                timeout=60,
            )
            wait_for("/health ok", lambda: _alive(process) and health(url) == "ok", timeout=60)
            first_health = time.monotonic() - started
            print(f"time to first /health: {first_health:.2f} s ({url})", flush=True)

            code, page = request(f"{url}/")
            if code != 200 or b"<html" not in page.lower():
                raise SmokeFailure(f"the home page answered {code}: {page[:300]!r}")
            print("home page: 200 (templates and assets are bundled)", flush=True)

            workers = get_json(f"{url}/api/health/workers")
            status = workers["avatar-generator"]["status"]
            if status != "online":
                raise SmokeFailure(f"the worker is {status}: {workers}")
            print("worker: online", flush=True)

            code, raw = request(f"{url}{API}/projects", "POST", {"name": "Smoke test"})
            if code != 201:
                raise SmokeFailure(f"create project answered {code}: {raw[:300]!r}")
            project_id = json.loads(raw)["id"]
            code, raw = request(
                f"{url}{API}/projects/{project_id}/avatars/generate",
                "POST",
                {"prompt": "a smiling astronaut", "count": 4},
            )
            if code != 202:
                raise SmokeFailure(f"generate answered {code}: {raw[:300]!r}")
            generation_id = json.loads(raw)["generation"]["id"]
            clock = time.monotonic()
            generation = wait_for(
                "the generation to finish",
                lambda: (
                    (g := get_json(f"{url}{API}/generations/{generation_id}")["generation"])[
                        "status"
                    ]
                    in ("completed", "failed", "canceled")
                    and g
                ),
                timeout=60,
            )
            if generation["status"] != "completed" or len(generation["avatars"]) != 4:
                raise SmokeFailure(f"generation ended {generation['status']}: {generation}")
            print(f"4 instant avatars in {time.monotonic() - clock:.2f} s", flush=True)
            code, png = request(url + generation["avatars"][0]["imageUrl"])
            if code != 200 or not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise SmokeFailure(f"the avatar image answered {code}, {png[:16]!r}")
            print(f"fetched a {len(png)} byte PNG", flush=True)

            # uploads decode with Pillow: the plugins the spec keeps must still be there
            for name, image in UPLOADS.items():
                body, content_type = multipart("file", name, base64.b64decode(image))
                code, raw = request(
                    f"{url}{API}/projects/{project_id}/avatars/upload",
                    "POST",
                    raw_body=body,
                    headers={"content-type": content_type},
                )
                if code != 201:
                    raise SmokeFailure(f"uploading {name} answered {code}: {raw[:300]!r}")
            print(f"uploaded {', '.join(UPLOADS)}", flush=True)

            # the Pose Generator: its skeletons draw with Pillow's ImageDraw, its bodies too
            poses_api = "/api/apps/pose-generator"
            code, png = request(f"{url}{poses_api}/poses/standing-neutral/skeleton.png?size=128")
            if code != 200 or not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise SmokeFailure(f"a pose skeleton answered {code}: {png[:200]!r}")
            code, raw = request(
                f"{url}{poses_api}/generate",
                "POST",
                {
                    "avatarId": generation["avatars"][0]["id"],
                    "poseIds": ["standing-neutral", "gesture-wave"],
                    "variations": 2,
                },
            )
            if code != 202:
                raise SmokeFailure(f"pose generate answered {code}: {raw[:300]!r}")
            pose_id = json.loads(raw)["generation"]["id"]
            posed = wait_for(
                "the pose generation to finish",
                lambda: (
                    (g := get_json(f"{url}{poses_api}/generations/{pose_id}")["generation"])[
                        "status"
                    ]
                    in ("completed", "failed", "canceled")
                    and g
                ),
                timeout=60,
            )
            if posed["status"] != "completed" or len(posed["avatars"]) != 4:
                raise SmokeFailure(f"pose generation ended {posed['status']}: {posed}")
            code, archive = request(f"{url}{poses_api}/generations/{pose_id}/export")
            if code != 200 or not archive.startswith(b"PK"):
                raise SmokeFailure(f"the pose export answered {code}: {archive[:200]!r}")
            print(f"4 pose images and a {len(archive)} byte export", flush=True)

            second = subprocess.run(
                args, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
            )
            if second.returncode != 0:
                raise SmokeFailure(
                    f"the second instance exited {second.returncode}: "
                    f"{second.stdout}{second.stderr}"
                )
            running = read_server_file(server_file)
            first = {"url": url, "pid": process.pid}
            if {key: running.get(key) for key in first} != first or not _alive(process):
                raise SmokeFailure(f"the second instance replaced the first: {running}")
            if health(url) != "ok":
                raise SmokeFailure("the first instance stopped answering after the second")
            print("second instance: exit 0, no second server", flush=True)

            code, raw = request(
                f"{url}/api/admin/shutdown", "POST", headers={"origin": "http://evil.example"}
            )
            if code != 403 or not _alive(process):
                raise SmokeFailure(f"a cross-origin Quit answered {code}: {raw[:200]!r}")
            code, raw = request(f"{url}/api/admin/shutdown", "POST", headers={"origin": url})
            if code != 202:
                raise SmokeFailure(f"Quit answered {code}: {raw[:300]!r}")
            clock = time.monotonic()
            try:
                exit_code = process.wait(QUIT_WITHIN)
            except subprocess.TimeoutExpired:
                raise SmokeFailure(f"still running {QUIT_WITHIN:.0f} s after Quit") from None
            if exit_code != 0:
                raise SmokeFailure(f"exited {exit_code} after Quit")
            print(f"quit: exit 0 in {time.monotonic() - clock:.2f} s", flush=True)
            if server_file.exists():
                raise SmokeFailure("the port file outlived the server")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def read_server_file(path: Path) -> dict[str, Any]:
    """The running server's {"url", "pid"}; empty while it is missing or half written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _alive(process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise SmokeFailure(f"the server exited early with {process.returncode}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke test of the built Lumiku binary.")
    parser.add_argument("--binary", type=Path, default=default_binary())
    args = parser.parse_args(argv)
    binary = args.binary.resolve()
    if not binary.is_file():
        print(f"smoke: {binary} does not exist; build it with build/build.py", file=sys.stderr)
        return 2
    size = folder_size(binary.parent) / 1e6
    print(f"binary: {binary} ({binary.stat().st_size / 1e6:.1f} MB; folder {size:.1f} MB)")
    home = Path(tempfile.mkdtemp(prefix="lumiku-smoke-"))
    output = home.parent / f"{home.name}.out"
    try:
        run(binary, home / "home", output)
    except (SmokeFailure, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
        print(f"SMOKE FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        for log in (output, home / "home" / "logs" / "lumiku.log"):
            if log.is_file():
                text = log.read_text(encoding="utf-8", errors="replace")
                print(f"--- {log.name}\n{text[-4000:]}")
        return 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
        output.unlink(missing_ok=True)
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
