"""Avatars: metadata, image, thumbnail, delete."""

from __future__ import annotations

from typing import Any

from litestar import delete, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import File

from .. import avatars
from . import blocking, shapes
from .answers import change_errors, errors

API = shapes.API
CACHE = {"Cache-Control": "private, max-age=31536000, immutable"}  # content-addressed files


@get(f"{API}/avatars/{{avatar_id:str}}", tags=["avatars"], responses=errors(404))
@blocking
def get_avatar(avatar_id: FromPath[str]) -> dict[str, Any]:
    return {"avatar": shapes.avatar(avatars.get_live(avatar_id))}


@get(f"{API}/avatars/{{avatar_id:str}}/image", tags=["avatars"], responses=errors(404))
@blocking
def avatar_image(state: State, avatar_id: FromPath[str], download: FromQuery[bool] = False) -> File:
    path = avatars.file_path(state.runtime, avatar_id, thumbnail=False)
    return File(
        path,
        media_type="image/png",
        filename=f"avatar-{avatar_id}.png",
        content_disposition_type="attachment" if download else "inline",
        headers=CACHE,
    )


@get(f"{API}/avatars/{{avatar_id:str}}/thumbnail", tags=["avatars"], responses=errors(404))
@blocking
def avatar_thumbnail(state: State, avatar_id: FromPath[str]) -> File:
    path = avatars.file_path(state.runtime, avatar_id, thumbnail=True)
    return File(path, media_type="image/webp", content_disposition_type="inline", headers=CACHE)


@delete(f"{API}/avatars/{{avatar_id:str}}", tags=["avatars"], responses=change_errors(404))
@blocking
def delete_avatar(state: State, avatar_id: FromPath[str]) -> None:
    avatars.delete(state.runtime, avatar_id)


routes = [get_avatar, avatar_image, avatar_thumbnail, delete_avatar]
