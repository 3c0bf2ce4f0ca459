"""Face box and look-alike benchmark: what a photo adds to an upload and to an Instant image.

1. `face_box.detect` on a drawn 4000x3000 portrait (the search runs on a copy at most 480 px
   on its long side), next to the baseline of the same cascade on the full-size greyscale
   photo: target <= 100 ms, and the speed-up the small copy buys.
2. An Instant image (adventurer, 512 px, one render process) with a look-alike reference next
   to the same image without one: target, the ratio <= 2 (still tens of milliseconds).

Run: python bench/face_box.py [--rounds 5]. Needs opencv-python-headless (the diffusion extra).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def best(fn, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return min(timings)


def detection(rounds: int) -> None:
    import cv2
    import cv2.data
    import numpy as np
    from face_photos import drawn_face

    from lumiku_local import face_box

    drawn = drawn_face(4000, 3000, (1800, 1400), 1000)
    drawn.image.load()
    box = face_box.detect(drawn.image)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + face_box.CASCADE)

    def full_size() -> None:
        grey = np.asarray(drawn.image.convert("L"))
        cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(200, 200))

    ours = best(lambda: face_box.detect(drawn.image), rounds)
    baseline = best(full_size, max(1, rounds // 2))
    verdict = "PASS" if ours <= 0.1 else "FAIL"
    print(f"face box, 4000x3000 photo: {ours * 1000:7.1f} ms   target <= 100 ms   {verdict}")
    print(
        f"  baseline, cascade on the full-size photo: {baseline * 1000:7.1f} ms "
        f"({baseline / ours:.0f}x slower); found {box}"
    )


def look_alike(rounds: int) -> None:
    import hashlib
    import io

    from face_photos import drawn_face

    from lumiku_local import face_box
    from lumiku_local.engines.base import EngineJob, Reference, Variation
    from lumiku_local.engines.dicebear import DiceBearEngine

    drawn = drawn_face()
    out = io.BytesIO()
    drawn.image.save(out, "PNG")
    png = out.getvalue()
    reference = Reference(
        png=png,
        sha256=hashlib.sha256(png).hexdigest(),
        width=drawn.image.width,
        height=drawn.image.height,
        face_box=face_box.detect(drawn.image),
        likeness=0.8,
        mode="lookAlike",
    )
    engine = DiceBearEngine(processes=1)
    count = 16

    def batch(with_photo: bool) -> None:
        job = EngineJob(
            generation_id="bench",
            model_key="avatar-creator:instant",
            capabilities={"defaultStyle": "adventurer"},
            prompt="a look-alike",
            width=512,
            height=512,
            variations=[Variation(f"v{n}", n) for n in range(count)],
            options={"style": "adventurer"},
            reference=reference if with_photo else None,
        )
        engine.generate(job, lambda *_: None, lambda *_: None, lambda: False)

    try:
        batch(True)  # start the render process and load the style
        plain = statistics.median(best(lambda: batch(False), 1) for _ in range(rounds)) / count
        photo = statistics.median(best(lambda: batch(True), 1) for _ in range(rounds)) / count
    finally:
        engine.close()
    ratio = photo / plain
    verdict = "PASS" if ratio <= 2 else "FAIL"
    print(
        f"Instant image with a photo: {photo * 1000:6.1f} ms   without: {plain * 1000:6.1f} ms"
        f"   ratio {ratio:.2f} (target <= 2)   {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    detection(args.rounds)
    look_alike(args.rounds)


if __name__ == "__main__":
    main()
