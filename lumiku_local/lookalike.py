"""The Instant engine's look-alike: a photo's skin, hair and background colours as DiceBear
colour options, moved from the seed's own colours towards the photo's by the likeness."""

from __future__ import annotations

import functools
import io
import json
import statistics
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from .engines.base import Reference

RGB = tuple[int, int, int]
ROLES = ("skin", "hair", "background")
# where a style calls a role by another colour name (micah's skin is its "base")
STYLE_COLOUR_NAMES = {"micah": {"skin": "base"}}
REGION_SIDE = 24  # pixels: a region is read at most this big, enough for a median
EDGE_SIDE = 64  # pixels: the photo's long side when its edges are read for the background
APART = 30  # RGB distance: a hair pixel this close to the background or skin is not hair


@dataclass(frozen=True)
class Look:
    """A photo's colours, hex without '#' as DiceBear takes them."""

    skin: str
    hair: str
    background: str

    def describe(self) -> str:
        return f"skin {self.skin}, hair {self.hair}, background {self.background}"


@functools.cache
def style_colours(style_name: str) -> dict[str, str]:
    """The roles a style can take from a photo, each with the DiceBear colour it sets.

    Every style takes a background; skin and hair where the style definition has them.
    """
    definition = resources.files("dicebear_styles").joinpath(f"{style_name}.json").read_text()
    colours = json.loads(definition).get("colors") or {}
    roles = {"background": "background"}
    for role in ("skin", "hair"):
        name = STYLE_COLOUR_NAMES.get(style_name, {}).get(role, role)
        if name in colours:
            roles[role] = name
    return roles


@functools.cache
def look_alike_styles() -> list[str]:
    """The styles a photo changes more than the background of: those with skin or hair."""
    from .catalog import dicebear_styles

    return [style for style in dicebear_styles() if set(style_colours(style)) - {"background"}]


def sample(reference: Reference) -> Look:
    """The skin (the middle of the face square, below the eyes), the hair (the band across the
    square's top edge, without what looks like background or skin) and the background (the
    photo's top and side edges, away from the face): per-channel medians, so deterministic."""
    from PIL import Image

    with Image.open(io.BytesIO(reference.png)) as opened:
        photo = _rgb(opened)  # decoding is most of the cost: 4000×3000 px ~0.2 s, once
    x, y, size = reference.face_box.x, reference.face_box.y, reference.face_box.size
    skin = _median(
        _region(photo, x + 0.35 * size, y + 0.55 * size, x + 0.65 * size, y + 0.75 * size)
    )
    background = _median(_edges(photo, x, y, size))
    band = _region(photo, x + 0.35 * size, y - 0.1 * size, x + 0.65 * size, y + 0.3 * size)
    hair = _median(_apart(band, [background, skin]) or _apart(band, [background]) or band)
    return Look(_hex(skin), _hex(hair), _hex(background))


def colour_options(
    style_name: str, style: Any, options: dict[str, Any], look: Look, likeness: float
) -> dict[str, list[str]]:
    """The `{name}Color` options that give `style` the look: each colour the seed would pick
    (`options` as they are) moved towards the photo's, all the way at likeness 1."""
    from dicebear.options import Options
    from dicebear.resolver import Resolver

    seeded = Resolver(style, Options(options))
    result = {}
    for role, name in style_colours(style_name).items():
        wanted = getattr(look, role)
        picked = seeded.color(name)
        start = picked[0].lstrip("#")[:6] if picked else wanted
        result[f"{name}Color"] = [blend(start, wanted, likeness)]
    return result


def blend(start: str, end: str, fraction: float) -> str:
    """The colour `fraction` of the way from `start` to `end` (hex without '#')."""
    a, b = _rgb_of(start), _rgb_of(end)
    mixed = (round(p + (q - p) * fraction) for p, q in zip(a, b, strict=True))
    return "".join(f"{channel:02x}" for channel in mixed)


def _rgb(image: Image.Image) -> Image.Image:
    """RGB, transparency laid on white (a cut-out portrait's background is not black)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    image.load()  # read now: the caller closes the file
    return image if image.mode == "RGB" else image.convert("RGB")


def _region(photo: Image.Image, left: float, top: float, right: float, bottom: float) -> list[RGB]:
    """The pixels of a rectangle of the photo (clipped to it), read at most REGION_SIDE a side."""
    box = (
        min(max(round(left), 0), photo.width - 1),
        min(max(round(top), 0), photo.height - 1),
        min(max(round(right), 1), photo.width),
        min(max(round(bottom), 1), photo.height),
    )
    box = (box[0], box[1], max(box[2], box[0] + 1), max(box[3], box[1] + 1))
    crop = photo.crop(box)
    crop.thumbnail((REGION_SIDE, REGION_SIDE), resample=_box_filter())
    return _pixels(crop)


def _edges(photo: Image.Image, x: float, y: float, size: float) -> list[RGB]:
    """Pixels along the top and the upper two thirds of the sides, outside the face square
    (`x`, `y`, `size`):
    where a portrait shows its background (the bottom edge is usually the person's clothes)."""
    factor = max(photo.width, photo.height) // EDGE_SIDE
    small = photo.reduce(factor) if factor >= 2 else photo.copy()  # reduce: a new, small image
    small.thumbnail((EDGE_SIDE, EDGE_SIDE), resample=_box_filter())
    scale = small.width / photo.width
    width, height = small.size
    ring_x, ring_y = max(1, width // 8), max(1, height // 8)
    margin = size * 0.1
    face_left, face_top = (x - margin) * scale, (y - margin) * scale
    face_right, face_bottom = (x + size + margin) * scale, (y + size + margin) * scale
    pixels = _pixels(small)
    edge: list[RGB] = []
    ring: list[RGB] = []
    for py in range(height):
        for px in range(width):
            if not (px < ring_x or px >= width - ring_x or py < ring_y or py >= height - ring_y):
                continue
            pixel = pixels[py * width + px]
            ring.append(pixel)
            inside_face = face_left <= px < face_right and face_top <= py < face_bottom
            if py < height * 2 / 3 and not inside_face:
                edge.append(pixel)
    return edge or ring


def _pixels(image: Image.Image) -> list[RGB]:
    """An RGB image's pixels, row by row."""
    data = image.tobytes()
    return [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]


def _apart(pixels: list[RGB], avoid: list[RGB]) -> list[RGB]:
    """The pixels at least APART from every colour in `avoid`, if at least a twentieth are (fewer
    are the blurred edges between the colours avoided)."""
    kept = [p for p in pixels if all(_distance(p, colour) >= APART for colour in avoid)]
    return kept if len(kept) >= max(1, len(pixels) // 20) else []


def _median(pixels: list[RGB]) -> RGB:
    r, g, b = (int(statistics.median_low(channel)) for channel in zip(*pixels, strict=True))
    return (r, g, b)


def _distance(a: RGB, b: RGB) -> float:
    return sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) ** 0.5


def _hex(colour: RGB) -> str:
    return "".join(f"{channel:02x}" for channel in colour)


def _rgb_of(colour: str) -> RGB:
    digits = colour.lstrip("#")
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def _box_filter() -> Any:
    from PIL import Image

    return Image.Resampling.BOX
