"""The Avatar Creator's exports: chosen avatars as one streamed zip, as stored or as profile
pictures (sizes, square or circle, transparent background where the engine allows it)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.response import Stream

from .. import exports, profile_images
from ..profile_images import MAX_SIZE, MAX_SIZES, MIN_SIZE
from . import blocking
from .answers import errors
from .shapes import API
from .strict_input import Body


class ExportBody(Body, rename="camel"):
    """What to export, and how."""

    avatar_ids: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]],
        msgspec.Meta(
            description=f"1 to {exports.MAX_AVATARS} live avatars, in the order the zip lists "
            "them; an id given twice goes once."
        ),
    ]
    sizes: Annotated[
        list[int] | None,
        msgspec.Meta(
            description=f"Square sizes in pixels, {MIN_SIZE} to {MAX_SIZE}, at most {MAX_SIZES} "
            "(e.g. 1024, 512, 400, 320, 128): one PNG per avatar and size, cut to a square "
            "(on an upload's face) and resized with Lanczos. Left out: each avatar at its own "
            "size (the stored PNGs, unless shape or background asks otherwise)."
        ),
    ] = None
    shape: Annotated[
        str,
        msgspec.Meta(description="square, or circle: cut round, transparent outside the circle."),
    ] = "square"
    background: Annotated[
        str,
        msgspec.Meta(
            description="keep, or transparent: Instant (DiceBear) avatars are drawn again "
            "without their background, same style, seed and colours. Uploads, diffusion "
            "images, pose pictures and the few styles that blend with their background cannot: "
            "asking for them is a 422 naming each, and nothing is sent."
        ),
    ] = "keep"


@post(
    f"{API}/exports",
    tags=["exports"],
    status_code=200,
    responses=errors(404, 422),
    media_type="application/zip",
)
@blocking
def export_avatars(state: State, data: JSONBody[ExportBody]) -> Stream:
    """Chosen avatars as one zip, streamed: PNGs with their parameters (PNG text chunks) and a
    manifest.json of each file's avatar, seed, model, prompt, size and sha256. With `sizes`,
    files are named `<project>-<avatar>-<variation>-<size>px[-circle].png`; without, the stored
    PNGs are numbered in the order given. An unknown or deleted id is a 404 naming it; a value
    out of range a 422; either way nothing is sent."""
    profile = profile_images.choose(data.sizes, data.shape, data.background)
    export = exports.for_avatars(state.runtime.settings.files_dir, data.avatar_ids, profile)
    return exports.response(export, export.filename)


routes = [export_avatars]
