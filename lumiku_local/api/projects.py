"""Projects, uploads into them, and generation requests for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import delete, get, patch, post
from litestar.datastructures import State, UploadFile
from litestar.params import FromPath, JSONBody, MultipartBody, Parameter, QueryParameter

from .. import avatars, generations, projects
from ..errors import InvalidInput
from ..models import AvatarGeneration
from . import blocking, in_thread, shapes
from .answers import change_errors, errors
from .strict_input import Body

API = shapes.API


class ProjectBody(Body):
    name: str
    description: str = ""


class ProjectPatch(Body):
    name: str | None = None
    description: str | None = None


Cursor = Annotated[
    str | None, Parameter(max_length=512, description="the previous page's nextCursor")
]
SmallInt = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]  # what SQLite can hold


class GenerateBody(Body, rename="camel"):
    prompt: str = ""
    name: str | None = None
    model_key: str | None = None
    preset_id: SmallInt | None = None
    style: str | None = None
    count: SmallInt = 1
    seed: SmallInt | None = None
    width: SmallInt | None = None
    height: SmallInt | None = None
    reference_avatar_id: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=64,
                description="A live avatar of this project (an uploaded photo, or any avatar) "
                "to start from; see each model's `reference` for how it uses one.",
            ),
        ]
        | None
    ) = None
    likeness: (
        Annotated[
            float,
            msgspec.Meta(
                description="0-1: how strongly the results follow the photo; the model's "
                "`reference.defaultLikeness` when left out. Needs referenceAvatarId."
            ),
        ]
        | None
    ) = None
    negative_prompt: (
        Annotated[
            str,
            msgspec.Meta(
                description="Diffusion models: what to keep out of the image (up to 2000 "
                "characters). Models that run without guidance (the one-step Turbo models) "
                "ignore it; the Instant model refuses it.",
            ),
        ]
        | None
    ) = None


@dataclass
class UploadForm:
    file: UploadFile
    name: str | None = None


@post(f"{API}/projects", tags=["projects"], status_code=201, responses=change_errors(422))
@blocking
def create_project(state: State, data: JSONBody[ProjectBody]) -> dict[str, Any]:
    return shapes.project(projects.create(state.runtime, data.name, data.description), 0)


@get(f"{API}/projects", tags=["projects"], responses=errors(422))
@blocking
def list_projects(
    state: State,
    limit: Annotated[
        int, Parameter(ge=1, le=projects.MAX_PAGE_SIZE, description="projects per page")
    ] = projects.PAGE_SIZE,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Projects, most recently active first, a page at a time: follow `nextCursor` until null."""
    page = projects.list_live(state.runtime, limit, cursor)
    return {
        "projects": [shapes.project(project, count) for project, count in page.projects],
        "nextCursor": page.next_cursor,
    }


@get(f"{API}/projects/{{project_id:str}}", tags=["projects"], responses=errors(404))
@blocking
def get_project(project_id: FromPath[str]) -> dict[str, Any]:
    project = generations.live_project(project_id)
    live = projects.live_avatars(project.id)
    return {
        "project": {
            **shapes.project(project, len(live)),
            "avatars": [shapes.avatar(avatar) for avatar in live],
        }
    }


@patch(f"{API}/projects/{{project_id:str}}", tags=["projects"], responses=change_errors(404, 422))
@blocking
def rename_project(project_id: FromPath[str], data: JSONBody[ProjectPatch]) -> dict[str, Any]:
    return {"project": shapes.project(projects.update(project_id, data.name, data.description))}


@get(
    f"{API}/projects/{{project_id:str}}/avatars",
    tags=["avatars"],
    responses=errors(404, 422),
)
@blocking
def list_project_avatars(
    project_id: FromPath[str],
    limit: Annotated[
        int, Parameter(ge=1, le=projects.MAX_PAGE_SIZE, description="avatars per page")
    ] = projects.GALLERY_PAGE,
    cursor: Cursor = None,
    favorite: Annotated[
        bool | None, Parameter(description="only favourites (true) or only the others (false)")
    ] = None,
    source: Annotated[
        Literal["upload", "generated"] | None,
        Parameter(description="only uploaded photos or only generated avatars"),
    ] = None,
    generation_id: Annotated[
        str | None,
        QueryParameter(name="generationId", max_length=64, description="only this generation's"),
    ] = None,
    order: Annotated[
        Literal["newest", "oldest"], Parameter(description="newest (default) or oldest first")
    ] = "newest",
) -> dict[str, Any]:
    """The project's live avatars a page at a time, filtered and sorted: follow `nextCursor`
    until null. `total` counts every avatar the filter matches."""
    project = generations.live_project(project_id)
    where = projects.AvatarFilter(favorite, source, generation_id, order)
    page = projects.avatar_page(project.id, limit, cursor, where)
    return {
        "avatars": [shapes.avatar(avatar) for avatar in page.avatars],
        "nextCursor": page.next_cursor,
        "total": projects.count_avatars(project.id, where),
    }


@delete(f"{API}/projects/{{project_id:str}}", tags=["projects"], responses=change_errors(404))
@blocking
def delete_project(state: State, project_id: FromPath[str]) -> None:
    """Moves the project and its avatars to the trash (`…/restore` undoes it until the trash is
    emptied) and cancels its unfinished generations, refunding what they did not deliver."""
    projects.delete(state.runtime, project_id)


@post(
    f"{API}/projects/{{project_id:str}}/restore",
    tags=["projects"],
    status_code=200,
    responses=change_errors(404, 409),
)
@blocking
def restore_project(state: State, project_id: FromPath[str]) -> dict[str, Any]:
    """Take the project out of the trash with the avatars deleted with it (its canceled
    generations stay canceled and refunded); 409 when the trash no longer holds it."""
    project = projects.restore(state.runtime, project_id)
    return {"project": shapes.project(project, projects.count_avatars(project.id))}


@post(
    f"{API}/projects/{{project_id:str}}/avatars/upload",
    tags=["avatars"],
    status_code=201,
    responses=change_errors(404, 413, 415, 422),
)
async def upload_avatar(
    state: State,
    project_id: FromPath[str],
    data: MultipartBody[UploadForm],
) -> dict[str, Any]:
    filename = data.file.filename or ""
    if any(mark in filename for mark in ("/", "\\", "\x00")) or filename.strip(". ") == "":
        raise InvalidInput("The file name must be a plain name, not a path.", code="bad_filename")
    content = await data.file.read()
    avatar = await in_thread(avatars.upload, state.runtime, project_id, content, data.name)
    return {"avatar": shapes.avatar(avatar)}


@post(
    f"{API}/projects/{{project_id:str}}/avatars/generate",
    tags=["generations"],
    status_code=202,
    responses=change_errors(402, 404, 409, 422),
)
@blocking
def generate(
    state: State, project_id: FromPath[str], data: JSONBody[GenerateBody]
) -> dict[str, Any]:
    """Charge credits and queue the generation; progress arrives on /api/events."""
    request = generations.GenerateRequest(**msgspec.structs.asdict(data))
    generation, balance = generations.submit(state.runtime, project_id, request)
    return shapes.started(generation, balance, "Avatar generation started")


@get(f"{API}/projects/{{project_id:str}}/generations", tags=["generations"], responses=errors(404))
@blocking
def list_generations(project_id: FromPath[str]) -> dict[str, Any]:
    project = generations.live_project(project_id)
    rows = (
        AvatarGeneration.select()
        .where(AvatarGeneration.project == project.id)
        .order_by(AvatarGeneration.created_at.desc())
        .limit(200)
    )
    return {"generations": shapes.generations_of(list(rows))}


routes = [
    create_project,
    list_projects,
    get_project,
    rename_project,
    list_project_avatars,
    delete_project,
    restore_project,
    upload_avatar,
    generate,
    list_generations,
]
