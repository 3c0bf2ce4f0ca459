"""Pose library benchmark: skeleton thumbnails for the library's pages.

Draws every library pose's skeleton as a 256 px PNG (skeleton.png), next to the baseline of
encoding a blank 256 px image the same way, so the drawing's own cost shows. Target: a
thumbnail in under 10 ms (the pose page draws 50-odd on first view).

Then the Instant pose picture (pose_body: the avatar's head on a drawn body) at 512 px through
the engine with one render process, next to the plain Instant avatar image at 512 px through the
same engine (the baseline). Target: tens of milliseconds an image.

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
    instant_pose(args.rounds)


def instant_pose(rounds: int) -> None:
    """ms an image, per batch of every library pose's first variation, with one render process
    (warmed up first: the process start and style load are once per server)."""
    import hashlib

    from lumiku_local import face_box, pose_library
    from lumiku_local.engines import DiceBearEngine, EngineJob, Reference, Variation
    from lumiku_local.engines.dicebear import engine_seed

    engine = DiceBearEngine(processes=1)
    try:
        for future in engine.warm_up():
            future.result()
        avatar = engine.render_png("adventurer", engine_seed("a friendly wizard", 7), 512, 512)
        reference = Reference(
            avatar,
            hashlib.sha256(avatar).hexdigest(),
            512,
            512,
            face_box.center(512, 512, "no_face"),
            0.8,
            "pose",
        )
        poses = pose_library.poses()
        posed = [Variation(f"{pose.id}-v1", n, pose.id) for n, pose in enumerate(poses)]
        plain = [Variation(f"v{n}", n) for n in range(len(poses))]

        def job(variations: list[Variation], with_poses: bool) -> EngineJob:
            return EngineJob(
                generation_id="bench",
                model_key="bench:instant",
                capabilities={"defaultStyle": "adventurer"},
                prompt="a friendly wizard",
                width=512,
                height=512,
                variations=variations,
                reference=reference if with_poses else None,
                poses={p.id: [list(k) for k in p.keypoints] for p in poses} if with_poses else {},
            )

        def generate(this_job: EngineJob) -> None:
            engine.generate(this_job, lambda v, p: None, lambda f, m: None, lambda: False)

        generate(job(posed[:2], True))  # the pose code imported in the render process
        ours = best(lambda: generate(job(posed, True)), rounds) / len(posed)
        baseline = best(lambda: generate(job(plain, False)), rounds) / len(plain)
    finally:
        engine.close()
    verdict = "PASS" if ours < 0.100 else "FAIL"
    print(
        f"Instant pose image, 512 px, 1 render process ({len(posed)} poses, head cut once):"
        f" {ours * 1000:6.2f} ms each   target < 100 ms   {verdict}"
    )
    print(
        f"  baseline, a plain Instant avatar image, 512 px, same engine:"
        f" {baseline * 1000:6.2f} ms each"
    )


if __name__ == "__main__":
    main()
