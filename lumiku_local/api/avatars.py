"""Avatars: metadata, image, thumbnail, delete."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import delete, get, patch
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import File

from .. import avatars, names
from . import blocking, shapes
from .answers import change_errors, errors
from .strict_input import Body

API = shapes.API
CACHE = {"Cache-Control": "private, max-age=31536000, immutable"}  # content-addressed files


class FaceBoxBody(Body):
    x: int
    y: int
    size: int


class AvatarPatch(Body, rename="camel"):
    name: str | None = None
    face_box: (
        Annotated[
            FaceBoxBody,
            msgspec.Meta(
                description="The face square on the photo, in its pixels: what generations "
                "that use it as a reference follow. Must lie inside the image."
            ),
        ]
        | None
    ) = None


@get(f"{API}/avatars/{{avatar_id:str}}", tags=["avatars"], responses=errors(404))
@blocking
def get_avatar(avatar_id: FromPath[str]) -> dict[str, Any]:
    return {"avatar": shapes.avatar(avatars.get_live(avatar_id))}


@patch(f"{API}/avatars/{{avatar_id:str}}", tags=["avatars"], responses=change_errors(404, 422))
@blocking
def update_avatar(
    state: State, avatar_id: FromPath[str], data: JSONBody[AvatarPatch]
) -> dict[str, Any]:
    """Rename the avatar or move its face square (generations already made keep theirs)."""
    box = data.face_box
    avatar = avatars.update(
        state.runtime,
        avatar_id,
        face_box={"x": box.x, "y": box.y, "size": box.size} if box else None,
        name=data.name,
    )
    return {"avatar": shapes.avatar(avatar)}


@get(f"{API}/avatars/{{avatar_id:str}}/image", tags=["avatars"], responses=errors(404))
@blocking
def avatar_image(state: State, avatar_id: FromPath[str], download: FromQuery[bool] = False) -> File:
    path = avatars.file_path(state.runtime, avatar_id, thumbnail=False)
    avatar = avatars.get_live(avatar_id)
    file_name = names.avatar_file_name(
        avatar.project.name, avatar.name, avatar.variation_key, avatar.seed
    )
    disposition = names.content_disposition(file_name, attachment=download)
    return File(
        path,
        media_type="image/png",
        filename=file_name,
        content_disposition_type="attachment" if download else "inline",
        headers={**CACHE, "content-disposition": disposition},
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


routes = [get_avatar, update_avatar, avatar_image, avatar_thumbnail, delete_avatar]
