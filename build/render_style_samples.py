"""Render the style picker's samples into assets/styles/, one WebP per DiceBear style.

The samples are committed, so a first run renders none. Run this after upgrading
dicebear-styles (tests/test_styles.py fails until the folder matches the installed styles):

    python build/render_style_samples.py           # write assets/styles/*.webp, drop stale ones
    python build/render_style_samples.py --check   # exit 1 if a style lacks a sample or vice versa
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's lumiku_local, not an installed copy

from lumiku_local import catalog, style_samples  # noqa: E402

FOLDER = style_samples.folder(ROOT / "assets")


def differences() -> tuple[list[str], list[str]]:
    """(styles without a sample, sample files without a style)."""
    wanted = {style_samples.file_name(style) for style in catalog.dicebear_styles()}
    present = {path.name for path in FOLDER.glob("*.webp")}
    return sorted(wanted - present), sorted(present - wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    missing, stale = differences()
    if args.check:
        for name in missing:
            print(f"missing sample: {FOLDER / name}")
        for name in stale:
            print(f"sample of no style: {FOLDER / name}")
        return 1 if missing or stale else 0

    FOLDER.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (FOLDER / name).unlink()
    styles = catalog.dicebear_styles()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=spawn) as pool:
        for style, webp in zip(styles, pool.map(style_samples.render, styles), strict=True):
            (FOLDER / style_samples.file_name(style)).write_bytes(webp)
    total = sum(path.stat().st_size for path in FOLDER.glob("*.webp"))
    print(f"{len(styles)} samples in {FOLDER} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
