"""Export benchmark: a zip of 200 images, streamed, next to zipping them all in memory.

Writes 200 distinct ~200 KB PNGs with lumiku_local.storage into a temp folder, then, each in a
fresh process (so its peak RSS is its own): `exports.plan` + `exports.stream` consumed chunk by
chunk, and the baseline of reading every file into memory and zipping them with zipfile into a
BytesIO. Reports time, tracemalloc peak and peak RSS above the process's start. Target: the
stream's tracemalloc peak under 10 % of the images' total size.

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


if __name__ == "__main__":
    main()
