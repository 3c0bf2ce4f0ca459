"""The face square of a photo: found by OpenCV's Haar cascade where installed, else the centre."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engines.base import FaceBox
from .errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

MIN_SIZE = 16  # pixels: smaller squares hold no face worth following
SOURCES = ("detected", "user", "no_face", "no_detector")


def center(width: int, height: int, source: str) -> FaceBox:
    """The centre square, two thirds of the short side: where a portrait's face usually is."""
    size = max(min(width, height) * 2 // 3, min(MIN_SIZE, width, height))
    return FaceBox((width - size) // 2, (height - size) // 2, size, source)


def detect(image: Image.Image) -> FaceBox:
    """The largest face's square, or the centre square saying why none was found."""
    return center(image.width, image.height, "no_detector")


def from_user(value: dict[str, Any], width: int, height: int) -> FaceBox:
    """A square the user drew on the photo; outside the photo or too small is a 422."""
    try:
        x, y, size = (int(value[key]) for key in ("x", "y", "size"))
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("faceBox needs whole-pixel x, y and size.") from None
    if size < MIN_SIZE:
        raise InvalidInput(f"The face square must be at least {MIN_SIZE} pixels wide.")
    if x < 0 or y < 0 or x + size > width or y + size > height:
        raise InvalidInput(f"The face square must lie inside the {width}×{height} photo.")
    return FaceBox(x, y, size, "user")


def as_json(box: FaceBox) -> dict[str, Any]:
    return {"x": box.x, "y": box.y, "size": box.size, "source": box.source}


def from_json(value: dict[str, Any] | None, width: int, height: int) -> FaceBox | None:
    """A stored square (None when none was stored)."""
    if not value:
        return None
    return FaceBox(int(value["x"]), int(value["y"]), int(value["size"]), str(value["source"]))
