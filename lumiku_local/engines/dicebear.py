"""DiceBear: illustrated avatars rendered offline by resvg, deterministic from prompt and seed."""

from __future__ import annotations

import io
import threading
from importlib import resources
from typing import Any

from .. import failpoints
from .base import Cancelled, EngineJob, OnImage, OnProgress, PermanentEngineError

BACKGROUNDS = ["b6e3f4", "c0aede", "d1d4f9", "ffd5dc", "ffdfbf"]


class DiceBearEngine:
    name = "dicebear"

    def __init__(self) -> None:
        self._styles: dict[str, Any] = {}
        self._lock = threading.Lock()

    def is_installed(self, capabilities: dict[str, Any]) -> bool:
        return True

    def style(self, name: str) -> Any:
        """Load and cache a style; the schema check costs ~0.5 s once per style and process."""
        from dicebear import Style

        with self._lock:
            cached = self._styles.get(name)
            if cached is None:
                try:
                    raw = resources.files("dicebear_styles").joinpath(f"{name}.json").read_text()
                except FileNotFoundError:
                    raise PermanentEngineError(f"DiceBear has no style named {name!r}.") from None
                cached = self._styles[name] = Style.from_json(raw)
            return cached

    def render_png(self, style_name: str, seed: str, width: int, height: int) -> bytes:
        import resvg_py
        from dicebear import Avatar

        avatar = Avatar(self.style(style_name), {"seed": seed, "backgroundColor": BACKGROUNDS})
        side = min(width, height)
        png = bytes(resvg_py.svg_to_bytes(svg_string=avatar.to_string(), width=side, height=side))
        if width == height:
            return png
        return _pad(png, width, height)

    def generate(
        self, job: EngineJob, on_image: OnImage, on_progress: OnProgress, cancelled: Cancelled
    ) -> None:
        style_name = job.options.get("style") or job.capabilities.get("defaultStyle", "adventurer")
        total = len(job.variations)
        for done, variation in enumerate(job.variations):
            if cancelled():
                return
            failpoints.hit("engine.generate")
            png = self.render_png(
                style_name, f"{job.prompt}|{variation.seed}", job.width, job.height
            )
            on_image(variation, png)
            on_progress((done + 1) / total, f"image {done + 1} of {total}")


def _pad(png: bytes, width: int, height: int) -> bytes:
    """DiceBear art is square: centre it on a canvas of its own background colour."""
    from PIL import Image

    square = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGBA", (width, height), square.getpixel((0, 0)))
    canvas.paste(square, ((width - square.width) // 2, (height - square.height) // 2))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()
