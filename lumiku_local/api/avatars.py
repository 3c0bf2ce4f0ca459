"""Avatars: metadata, image, thumbnail, delete."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import delete, get, patch, post
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
    favorite: bool | None = None
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
    """Rename the avatar, mark it a favourite (or not), or move its face square (generations
    already made keep theirs)."""
    box = data.face_box
    avatar = avatars.update(
        state.runtime,
        avatar_id,
        face_box={"x": box.x, "y": box.y, "size": box.size} if box else None,
        name=data.name,
        favorite=data.favorite,
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
    """Move the avatar to the trash; `…/restore` undoes it until the trash is emptied."""
    avatars.delete(state.runtime, avatar_id)


@post(
    f"{API}/avatars/{{avatar_id:str}}/restore",
    tags=["avatars"],
    status_code=200,
    responses=change_errors(404, 409),
)
@blocking
def restore_avatar(state: State, avatar_id: FromPath[str]) -> dict[str, Any]:
    """Take the avatar out of the trash; 409 when it is not there (never deleted, the trash was
    emptied, or its project is deleted too: restore the project)."""
    return {"avatar": shapes.avatar(avatars.restore(state.runtime, avatar_id))}


AvatarIds = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=64)]],
    msgspec.Meta(min_length=1, max_length=avatars.MAX_IDS),
]


class AvatarIdsBody(Body, rename="camel"):
    avatar_ids: AvatarIds


@post(
    f"{API}/avatars/delete",
    tags=["avatars"],
    status_code=200,
    responses=change_errors(404, 422),
)
@blocking
def delete_avatars(state: State, data: JSONBody[AvatarIdsBody]) -> dict[str, Any]:
    """Move several avatars to the trash at once (all or none: 404 naming any that is unknown
    or already deleted); `…/avatars/restore` with the same ids undoes it."""
    return {"deleted": avatars.delete_many(state.runtime, data.avatar_ids)}


@post(
    f"{API}/avatars/restore",
    tags=["avatars"],
    status_code=200,
    responses=change_errors(404, 409, 422),
)
@blocking
def restore_avatars(state: State, data: JSONBody[AvatarIdsBody]) -> dict[str, Any]:
    """Take several avatars out of the trash at once (all or none)."""
    return {"restored": avatars.restore_many(state.runtime, data.avatar_ids)}


routes = [
    get_avatar,
    update_avatar,
    avatar_image,
    avatar_thumbnail,
    delete_avatar,
    restore_avatar,
    delete_avatars,
    restore_avatars,
]
