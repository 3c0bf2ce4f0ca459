"""The avatar page's "Export for profiles": the zip of all sizes (a plain form POST, so the
browser streams it to disk) and single-size PNGs, through the same service as POST …/exports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from litestar import get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Response, Stream

from .. import exports, profile_images
from ..api import blocking
from ..errors import InvalidInput
from ..models import Avatar
from ..profile_images import PROFILE_SIZES

# a field given more than once (the sizes ticked) is a list
ExportForm = Annotated[dict[str, str | list[str]], Body(media_type=RequestEncodingType.URL_ENCODED)]
EXTRA_SIZES = (2048, 256, 64)  # offered, not ticked: a large original and small icons


def panel(avatar: Avatar, files_dir: Path) -> dict[str, Any]:
    """What the panel offers this avatar: the sizes, and a transparent background or why not."""
    redraw = profile_images.redraw_for(avatar, files_dir)
    return {
        "sizes": sorted({*PROFILE_SIZES, *EXTRA_SIZES}, reverse=True),
        "ticked": PROFILE_SIZES,
        "transparent": not isinstance(redraw, str),
        "transparent_reason": redraw if isinstance(redraw, str) else "",
    }


def _values(form: dict[str, str | list[str]], name: str) -> list[str]:
    value = form.get(name)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _sizes(raw: list[str]) -> list[int]:
    try:
        return [int(value) for value in raw]
    except ValueError:
        raise InvalidInput("Sizes must be whole numbers of pixels.") from None


@post("/ui/exports", include_in_schema=False, status_code=200)
@blocking
def export_zip(state: State, data: ExportForm) -> Stream:
    """The form's zip: fields avatarId (one or more), size (one or more), shape, background."""
    background = "transparent" if "transparent" in _values(data, "background") else "keep"
    profile = profile_images.choose(
        _sizes(_values(data, "size")), str(data.get("shape") or "square"), background
    )
    files_dir = state.runtime.settings.files_dir
    export = exports.for_avatars(files_dir, _values(data, "avatarId"), profile)
    return exports.response(export, export.filename)


@get("/ui/avatars/{avatar_id:str}/profile.png", include_in_schema=False)
@blocking
def profile_png(
    state: State,
    avatar_id: FromPath[str],
    size: FromQuery[int] = 512,
    shape: FromQuery[str] = "square",
    background: FromQuery[str] = "keep",
    download: FromQuery[bool] = True,
) -> Response[bytes]:
    """One size of the avatar: a download, or (download=false) the panel's preview."""
    profile = profile_images.choose([size], shape, background)
    name, png = exports.profile_png(state.runtime.settings.files_dir, avatar_id, profile)
    headers = {"Cache-Control": "private, max-age=3600"}
    if download:
        headers["Content-Disposition"] = exports.content_disposition(name)
    return Response(png, media_type="image/png", headers=headers)


routes = [export_zip, profile_png]
