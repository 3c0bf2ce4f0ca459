"""Profile pictures: an avatar cut square (or round), resized to the sizes profiles use, with its
parameters, and drawn again without its background where its engine can (Instant styles).

`choose` checks what was asked (one home for the limits the API and the page share);
`redraw_for` says whether an avatar can lose its background, or why not; `render` makes one PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .lookalike import Look
    from .models import Avatar

MIN_SIZE, MAX_SIZE, MAX_SIZES = 16, 2048, 8
PROFILE_SIZES = (1024, 512, 400, 320, 128)  # what profile pictures are shown at, largest first
SHAPES = ("square", "circle")
BACKGROUNDS = ("keep", "transparent")
_CIRCLE_SUPERSAMPLE = 4  # the mask is drawn larger and scaled down: a smooth edge


@dataclass(frozen=True)
class Profile:
    """How an export's PNGs are made; the defaults are the stored PNGs as they are."""

    sizes: tuple[int, ...] = ()  # empty: each avatar at its own size
    shape: str = "square"
    background: str = "keep"

    @property
    def is_original(self) -> bool:
        return not self.sizes and self.shape == "square" and self.background == "keep"

    def describe(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes), "shape": self.shape, "background": self.background}


def choose(
    sizes: list[int] | None = None, shape: str | None = None, background: str | None = None
) -> Profile:
    """The profile asked for, or InvalidInput saying what is wrong (duplicate sizes go once)."""
    shape = shape or "square"
    background = background or "keep"
    if shape not in SHAPES:
        raise InvalidInput(f"shape must be square or circle, not {shape!r}.")
    if background not in BACKGROUNDS:
        raise InvalidInput(f"background must be keep or transparent, not {background!r}.")
    if sizes is None:
        return Profile((), shape, background)
    chosen = tuple(dict.fromkeys(sizes))
    if not chosen:
        raise InvalidInput("Choose at least one size, or leave sizes out for the original PNGs.")
    if len(chosen) > MAX_SIZES:
        raise InvalidInput(f"Choose at most {MAX_SIZES} sizes at once, not {len(chosen)}.")
    if wrong := [size for size in chosen if not MIN_SIZE <= size <= MAX_SIZE]:
        raise InvalidInput(
            f"Sizes must be between {MIN_SIZE} and {MAX_SIZE} px; "
            f"{', '.join(str(size) for size in wrong)} is not."
        )
    return Profile(chosen, shape, background)


@dataclass(frozen=True)
class Redraw:
    """What the Instant engine needs to draw an avatar again, exactly as it was made."""

    style: str
    seed: str  # DiceBear's seed text (engines.dicebear.engine_seed)
    look: Look | None  # the photo's colours, for a look-alike
    likeness: float


@dataclass(frozen=True)
class ProfileImage:
    """One PNG to make: an avatar's stored PNG at `size` (None: its own), square or round."""

    size: int | None
    shape: str
    redraw: Redraw | None  # drawn again without its background, instead of resized
    face_box: dict[str, Any] | None  # an upload's face square: the crop centres on it


def redraw_for(avatar: Avatar, files_dir: Path) -> Redraw | str:
    """How to draw the avatar again without its background, or why its engine cannot (words
    that finish "cannot lose its background: ...")."""
    from . import lookalike, references
    from .engines.base import PermanentEngineError
    from .engines.dicebear import CANNOT_LOSE_BACKGROUND, engine_seed
    from .models import AIModel, AvatarGeneration

    if avatar.source == "upload":
        return "it is an uploaded photo, whose background is part of the picture"
    model = AIModel.get_or_none(AIModel.key == avatar.model_key) if avatar.model_key else None
    generation = (
        AvatarGeneration.get_or_none(AvatarGeneration.id == avatar.generation_id)
        if avatar.generation_id
        else None
    )
    if model is None or generation is None:
        return "the model that made it is no longer known"
    if model.provider != "dicebear":
        return f"{model.name} paints the background into the picture"
    if avatar.pose_id is not None:
        return "its pose picture has the background drawn in"
    style = avatar.style or (generation.options or {}).get("style")
    if not style:
        return "its style is not recorded"
    if why := CANNOT_LOSE_BACKGROUND.get(style):
        return f"the {style} style {why}"
    look, likeness = None, 0.0
    try:
        reference = references.for_engine(generation, files_dir)
    except PermanentEngineError:
        return "the photo it was made to look like is no longer in the data folder"
    if reference is not None:
        look, likeness = lookalike.sample(reference), reference.likeness
    return Redraw(style, engine_seed(generation.prompt, avatar.seed or 0), look, likeness)


def render(source: Path, image: ProfileImage, notes: dict[str, str]) -> bytes:
    """The PNG: cut square, resized (LANCZOS) or drawn again, cut round if asked, carrying the
    stored PNG's text chunks (its parameters) and `notes`. Raises OSError and the engine's
    errors; the caller lists the avatar as missing."""
    from PIL import Image

    with Image.open(source) as stored:
        texts = {str(key): str(value) for key, value in getattr(stored, "text", {}).items()}
        if image.redraw is not None:
            side = image.size or min(stored.size)
            picture = _drawn_again(image.redraw, side)
        else:
            picture = _square(stored, image.face_box)
            if image.size and image.size != picture.width:
                picture = picture.resize((image.size, image.size), Image.Resampling.LANCZOS)
    if image.shape == "circle":
        picture = _circle(picture)
    return _png(picture, texts | notes)


def _drawn_again(redraw: Redraw, side: int) -> PILImage.Image:
    from PIL import Image

    from .engines import engine_for
    from .engines.dicebear import DiceBearEngine

    engine = engine_for("dicebear")
    assert isinstance(engine, DiceBearEngine)
    png = engine.redraw_png(
        redraw.style, redraw.seed, side, side, redraw.look, redraw.likeness, False
    )
    with Image.open(io.BytesIO(png)) as drawn:
        return drawn.convert("RGBA")


def _square(picture: PILImage.Image, face_box: dict[str, Any] | None) -> PILImage.Image:
    """The largest square of the picture: centred, or on the face square where there is one."""
    width, height = picture.size
    side = min(width, height)
    centre_x, centre_y = width / 2, height / 2
    if face_box and face_box.get("source") in ("detected", "user"):
        half = float(face_box.get("size", 0)) / 2
        centre_x = float(face_box.get("x", 0)) + half
        centre_y = float(face_box.get("y", 0)) + half
    left = round(min(max(centre_x - side / 2, 0), width - side))
    top = round(min(max(centre_y - side / 2, 0), height - side))
    mode = "RGBA" if picture.mode in ("RGBA", "LA", "PA", "P") else "RGB"
    converted = picture if picture.mode == mode else picture.convert(mode)
    return converted.crop((left, top, left + side, top + side))


def _circle(picture: PILImage.Image) -> PILImage.Image:
    """The circle inside the square, transparent outside it, with a smooth edge."""
    from PIL import Image, ImageChops, ImageDraw

    side = picture.width
    big = side * _CIRCLE_SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, big - 1, big - 1), fill=255)
    mask = mask.reduce(_CIRCLE_SUPERSAMPLE)  # a box average: the edge's coverage
    rgba = picture.convert("RGBA")
    rgba.putalpha(ImageChops.multiply(rgba.getchannel("A"), mask))
    return rgba


def _png(picture: PILImage.Image, texts: dict[str, str]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in texts.items():
        info.add_itxt(key, value)  # UTF-8: prompts are not Latin-1
    out = io.BytesIO()
    picture.save(out, "PNG", pnginfo=info)
    return out.getvalue()
