"""The Instant pose picture: an avatar's head on a drawn body whose limbs follow a pose.

Drawn with Pillow at SUPERSAMPLE times the size and reduced (the anti-aliasing), in colours
the seed picks from PALETTES: deterministic, and tens of milliseconds at 512 px. The head is
cut from the reference once per generation (head_from_reference) and pasted on the head's
keypoints, scaled from the spread of the shoulders, ears and eyes.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image, ImageChops, ImageDraw, ImageFilter

if TYPE_CHECKING:
    from .engines.base import Reference

RGB = tuple[int, int, int]
Keypoints = Sequence[Sequence[float]]

SUPERSAMPLE = 2
HEAD_SIDE = 384  # pixels: the cut head's long side at most (a portrait's head is ~2/3 of 512)
FLAT = 3  # RGB distance: corners this close to each other are one flat background (DiceBear)
KEY = 10  # RGB distance: a pixel this close to a flat background, reached from the edge, goes
KEY_SIDE = 128  # pixels: the mask the background is flood-filled on
# of the face square (face_box: 1.7 times the detector's face, for the hair), the middle that
# is cut out as a photo's head: the head itself, not the room around it
FACE_CROP = 0.75
# COCO-18 indices (pose_library.KEYPOINT_NAMES)
NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = range(8)
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = range(8, 18)
HEAD_POINTS = (NOSE, R_EYE, L_EYE, R_EAR, L_EAR)
# background, top, sleeves' trim, trousers, shoes: friendly pastel grounds, saturated clothes
PALETTES: tuple[tuple[RGB, RGB, RGB, RGB, RGB], ...] = (
    ((190, 227, 244), (236, 94, 84), (204, 64, 60), (52, 73, 110), (40, 40, 48)),
    ((255, 223, 191), (74, 140, 200), (48, 104, 160), (70, 66, 60), (120, 72, 40)),
    ((209, 212, 249), (250, 190, 70), (222, 150, 40), (60, 90, 150), (240, 240, 240)),
    ((255, 213, 220), (100, 170, 120), (70, 130, 90), (90, 70, 110), (50, 50, 60)),
    ((192, 174, 222), (246, 246, 240), (200, 200, 196), (64, 110, 170), (220, 80, 80)),
    ((200, 236, 210), (150, 90, 180), (120, 64, 150), (40, 50, 70), (250, 200, 60)),
    ((250, 240, 205), (40, 170, 170), (30, 130, 130), (150, 90, 60), (60, 40, 30)),
    ((220, 232, 240), (240, 130, 170), (210, 96, 140), (80, 80, 96), (250, 250, 250)),
)
SKIN_TONES: tuple[RGB, ...] = (
    (255, 219, 180), (241, 194, 158), (224, 172, 130), (198, 134, 92), (141, 85, 54),
    (110, 66, 44),
)  # fmt: skip
NEUTRAL_HAIR = (70, 50, 40)


def render(
    head: Image.Image,
    keypoints: Keypoints,
    seed: int,
    width: int,
    height: int,
    skin: RGB | None = None,
) -> Image.Image:
    """The picture (RGB, width × height): the body of 18 [x, y, visible] keypoints (0-1 on a
    square, fitted centred into the picture), `head` (RGBA) on its head keypoints, in the
    seed's colours; `skin` for the hands and neck (default: a tone the seed picks)."""
    rng = random.Random(seed)
    background, top, trim, trousers, shoes = PALETTES[rng.randrange(len(PALETTES))]
    skin = skin or SKIN_TONES[rng.randrange(len(SKIN_TONES))]
    short_sleeves = rng.random() < 0.5
    side = min(width, height)
    origin = ((width - side) / 2, (height - side) / 2)
    points = _points(keypoints, side, origin)
    head_size = _head_size(points, side)

    scale = SUPERSAMPLE
    canvas = Image.new("RGB", (width * scale, height * scale), background)
    pen = ImageDraw.Draw(canvas)
    big = {index: (x * scale, y * scale) for index, (x, y) in points.items()}
    limb = max(2.0, head_size * 0.26) * scale
    leg = limb * 1.25

    for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
        _chain(pen, big, (hip, knee, ankle), leg, trousers)
        if ankle in big:
            _dot(pen, big[ankle], leg * 0.62, shoes)
    if NECK in big and (NOSE in big or R_EYE in big or L_EYE in big):
        _stick(pen, big[NECK], _head_centre(big, head_size * scale), limb * 0.9, skin)
    _torso(pen, big, canvas.size, limb, top)
    for shoulder, elbow, wrist in ((R_SHOULDER, R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW, L_WRIST)):
        _chain(pen, big, (shoulder, elbow), limb, top)
        _chain(pen, big, (elbow, wrist), limb * 0.9, skin if short_sleeves else trim)
        if short_sleeves and elbow in big and shoulder in big:
            _dot(pen, big[elbow], limb * 0.5, top)
        if wrist in big:
            _dot(pen, big[wrist], limb * 0.62, skin)

    picture = canvas.reduce(scale)
    if points.keys() & {*HEAD_POINTS, NECK}:
        _paste_head(picture, head, _head_centre(points, head_size), head_size)
    return picture


def head_from_reference(reference: Reference) -> Image.Image:
    """The head to pose (RGBA, at most HEAD_SIDE a side), cut once per generation.

    An illustrated avatar (one flat background colour in every corner, as DiceBear draws it):
    the whole picture, its background made transparent from the edges in and the rest trimmed
    off. A photo: the middle of its face square, cut to a soft-edged circle."""
    with Image.open(io.BytesIO(reference.png)) as opened:
        image = opened.convert("RGBA")
    flat = _flat_background(image)
    if flat is not None:
        return _keyed(image, flat)
    box = reference.face_box
    inset = box.size * (1 - FACE_CROP) / 2
    square = image.crop(
        (
            round(box.x + inset),
            round(box.y + inset),
            round(box.x + box.size - inset),
            round(box.y + box.size - inset),
        )
    )
    side = min(square.width, HEAD_SIDE)
    square = square.resize((side, side), Image.Resampling.LANCZOS)
    square.putalpha(ImageChops.multiply(square.getchannel("A"), _soft_circle(side)))
    return square


def neutral_head() -> Image.Image:
    """A plain drawn head for a pose without a reference (the lifecycle always gives one)."""
    side = 256
    scale = 4
    layer = Image.new("RGBA", (side * scale, side * scale), (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    big = side * scale
    pen.ellipse((big * 0.08, big * 0.02, big * 0.92, big * 0.7), fill=(*NEUTRAL_HAIR, 255))
    pen.ellipse((big * 0.14, big * 0.12, big * 0.86, big * 0.98), fill=(*SKIN_TONES[1], 255))
    for eye_x in (0.37, 0.63):
        pen.ellipse(
            (big * (eye_x - 0.04), big * 0.48, big * (eye_x + 0.04), big * 0.58), (40, 40, 40)
        )
    pen.arc((big * 0.36, big * 0.6, big * 0.64, big * 0.8), 20, 160, (150, 70, 70), big // 60)
    return layer.reduce(scale)


def skin_of(head: Image.Image) -> RGB | None:
    """The head's skin: the median of its opaque pixels across the cheeks (None if none)."""
    width, height = head.size
    cheeks = head.crop((int(width * 0.3), int(height * 0.55), int(width * 0.7), int(height * 0.72)))
    cheeks.thumbnail((16, 16), Image.Resampling.BOX)
    data = cheeks.tobytes()
    opaque = [data[i : i + 3] for i in range(0, len(data), 4) if data[i + 3] >= 250]
    if not opaque:
        return None
    r, g, b = (sorted(channel)[len(channel) // 2] for channel in zip(*opaque, strict=True))
    return (r, g, b)


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# -- the body


def _points(keypoints: Keypoints, side: int, origin: tuple[float, float]) -> dict[int, tuple]:
    return {
        index: (origin[0] + x * side, origin[1] + y * side)
        for index, (x, y, visible) in enumerate(keypoints)
        if visible
    }


def _head_size(points: dict[int, tuple[float, float]], side: int) -> float:
    """The head's diameter in pixels: the largest of what the shoulders, ears, eyes and the
    nose-to-neck span each say (a turned head narrows some of them, never all)."""

    def spread(a: int, b: int) -> float:
        return math.dist(points[a], points[b]) if a in points and b in points else 0.0

    # each against the head's width on the library's figure
    size = max(
        spread(R_SHOULDER, L_SHOULDER) * 1.1,
        spread(R_EAR, L_EAR) * 2.0,
        spread(R_EYE, L_EYE) * 4.8,
        spread(NOSE, NECK) * 2.0,
    )
    return size if size > 0 else side * 0.2


def _head_centre(points: dict[int, tuple[float, float]], head_size: float) -> tuple[float, float]:
    """Where the head's middle goes: among the eyes and ears (the nose sits below the middle);
    a head turned away (no face keypoints) above the neck."""
    face = [points[index] for index in (R_EYE, L_EYE, R_EAR, L_EAR) if index in points]
    if face:
        x = sum(p[0] for p in face) / len(face)
        y = sum(p[1] for p in face) / len(face)
        if NOSE in points:
            x = (x * len(face) + points[NOSE][0]) / (len(face) + 1)
        return (x, y - head_size * 0.05)
    if NOSE in points:
        return (points[NOSE][0], points[NOSE][1] - head_size * 0.1)
    neck = points[NECK]
    return (neck[0], neck[1] - head_size * 0.6)


def _torso(
    pen: ImageDraw.ImageDraw,
    points: dict[int, tuple[float, float]],
    size: tuple[int, int],
    limb: float,
    colour: RGB,
) -> None:
    """Shoulders to hips, rounded; hips out of the picture (a bust): down to its bottom edge."""
    shoulders = [points[i] for i in (R_SHOULDER, L_SHOULDER) if i in points]
    if not shoulders:
        return
    if len(shoulders) == 1:
        shoulders.append(points.get(NECK, shoulders[0]))
    hips = [points[i] for i in (R_HIP, L_HIP) if i in points]
    (rx, ry), (lx, ly) = shoulders
    framed_at_the_waist = R_KNEE not in points and L_KNEE not in points
    if len(hips) == 2 and not framed_at_the_waist:
        (rhx, rhy), (lhx, lhy) = hips
    elif len(hips) == 1 and not framed_at_the_waist:
        hx, hy = hips[0]
        half = abs(lx - rx) * 0.4
        rhx, rhy, lhx, lhy = hx - half, hy, hx + half, hy
    else:  # a bust (no legs): straight down, a little wider, past the bottom edge
        bottom = size[1] + limb * 2
        spread = (lx - rx) * 0.06
        rhx, rhy, lhx, lhy = rx - spread, bottom, lx + spread, bottom
    outline = [(rx, ry), (lx, ly), (lhx, lhy), (rhx, rhy)]
    pen.polygon(outline, fill=colour)
    radius = limb * 0.5
    for a, b in zip(outline, outline[1:] + outline[:1], strict=True):
        _stick(pen, a, b, radius * 2, colour)


def _chain(
    pen: ImageDraw.ImageDraw,
    points: dict[int, tuple[float, float]],
    joints: tuple[int, ...],
    thickness: float,
    colour: RGB,
) -> None:
    for a, b in zip(joints, joints[1:], strict=False):
        if a in points and b in points:
            _stick(pen, points[a], points[b], thickness, colour)


def _stick(
    pen: ImageDraw.ImageDraw,
    a: tuple[float, float],
    b: tuple[float, float],
    thickness: float,
    colour: RGB,
) -> None:
    """A thick limb with round ends."""
    pen.line([a, b], fill=colour, width=max(1, round(thickness)))
    _dot(pen, a, thickness / 2, colour)
    _dot(pen, b, thickness / 2, colour)


def _dot(pen: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float, colour: RGB) -> None:
    x, y = centre
    pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def _paste_head(
    picture: Image.Image, head: Image.Image, centre: tuple[float, float], size: float
) -> None:
    """The head scaled so its long side is `size` pixels, centred on `centre`."""
    long_side = max(head.size)
    factor = size / long_side
    scaled = (max(1, round(head.width * factor)), max(1, round(head.height * factor)))
    resized = head.resize(
        scaled, Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC
    )
    left = round(centre[0] - scaled[0] / 2)
    top = round(centre[1] - scaled[1] / 2)
    if scaled[1] < picture.height * 0.8:  # a portrait's large head: down into the frame
        top = max(top, 0)
    picture.paste(resized, (left, top), resized)


# -- the head


def _flat_background(image: Image.Image) -> RGB | None:
    """The one colour of all four corners, or None (a photo)."""
    right, bottom = image.width - 1, image.height - 1
    corners = [image.getpixel(xy) for xy in ((0, 0), (right, 0), (0, bottom), (right, bottom))]
    first = corners[0]
    assert isinstance(first, tuple)
    if any(corner[3] < 255 for corner in corners):  # type: ignore[index]
        return None
    if all(math.dist(corner[:3], first[:3]) <= FLAT for corner in corners):  # type: ignore[index]
        return (int(first[0]), int(first[1]), int(first[2]))
    return None


def _keyed(image: Image.Image, background: RGB) -> Image.Image:
    """The picture with its background, as far as it reaches from the edges, transparent, cut to
    what is left. Flood-filled on a mask KEY_SIDE a side (Pillow's fill is per pixel in Python:
    ~0.3 s at 384 px), its edge smoothed back up to the picture's size."""
    image.thumbnail((HEAD_SIDE, HEAD_SIDE), Image.Resampling.LANCZOS)
    small = image.convert("RGB")
    small.thumbnail((KEY_SIDE, KEY_SIDE), Image.Resampling.BOX)
    solid = Image.new("RGB", small.size, background)
    difference = ImageChops.difference(small, solid).convert("L")
    # 255 where the picture is not background; the background reached from the edges: 128
    mask = difference.point(lambda value: 255 if value > KEY else 0)
    width, height = mask.size
    for xy in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)):
        if mask.getpixel(xy) == 0:
            ImageDraw.floodfill(mask, xy, 128)
    outside = mask.point(lambda value: 255 if value == 128 else 0)
    outside = outside.resize(image.size, Image.Resampling.BILINEAR)
    # the fine edge from the full-size colour distance, the region from the small fill
    near = ImageChops.difference(image.convert("RGB"), Image.new("RGB", image.size, background))
    near = near.convert("L").point(lambda value: 0 if value <= KEY else 255)
    alpha = ImageChops.lighter(
        ImageChops.invert(outside).point(lambda v: 255 if v > 200 else 0), near
    )
    alpha = alpha.filter(ImageFilter.GaussianBlur(0.6))
    image.putalpha(alpha)
    box = alpha.getbbox()
    return image.crop(box) if box else image


def _soft_circle(side: int) -> Image.Image:
    scale = 4
    mask = Image.new("L", (side * scale, side * scale), 0)
    inset = side * scale * 0.01
    ImageDraw.Draw(mask).ellipse(
        (inset, inset, side * scale - inset, side * scale - inset), fill=255
    )
    return mask.reduce(scale).filter(ImageFilter.GaussianBlur(side * 0.01))
