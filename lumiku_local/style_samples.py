"""Style samples: one small picture per DiceBear style for the style picker, made at build time.

Rendering all 61 takes about a minute of CPU (each style's schema check costs a second), so they
are committed under assets/styles/ by build/render_style_samples.py and only read at run time.
"""

from __future__ import annotations

import base64
import functools
import io
from pathlib import Path
from typing import Any

SEED = "Lumiku"  # the same face in every style, so the styles compare
SIDE = 96  # shown at 64 px (32 in the summary): sharp on a 1.5x screen
FOLDER = "styles"  # under assets/
WEBP_QUALITY = 80


def file_name(style: str) -> str:
    return f"{style}.webp"


def folder(assets: Path) -> Path:
    return assets / FOLDER


def data_uri(webp: bytes) -> str:
    return "data:image/webp;base64," + base64.b64encode(webp).decode("ascii")


def render(style: str) -> bytes:
    """The WebP sample of `style`, rendered in this process (build script, or a worker)."""
    from PIL import Image

    png = _engine().render_png(style, SEED, SIDE, SIDE)
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).save(out, "WEBP", quality=WEBP_QUALITY, method=6)
    return out.getvalue()


@functools.cache
def _engine() -> Any:
    from .engines.dicebear import DiceBearEngine

    return DiceBearEngine(processes=1)  # renders in this process; its pool stays unused
