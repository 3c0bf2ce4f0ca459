"""`lumiku` with one more model, "bench:one-pixel", whose engine makes a 1x1 PNG per image.

bench/core.py starts servers and workers through this file (`python bench/one_pixel.py serve
...`, `... worker ...`), so the burst and pickup figures measure the queue and the lifecycle
(HTTP, ledger, claim, delivery, files, events) rather than a renderer, as the peer figure for
BullMQ measures empty jobs. Each image's colour comes from its seed, so every image is its own
file and every delivery writes (and fsyncs) like a real one. The product never loads this.
"""

from __future__ import annotations

import io
import sys
from typing import Any

MODEL_KEY = "bench:one-pixel"
PROVIDER = "one-pixel"


class OnePixelEngine:
    name = PROVIDER

    def is_installed(self, capabilities: dict[str, Any]) -> bool:
        return True

    def generate(self, job: Any, on_image: Any, on_progress: Any, cancelled: Any) -> None:
        from PIL import Image

        from lumiku_local import storage

        for variation in job.variations:
            if cancelled():
                return
            colour = variation.seed & 0xFFFFFF
            image = Image.new("RGB", (1, 1), (colour >> 16, (colour >> 8) & 0xFF, colour & 0xFF))
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            on_image(variation, storage.prepare_png(buffer.getvalue(), image))


def install() -> None:
    """Add the model to the catalog (seeded at start) and its engine to the registry."""
    from lumiku_local import catalog, engines

    original = catalog.ai_models

    def with_one_pixel() -> list[dict]:
        return [
            *original(),
            {
                "key": MODEL_KEY,
                "name": "One pixel (bench)",
                "description": "A 1x1 image per variation: measures the queue, not a renderer.",
                "provider": PROVIDER,
                "tier": "free",
                "credit_cost": 1,
                "deadline_seconds": 60.0,
                "sort_order": 999,
                "capabilities": {"width": 64, "height": 64, "minSize": 64, "maxSize": 64},
            },
        ]

    catalog.ai_models = with_one_pixel  # type: ignore[assignment]
    engines.register(OnePixelEngine())


if __name__ == "__main__":
    install()
    from lumiku_local.cli import main

    sys.exit(main(sys.argv[1:]))
