"""The face square of a photo: found by OpenCV's Haar cascade where installed, else the centre."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from .engines.base import FaceBox
from .errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

MIN_SIZE = 16  # pixels: smaller squares hold no face worth following
SOURCES = ("detected", "user", "no_face", "no_detector")
CASCADE = "haarcascade_frontalface_default.xml"  # the packaged app ships this one file
DETECT_SIDE = 480  # pixels: the long side the detector sees (a 4000 px photo in ~30 ms)
MIN_FACE = 24  # pixels at that side (the cascade's own window): 1/20 of the photo
# the cascade boxes brows to mouth; the head (hair, chin) is ~1.7 times that, centred higher
HEAD_SCALE = 1.7
HEAD_RAISE = 0.15  # of the detector's box: hair above the brows outweighs the neck below

_detecting = threading.Lock()  # one CascadeClassifier, not safe to share between threads


def center(width: int, height: int, source: str) -> FaceBox:
    """The centre square, two thirds of the short side: where a portrait's face usually is."""
    size = max(min(width, height) * 2 // 3, min(MIN_SIZE, width, height))
    return FaceBox((width - size) // 2, (height - size) // 2, size, source)


@functools.cache
def detector_available() -> bool:
    """Whether OpenCV is installed (found, not imported)."""
    import importlib.util

    return importlib.util.find_spec("cv2") is not None


def needs_detection(stored: dict[str, Any] | None) -> bool:
    """A stored square worth replacing by a detection: none yet, or made without a detector
    that is installed now (the full app after the lite one)."""
    if not stored:
        return True
    return stored.get("source") == "no_detector" and detector_available()


def detect(image: Image.Image) -> FaceBox:
    """The largest face's head square, or the centre square saying why none was found."""
    width, height = image.size
    try:
        import cv2.data
    except ImportError:  # the lite app and a core install: no detector
        return center(width, height, "no_detector")
    cascade = _cascade(cv2.data.haarcascades + CASCADE)
    if cascade is None:
        return center(width, height, "no_detector")
    grey, scale = _small_grey(image)
    with _detecting:
        faces = cascade.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE)
        )
    if len(faces) == 0:
        return center(width, height, "no_face")
    x, y, w, h = (float(value) * scale for value in max(faces, key=lambda f: f[2] * f[3]))
    return head_square(x, y, w, h, width, height)


def head_square(x: float, y: float, w: float, h: float, width: int, height: int) -> FaceBox:
    """The square that holds the head around a detector's face box, kept inside the photo."""
    size = min(round(max(w, h) * HEAD_SCALE), width, height)
    centre_x, centre_y = x + w / 2, y + h / 2 - HEAD_RAISE * h
    left = min(max(round(centre_x - size / 2), 0), width - size)
    top = min(max(round(centre_y - size / 2), 0), height - size)
    return FaceBox(left, top, size, "detected")


@functools.cache
def _cascade(path: str) -> Any:
    """OpenCV's frontal-face cascade, loaded once; None if its file is missing."""
    import cv2

    cascade = cv2.CascadeClassifier(path)
    return None if cascade.empty() else cascade


def _small_grey(image: Image.Image) -> tuple[Any, float]:
    """A greyscale copy at most DETECT_SIDE on its long side (as a numpy array), and the
    factor from its pixels back to the photo's."""
    import numpy as np

    if image.mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):  # palette, 16-bit: rare
        image = image.convert("RGB")
    factor = max(image.width, image.height) // DETECT_SIDE
    # a whole-factor box reduce first: far faster than resizing 16 megapixels directly
    small = image.reduce(factor) if factor >= 2 else image
    grey = small.convert("L")
    grey.thumbnail((DETECT_SIDE, DETECT_SIDE))
    return np.asarray(grey), image.width / grey.width


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
