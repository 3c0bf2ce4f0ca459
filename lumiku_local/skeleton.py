"""A pose's OpenPose skeleton, drawn as the OpenPose ControlNets saw it in training.

The drawing follows `draw_bodypose` of lllyasviel's annotator (ControlNet-v1-1-nightly,
annotator/openpose/util.py), with Pillow in place of OpenCV: each visible joint a filled circle
in its colour, then each limb a filled ellipse between its two joints, blended at 60 % over what
is already drawn. Stick width and joint radius are the annotator's at 512 px, scaled with size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

from .errors import InvalidInput

KEYPOINT_COUNT = 18  # OpenPose's COCO-18 body
# the annotator's limbSeq, from 1-based to 0-based keypoint indices; its last two pairs
# (shoulder to ear) were never drawn (it loops over 17) and are left out
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# keypoint i is drawn in COLOURS[i], limb i in COLOURS[i]
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_ALPHA = 153  # of 255: the annotator's cv2.addWeighted(canvas, 0.4, with_limb, 0.6, 0)
REFERENCE_SIZE = 512  # pixels: the annotator's stick width and joint radius are for this size
STICK_WIDTH = 4  # the ellipse's half-width, pixels at REFERENCE_SIZE
JOINT_RADIUS = 4
MIN_SIZE = 16
MAX_SIZE = 2048
BLACK = (0, 0, 0)
# the unit ellipse's points: the annotator asks cv2.ellipse2Poly for 1-degree steps; 4 keep
# every chord within half a pixel of the ellipse up to MAX_SIZE at a quarter of the points
ELLIPSE_STEP = 4  # degrees
_UNIT = tuple(
    (math.cos(math.radians(t)), math.sin(math.radians(t))) for t in range(0, 361, ELLIPSE_STEP)
)

Keypoints = Sequence[Sequence[float]]


def draw(keypoints: Keypoints, size: int, background: tuple[int, int, int] = BLACK) -> Image.Image:
    """The skeleton of 18 [x, y, visible] keypoints (0-1 on a square) on a size × size image;
    invisible keypoints and the limbs touching them are not drawn."""
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidInput(f"A skeleton is {MIN_SIZE} to {MAX_SIZE} pixels wide, not {size}.")
    if len(keypoints) != KEYPOINT_COUNT:
        raise InvalidInput(f"A pose has {KEYPOINT_COUNT} keypoints, not {len(keypoints)}.")
    # opaque RGBA while drawing: a limb is composited at alpha 153 (0.6 × 255), which rounds
    # exactly as the annotator's addWeighted does
    image = Image.new("RGBA", (size, size), (*background, 255))
    scale = size / REFERENCE_SIZE
    radius = max(1, round(JOINT_RADIUS * scale))
    stick_width = max(1, round(STICK_WIDTH * scale))
    pen = ImageDraw.Draw(image)
    for (x, y, visible), colour in zip(keypoints, COLOURS, strict=False):
        if visible:
            centre_x, centre_y = int(x * size), int(y * size)
            box = (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius)
            pen.ellipse(box, fill=colour)
    for (start, end), colour in zip(LIMBS, COLOURS, strict=False):
        if keypoints[start][2] and keypoints[end][2]:
            polygon = _limb_polygon(keypoints[start], keypoints[end], size, stick_width)
            _blend_polygon(image, polygon, colour)
    return image.convert("RGB")


def png(keypoints: Keypoints, size: int) -> bytes:
    """The skeleton as PNG bytes (thumbnails, ControlNet inputs)."""
    out = io.BytesIO()
    # mostly black: the fastest zlib level is barely larger, and several times faster
    draw(keypoints, size).save(out, "PNG", compress_level=1)
    return out.getvalue()


def _limb_polygon(
    start: Sequence[float], end: Sequence[float], size: int, stick_width: int
) -> list[tuple[int, int]]:
    """The ellipse from joint to joint as the annotator's cv2.ellipse2Poly makes it: centre
    and half-length truncated to whole pixels, angle to whole degrees, points rounded (its
    dropping of repeated points changes nothing filled)."""
    x1, y1, x2, y2 = start[0] * size, start[1] * size, end[0] * size, end[1] * size
    centre_x, centre_y = int((x1 + x2) / 2), int((y1 + y2) / 2)
    half_length = int(math.hypot(x1 - x2, y1 - y2) / 2)
    angle = math.radians(int(math.degrees(math.atan2(y1 - y2, x1 - x2))))
    # the ellipse's two half-axes as vectors: along the limb and across it
    along_x, along_y = half_length * math.cos(angle), half_length * math.sin(angle)
    across_x, across_y = -stick_width * math.sin(angle), stick_width * math.cos(angle)
    return [
        (round(centre_x + along_x * cos_t + across_x * sin_t),
         round(centre_y + along_y * cos_t + across_y * sin_t))
        for cos_t, sin_t in _UNIT
    ]  # fmt: skip


def _blend_polygon(
    image: Image.Image, polygon: list[tuple[int, int]], colour: tuple[int, int, int]
) -> None:
    """Inside the polygon, 40 % of what is there and 60 % of the colour; only the polygon's
    bounding box is touched (a whole-image blend per limb is 17 full passes)."""
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    left, top = max(min(xs), 0), max(min(ys), 0)
    right, bottom = min(max(xs) + 1, image.width), min(max(ys) + 1, image.height)
    if left >= right or top >= bottom:
        return
    layer = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    shifted = [(x - left, y - top) for x, y in polygon]
    ImageDraw.Draw(layer).polygon(shifted, fill=(*colour, LIMB_ALPHA))
    image.alpha_composite(layer, (left, top))
