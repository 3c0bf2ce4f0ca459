"""Pose library benchmark: skeleton thumbnails for the library's pages.

Draws every library pose's skeleton as a 256 px PNG (skeleton.png), next to the baseline of
encoding a blank 256 px image the same way, so the drawing's own cost shows. Target: a
thumbnail in under 10 ms (the pose page draws 50-odd on first view).

Run: python bench/poses.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def best(fn, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from PIL import Image

    from lumiku_local import pose_library, skeleton

    poses = pose_library.poses()

    def thumbnails() -> None:
        for pose in poses:
            skeleton.png(pose.keypoints, 256)

    def blank() -> None:
        for _ in poses:
            Image.new("RGB", (256, 256)).save(io.BytesIO(), "PNG", compress_level=1)

    ours = best(thumbnails, args.rounds) / len(poses)
    baseline = best(blank, args.rounds) / len(poses)
    verdict = "PASS" if ours < 0.010 else "FAIL"
    print(
        f"skeleton thumbnail, 256 px ({len(poses)} poses): {ours * 1000:6.2f} ms each"
        f"   target < 10 ms   {verdict}"
    )
    print(f"  baseline, a blank 256 px PNG encoded the same way: {baseline * 1000:6.2f} ms each")


if __name__ == "__main__":
    main()
