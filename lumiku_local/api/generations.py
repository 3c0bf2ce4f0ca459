"""One generation: status and progress, cancel, retry."""

from __future__ import annotations

from typing import Any, Literal

from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody
from litestar.response import File

from .. import generations, references
from . import blocking, shapes
from .answers import change_errors, errors
from .avatars import CACHE
from .strict_input import Body

API = shapes.API


class RetryBody(Body):
    only: Literal["missing", "all"] = "all"


@get(f"{API}/generations/{{generation_id:str}}", tags=["generations"], responses=errors(404))
@blocking
def get_generation(generation_id: FromPath[str]) -> dict[str, Any]:
    return {"generation": shapes.generation(generations.get_generation(generation_id))}


@get(
    f"{API}/generations/{{generation_id:str}}/reference",
    tags=["generations"],
    responses=errors(404),
)
@blocking
def generation_reference(state: State, generation_id: FromPath[str]) -> File:
    """The photo this generation starts from: its own copy, kept even if the photo is deleted."""
    path = references.file_path(state.runtime.settings.files_dir, generation_id, thumbnail=False)
    return File(path, media_type="image/png", content_disposition_type="inline", headers=CACHE)


@get(
    f"{API}/generations/{{generation_id:str}}/reference/thumbnail",
    tags=["generations"],
    responses=errors(404),
)
@blocking
def generation_reference_thumbnail(state: State, generation_id: FromPath[str]) -> File:
    path = references.file_path(state.runtime.settings.files_dir, generation_id, thumbnail=True)
    return File(path, media_type="image/webp", content_disposition_type="inline", headers=CACHE)


@post(
    f"{API}/generations/{{generation_id:str}}/cancel",
    tags=["generations"],
    status_code=200,
    responses=change_errors(404, 409),
)
@blocking
def cancel_generation(state: State, generation_id: FromPath[str]) -> dict[str, Any]:
    """Stop a pending or running generation; undelivered images are refunded."""
    generation = generations.cancel(state.runtime, generation_id)
    return {"generation": shapes.generation(generation)}


@post(
    f"{API}/generations/{{generation_id:str}}/retry",
    tags=["generations"],
    status_code=202,
    responses=change_errors(402, 404, 409),
)
@blocking
def retry_generation(
    state: State, generation_id: FromPath[str], data: JSONBody[RetryBody | None] = None
) -> dict[str, Any]:
    """A new generation with the same request and new seeds; with `{"only": "missing"}` just
    the images the old one did not deliver, with their own seeds, charged for those alone
    (409 when nothing is missing). The old one stays as it was."""
    only_missing = data is not None and data.only == "missing"
    generation, balance = generations.retry(state.runtime, generation_id, only_missing)
    return shapes.started(generation, balance, "Avatar generation started")


routes = [
    get_generation,
    generation_reference,
    generation_reference_thumbnail,
    cancel_generation,
    retry_generation,
]
