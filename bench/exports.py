"""Export benchmark: a zip of 200 images, streamed, next to zipping them all in memory.

Writes 200 distinct ~200 KB PNGs with lumiku_local.storage into a temp folder, then, each in a
fresh process (so its peak RSS is its own): `exports.plan` + `exports.stream` consumed chunk by
chunk, and the baseline of reading every file into memory and zipping them with zipfile into a
BytesIO. Reports time, tracemalloc peak and peak RSS above the process's start. Target: the
stream's tracemalloc peak under 10 % of the images' total size.

Then the Avatar Creator's POST /api/apps/avatar-creator/exports of 200 Instant avatars (512 px)
on the real app served by uvicorn (one fresh process and home per variant, its RSS sampled every
5 ms while the answer streams): the stored PNGs, and profile PNGs at 1024, 512 and 128 px cut round,
each beside its baseline in the same run: the same files read, or the same PNGs made, all into
memory and zipped in a BytesIO.

Run: python bench/exports.py [--images 200] [--side 260] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_images(files_dir: Path, count: int, side: int) -> list[dict]:
    """Rows as `.dicts()` gives them, for PNGs saved uncompressed: side x side x 3 bytes each."""
    from PIL import Image

    from lumiku_local import storage

    rows = []
    for index in range(count):
        image = Image.new("RGB", (side, side), (index % 256, index // 256, 200))
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=0)
        stored = storage.write(files_dir, storage.prepare_png(out.getvalue(), image))
        rows.append(
            {
                "id": f"avatar{index:04d}",
                "name": f"Pose {index}",
                "generation": "bench",
                "variation_key": f"v{index}",
                "seed": index,
                "model_key": "instant",
                "prompt": "a bench avatar",
                "image_file": stored.image_file,
                "width": side,
                "height": side,
                "deleted_at": None,
            }
        )
    return rows


def stream_export(files_dir: Path, rows: list[dict]) -> int:
    from lumiku_local import exports

    return sum(len(chunk) for chunk in exports.stream(exports.plan(files_dir, rows)))


def zip_in_memory(files_dir: Path, rows: list[dict]) -> int:
    from lumiku_local import storage

    contents = [storage.resolve(files_dir, row["image_file"]).read_bytes() for row in rows]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for row, content in zip(rows, contents, strict=True):
            archive.writestr(f"{row['id']}.png", content)
        archive.writestr("manifest.json", json.dumps(rows))
    return len(out.getvalue())


def measure(variant: str, files_dir: Path, rows_file: Path, rounds: int) -> dict:
    """One variant in this process: best time of `rounds`, then one traced run for memory."""
    import psutil

    run = {"stream": stream_export, "baseline": zip_in_memory}[variant]
    from lumiku_local import exports, storage  # noqa: F401  (imports are not the export's memory)

    rows = json.loads(rows_file.read_text())
    start_rss = psutil.Process().memory_info().rss
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        size = run(files_dir, rows)
        timings.append(time.perf_counter() - started)
    peak_rss = _peak_rss()
    tracemalloc.start()
    run(files_dir, rows)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "seconds": min(timings),
        "zip_bytes": size,
        "traced_peak": traced_peak,
        "rss_growth": max(0, peak_rss - start_rss),
    }


PROFILE = {"sizes": [1024, 512, 128], "shape": "circle"}
API_SIDE = 512  # the Instant engine's default size


def api_export(home: Path, count: int, side: int, variant: str) -> dict:
    """One POST /exports to the app served by uvicorn in a thread (or its in-memory baseline),
    in this process: time to the last byte and the process's peak RSS over its level before."""
    import http.client
    import socket
    import threading

    import psutil
    import uvicorn

    from lumiku_local import exports, profile_images
    from lumiku_local.app import create_app
    from lumiku_local.config import load_settings
    from lumiku_local.db import connection

    settings = load_settings({"home": str(home), "open_browser": False}, environ={})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    port = sock.getsockname()[1]
    api = "/api/apps/avatar-creator"

    def call(method: str, path: str, body: dict) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
        return conn.getresponse()

    project = json.loads(call("POST", f"{api}/projects", {"name": "Bench"}).read())["id"]
    ids = _insert_avatars(settings, project, count, side)
    body = {"avatarIds": ids, **(PROFILE if "profile" in variant else {})}
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    started = time.perf_counter()
    if variant.startswith("api"):
        answer = call("POST", f"{api}/exports", body)
        assert answer.status == 200, answer.read()
        size = 0
        while chunk := answer.read(65536):
            size += len(chunk)
    else:  # the baseline: every PNG in memory at once, then one zip in a BytesIO
        profile = profile_images.choose(body.get("sizes"), body.get("shape"))
        with connection():
            export = exports.for_avatars(settings.files_dir, ids, profile)
        if profile.is_original:
            contents = [entry.path.read_bytes() for entry in export.entries]
        else:
            contents = [
                profile_images.render(entry.path, entry.image, {}) for entry in export.entries
            ]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for entry, content in zip(export.entries, contents, strict=True):
                archive.writestr(entry.name, content)
        size = len(out.getvalue())
    elapsed = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    done.set()
    sampler.join()
    server.should_exit = True
    return {
        "seconds": elapsed,
        "zip_bytes": size,
        "traced_peak": traced_peak,
        "rss_growth": peak[0] - baseline,
    }


def _insert_avatars(settings, project_id: str, count: int, side: int) -> list[str]:
    """Instant avatars as users export them (a few styles), written by storage."""
    from lumiku_local import storage
    from lumiku_local.db import connection, write_transaction
    from lumiku_local.engines.dicebear import DiceBearEngine, engine_seed
    from lumiku_local.models import Avatar, AvatarProject

    engine = DiceBearEngine(processes=1)
    styles = ("adventurer", "bottts", "lorelei", "avataaars")
    ids = []
    with connection(), write_transaction():
        user_id = AvatarProject.get_by_id(project_id).user_id
        for index in range(count):
            style = styles[index % len(styles)]
            png = engine.render_png(style, engine_seed("a bench avatar", index), side, side)
            stored = storage.write(settings.files_dir, storage.prepare_png(png))
            row = Avatar.create(
                user=user_id,
                project=project_id,
                name=f"Bench {index}",
                source="generated",
                variation_key=f"v{index}",
                seed=index,
                model_key="instant",
                prompt="a bench avatar",
                style=style,
                image_file=stored.image_file,
                thumbnail_file=stored.thumbnail_file,
                width=side,
                height=side,
                file_size=stored.file_size,
            )
            ids.append(row.id)
    return ids


def _peak_rss() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux counts KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=260)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant in API_VARIANTS:  # a child: one POST /exports or its baseline
        print(json.dumps(api_export(args.files, args.images, args.side, args.variant)))
        return
    if args.variant:  # a child: one variant, its figures as JSON
        print(json.dumps(measure(args.variant, args.files, args.rows, args.rounds)))
        return
    with tempfile.TemporaryDirectory() as temp:
        files_dir, rows_file = Path(temp) / "files", Path(temp) / "rows.json"
        rows = write_images(files_dir, args.images, args.side)
        rows_file.write_text(json.dumps(rows))
        total = sum((files_dir / row["image_file"]).stat().st_size for row in rows)
        results = {}
        for variant in ("stream", "baseline"):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--variant",
                    variant,
                    "--files",
                    str(files_dir),
                    "--rows",
                    str(rows_file),
                    "--rounds",
                    str(args.rounds),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[variant] = json.loads(child.stdout)
    mib = 2**20
    print(f"export of {args.images} images, {total / mib:.1f} MiB of PNGs:")
    for variant, label in (("stream", "exports.stream"), ("baseline", "read all + zip in BytesIO")):
        figures = results[variant]
        print(
            f"  {label:28s} {figures['seconds'] * 1000:7.1f} ms"
            f"   tracemalloc peak {figures['traced_peak'] / mib:6.2f} MiB"
            f"   RSS growth {figures['rss_growth'] / mib:6.1f} MiB"
        )
    share = results["stream"]["traced_peak"] / total
    verdict = "PASS" if share < 0.10 else "FAIL"
    print(f"  stream peak / total: {share:.1%}   target < 10 %   {verdict}")
    api_figures(args.images)


API_VARIANTS = {
    "api-original": "POST /exports, stored PNGs",
    "memory-original": "  baseline: read all + BytesIO",
    "api-profile": "POST /exports, 1024+512+128 circle",
    "memory-profile": "  baseline: make all + BytesIO",
}


def api_figures(images: int) -> None:
    """The Avatar Creator's export through the app, each variant in a fresh process and home."""
    mib = 2**20
    print(f"POST /api/apps/avatar-creator/exports of {images} Instant avatars of {API_SIDE} px:")
    for variant, label in API_VARIANTS.items():
        with tempfile.TemporaryDirectory() as home:
            child = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--files", home]
                + ["--images", str(images), "--side", str(API_SIDE)],
                capture_output=True,
                text=True,
                check=True,
            )
        figures = json.loads(child.stdout.splitlines()[-1])
        print(
            f"  {label:36s} {figures['seconds'] * 1000:8.1f} ms"
            f"   zip {figures['zip_bytes'] / mib:6.1f} MiB"
            f"   tracemalloc peak {figures['traced_peak'] / mib:6.1f} MiB"
            f"   RSS growth {figures['rss_growth'] / mib:6.1f} MiB"
        )


if __name__ == "__main__":
    main()
