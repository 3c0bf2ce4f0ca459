"""Page timing of the browser UI: project pages of 500, 50 and 5,000 avatars, in Chromium.

What it measures, each printed against its target with PASS or FAIL:

1. Thumbnails: the size of every gallery thumbnail of a project holding 500 avatars (480
   instant avatars generated through the API at the default 512 px, plus 20 uploaded photos,
   half of them busy noise, the worst case for the encoder). Target: each <= 30 KB.
2. Time to interactive: from navigation start until the page's script has wired up the forms
   and the live-progress stream (app.js marks it on <html data-ready>), over 7 loads in a
   fresh browser context each (nothing cached but the browser itself), median and worst.
   Target: <= 1 s. Also DOMContentLoaded, the load event, the server's time to first byte and
   the HTML size, for information.
3. Paging: the same time to interactive for a 50-avatar project and a 5,000-avatar one (the
   page renders one page of tiles and loads the rest as you scroll), measured in the same run.
   Target: 5,000 <= 1.5 x 50 (medians of 9 alternated cold loads each). The 5,000 are copies
   of generated rows (same files), written straight into lumiku.db: through the API they would
   take the bench ten minutes.
4. The zip of 200 avatars (POST /exports): time to the last byte, and the server's peak
   resident memory over its baseline while it streams, against the same for 20 avatars.
   Streamed, not built in memory: the 200-avatar peak must not be ~10x the 20-avatar one.

Run it from the repository root with the project's virtualenv (the `test` extra brings
Playwright; Chromium comes from Debian: apt-get install chromium):

    python bench/ui.py           # about a minute on 2 cores
    python bench/ui.py --quick   # 3 loads

A benchmark, not a test: it exits 0 whatever the figures say, and 1 only when it could not
take them.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core import API, Api, BenchError, Report, Row, progress, serve, wait_until_settled  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GENERATIONS = 60  # of 8: 480 avatars, 480 of the 1,000 starting credits
PHOTOS = 20
THUMBNAIL_LIMIT = 30_000
TTI_LIMIT_S = 1.0
SMALL, LARGE = 50, 5_000
TTI_RATIO_LIMIT = 1.5
ZIP_SMALL, ZIP_LARGE = 20, 200


def clone_avatars(home: Path, source_project: str, target_project: str, total: int) -> None:
    """Fill `target_project` up to `total` avatars with copies of the source's rows (the same
    files, new ids, one second apart), in one transaction beside the running server."""
    import datetime as dt
    import sqlite3

    db = sqlite3.connect(home / "lumiku.db", timeout=30)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(avatar)")]
        rows = db.execute(
            f"SELECT {', '.join(columns)} FROM avatar WHERE project_id = ?", (source_project,)
        ).fetchall()
        if not rows:
            raise BenchError("no avatars to copy")
        start = dt.datetime(2026, 1, 1)
        copies = []
        for n in range(total):
            row = dict(zip(columns, rows[n % len(rows)], strict=True))
            row.update(
                id=uuid.uuid4().hex,
                project_id=target_project,
                generation_id=None,
                variation_key=None,
                name=f"copy {n + 1}",
                created_at=str(start + dt.timedelta(seconds=n)),
            )
            copies.append(tuple(row[c] for c in columns))
        with db:
            db.executemany(
                f"INSERT INTO avatar ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                copies,
            )
    finally:
        db.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError("no VmRSS")


def zip_figures(port: int, pid: int, avatar_ids: list[str]) -> tuple[float, int, int]:
    """(seconds to the last byte, zip bytes, peak RSS over the baseline in KiB) of one export,
    RSS sampled every 5 ms in a thread while the answer streams."""
    import http.client
    import json
    import threading

    baseline = rss_kib(pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request(
        "POST",
        f"{API}/exports",
        body=json.dumps({"avatarIds": avatar_ids}),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    size = 0
    while chunk := response.read(65536):
        size += len(chunk)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    conn.close()
    if response.status != 200:
        raise BenchError(f"POST /exports answered {response.status}")
    return elapsed, size, peak[0] - baseline


def photo(index: int) -> bytes:
    """A 1600 x 1200 JPEG: smooth colour fields, or (odd indexes) pure noise."""
    from PIL import Image, ImageDraw

    rng = random.Random(index)
    if index % 2:
        image = Image.frombytes("RGB", (1600, 1200), rng.randbytes(1600 * 1200 * 3))
    else:
        image = Image.new("RGB", (1600, 1200), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(40):
            box = sorted(rng.sample(range(1600), 2)) + sorted(rng.sample(range(1200), 2))
            fill = tuple(rng.randrange(256) for _ in range(3))
            draw.ellipse((box[0], box[2], box[1], box[3]), fill=fill)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(port: int, project_id: str, content: bytes, name: str) -> None:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{API}/projects/{project_id}/avatars/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status != 201:
            raise BenchError(f"upload answered {response.status}")


def thumbnail_sizes(api: Api, avatars: list[dict]) -> list[int]:
    sizes = []
    for avatar in avatars:
        status, data, _ = api.raw("GET", avatar["thumbnailUrl"])
        if status != 200:
            raise BenchError(f"{avatar['thumbnailUrl']} answered {status}")
        sizes.append(len(data))
    return sizes


def page_loads(url: str, loads: int) -> list[dict[str, float]]:
    from playwright.sync_api import sync_playwright

    timings = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for _ in range(loads + 1):  # the first load warms the server's template cache
                context = browser.new_context(viewport={"width": 1280, "height": 860})
                page = context.new_page()
                page.goto(url, wait_until="load")
                page.wait_for_function("document.documentElement.dataset.ready", timeout=30_000)
                timings.append(
                    page.evaluate(
                        """() => {
                          const nav = performance.getEntriesByType("navigation")[0];
                          return {
                            ready: Number(document.documentElement.dataset.ready),
                            dcl: nav.domContentLoadedEventEnd,
                            load: nav.loadEventEnd,
                            ttfb: nav.responseStart - nav.requestStart,
                            html: nav.transferSize,
                            images: document.querySelectorAll("#gallery img").length,
                          };
                        }"""
                    )
                )
                context.close()
        finally:
            browser.close()
    return timings[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 page loads instead of 7")
    args = parser.parse_args(argv)
    loads = 3 if args.quick else 7
    report = Report()
    with tempfile.TemporaryDirectory(prefix="lumiku-bench-ui-") as tmp:
        work = Path(tmp)
        (work / "logs").mkdir()
        home = work / "home"
        with serve("lumiku", home, work) as server:
            api = Api(server.port)
            project_id = api.create_project("five hundred avatars")
            progress(f"filling a project: {GENERATIONS} generations of 8 and {PHOTOS} photos")
            start = time.perf_counter()
            for _ in range(GENERATIONS):
                api.generate(project_id, count=8)
            for index in range(PHOTOS):
                upload(server.port, project_id, photo(index), f"photo-{index}.jpg")
            wait_until_settled(home, GENERATIONS, timeout=600)
            fill_s = time.perf_counter() - start
            avatars = api.call("GET", f"{API}/projects/{project_id}")["project"]["avatars"]
            if len(avatars) != GENERATIONS * 8 + PHOTOS:
                raise BenchError(f"the project holds {len(avatars)} avatars")
            progress("measuring every thumbnail")
            sizes = thumbnail_sizes(api, avatars)
            api.close()
            progress(f"loading the project page {loads} times in Chromium")
            timings = page_loads(f"http://127.0.0.1:{server.port}/projects/{project_id}", loads)

            progress(f"a {SMALL}- and a {LARGE:,}-avatar project")
            small = api.create_project("fifty avatars")
            large = api.create_project("five thousand avatars")
            clone_avatars(home, project_id, small, SMALL)
            clone_avatars(home, project_id, large, LARGE)
            url = f"http://127.0.0.1:{server.port}/projects/"
            small_ready, large_ready = [], []
            for _ in range(max(loads, 9)):  # alternated: a busy spell weighs on both alike
                small_ready += [t["ready"] / 1000 for t in page_loads(url + small, 1)]
                large_ready += [t["ready"] / 1000 for t in page_loads(url + large, 1)]
            large_tiles = page_loads(url + large, 1)[0]["images"]

            progress(f"zips of {ZIP_SMALL} and {ZIP_LARGE} avatars")
            zip_ids = [a["id"] for a in avatars[PHOTOS:]]
            zips = {
                n: zip_figures(server.port, server.proc.pid, zip_ids[:n])
                for n in (ZIP_SMALL, ZIP_LARGE, ZIP_SMALL)  # the first warms the code path
            }

    rows = report.section(f"1. thumbnails of a project with {len(avatars)} avatars")
    photo_sizes = sizes[:PHOTOS]  # newest first: the photos were added last
    rows += [
        Row("largest thumbnail", f"{max(sizes) / 1000:.1f} KB", "<= 30 KB", max(sizes) <= 30_000),
        Row("  median", f"{statistics.median(sizes) / 1000:.1f} KB"),
        Row("  largest of the uploaded photos", f"{max(photo_sizes) / 1000:.1f} KB"),
        Row(f"  filling it ({GENERATIONS} x 8 at 512 px, {PHOTOS} photos)", f"{fill_s:.1f} s"),
    ]
    ready = [t["ready"] / 1000 for t in timings]
    rows = report.section(f"2. project page, {len(avatars)} avatars ({loads} cold loads)")
    rows += [
        Row(
            "time to interactive, median",
            f"{statistics.median(ready):.3f} s",
            "<= 1 s",
            statistics.median(ready) <= TTI_LIMIT_S,
        ),
        Row(
            "time to interactive, worst", f"{max(ready):.3f} s", "<= 1 s", max(ready) <= TTI_LIMIT_S
        ),
        Row("  DOMContentLoaded, median", f"{statistics.median(t['dcl'] for t in timings):.0f} ms"),
        Row("  load event, median", f"{statistics.median(t['load'] for t in timings):.0f} ms"),
        Row(
            "  server time to first byte, median",
            f"{statistics.median(t['ttfb'] for t in timings):.0f} ms",
        ),
        Row("  HTML transferred", f"{timings[0]['html'] / 1024:.0f} KiB"),
        Row("  gallery images on the page (lazy-loaded)", f"{timings[0]['images']:.0f}"),
    ]
    small_median, large_median = statistics.median(small_ready), statistics.median(large_ready)
    ratio = large_median / small_median
    rows = report.section(
        f"3. time to interactive, {SMALL} vs {LARGE:,} avatars ({len(small_ready)} each)"
    )
    rows += [
        Row(f"{SMALL} avatars, median", f"{small_median:.3f} s"),
        Row(f"{LARGE:,} avatars, median", f"{large_median:.3f} s"),
        Row(f"{LARGE:,} / {SMALL}", f"{ratio:.2f} x", f"<= {TTI_RATIO_LIMIT} x", ratio <= 1.5),
        Row(f"  tiles on the {LARGE:,}-avatar page before scrolling", f"{large_tiles:.0f}"),
    ]
    rows = report.section(f"4. zip export (POST /exports), {ZIP_SMALL} vs {ZIP_LARGE} avatars")
    (small_s, _, small_peak), (large_s, large_bytes, large_peak) = (
        zips[ZIP_SMALL],
        zips[ZIP_LARGE],
    )
    rows += [
        Row(f"{ZIP_LARGE} avatars: time to the last byte", f"{large_s:.2f} s"),
        Row("  its size", f"{large_bytes / 1e6:.1f} MB"),
        Row("  server peak RSS over baseline", f"{large_peak / 1024:.1f} MiB"),
        Row(f"{ZIP_SMALL} avatars: time to the last byte", f"{small_s:.2f} s"),
        Row("  server peak RSS over baseline", f"{small_peak / 1024:.1f} MiB"),
        Row(
            f"peak {ZIP_LARGE} / peak {ZIP_SMALL} (streamed: far below {ZIP_LARGE // ZIP_SMALL} x)",
            f"{large_peak / max(small_peak, 1):.1f} x",
            "< 3 x or < 32 MiB",
            large_peak < 3 * max(small_peak, 1) or large_peak < 32 * 1024,
        ),
    ]
    print(report.render())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench/ui.py: could not take the figures: {exc}", file=sys.stderr)
        sys.exit(1)
