"""Render assets/favicon.svg into build/lumiku.ico, the Windows icon of lumiku.exe.

The .ico is committed; run this again after changing the favicon:
    python build/make_icon.py
"""

from __future__ import annotations

import io
from pathlib import Path

import resvg
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SIZES = [16, 24, 32, 48, 64, 128, 256]


def render(svg: str, side: int) -> Image.Image:
    """The SVG rasterised by resvg at side x side pixels (its viewBox is square)."""
    sized = svg.replace("<svg ", f'<svg width="{side}" height="{side}" ', 1)
    tree = resvg.usvg.Tree.from_str(sized, resvg.usvg.Options.default())
    png = bytes(resvg.render(tree, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)))
    return Image.open(io.BytesIO(png)).convert("RGBA")


def main() -> None:
    svg = (ROOT / "assets" / "favicon.svg").read_text(encoding="utf-8")
    largest = render(svg, SIZES[-1])
    # each size drawn from the vector, not scaled down from 256 px: small icons stay crisp
    frames = [render(svg, side) for side in SIZES[:-1]]
    out = ROOT / "build" / "lumiku.ico"
    largest.save(out, format="ICO", sizes=[(s, s) for s in SIZES], append_images=frames)
    print(f"wrote {out} ({out.stat().st_size} bytes, sizes {SIZES})")


if __name__ == "__main__":
    main()
