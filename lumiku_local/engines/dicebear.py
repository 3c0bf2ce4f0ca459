"""DiceBear: illustrated avatars rendered offline by resvg, deterministic from prompt and seed."""

from __future__ import annotations

import io
import threading
from importlib import resources
from typing import Any

from .. import failpoints
from .base import Cancelled, EngineJob, OnImage, OnProgress, PermanentEngineError

BACKGROUNDS = ["b6e3f4", "c0aede", "d1d4f9", "ffd5dc", "ffdfbf"]
FONT_STACK = "Segoe UI, Helvetica Neue, Arial, DejaVu Sans, Liberation Sans, sans-serif"
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

_per_thread = threading.local()  # resvg's Options may not cross threads


def _rasterise(svg: str, with_fonts: bool) -> bytes:
    """SVG to PNG with resvg; system fonts are loaded once per thread, and only for text."""
    import resvg

    key = "fonts" if with_fonts else "plain"
    options = getattr(_per_thread, key, None)
    if options is None:
        options = resvg.usvg.Options.default()
        if with_fonts:
            options.load_system_fonts()
        setattr(_per_thread, key, options)
    return bytes(resvg.render(resvg.usvg.Tree.from_str(svg, options), IDENTITY))


class DiceBearEngine:
    name = "dicebear"

    def __init__(self) -> None:
        self._styles: dict[str, Any] = {}
        self._needs_fonts: set[str] = set()
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
                if "font" in raw.lower():  # initials and friends draw text
                    self._needs_fonts.add(name)
            return cached

    def render_png(self, style_name: str, seed: str, width: int, height: int) -> bytes:
        from dicebear import Avatar

        side = min(width, height)
        avatar = Avatar(
            self.style(style_name),
            {"seed": seed, "size": side, "backgroundColor": BACKGROUNDS},
        )
        svg = avatar.to_string()
        needs_fonts = style_name in self._needs_fonts
        if needs_fonts:  # DiceBear asks for `system-ui`, a name resvg does not resolve
            svg = svg.replace('font-family="system-ui"', f'font-family="{FONT_STACK}"')
        png = _rasterise(svg, needs_fonts)
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
