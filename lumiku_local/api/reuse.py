"""Generating again: the settings of a generation or an avatar, and the recent prompts."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State
from litestar.params import FromPath

from .. import reuse
from . import blocking, shapes
from .answers import errors

API = shapes.API


@get(
    f"{API}/generations/{{generation_id:str}}/settings",
    tags=["generations"],
    responses=errors(404, 422),
)
@blocking
def generation_settings(generation_id: FromPath[str]) -> dict[str, Any]:
    """The request that made this generation, as a generate body takes it back (`size` for
    width and height, `referenceAvatarId` only while the photo is live in the project)."""
    return {"settings": reuse.of_generation(generation_id).as_json()}


@get(f"{API}/avatars/{{avatar_id:str}}/settings", tags=["avatars"], responses=errors(404, 422))
@blocking
def avatar_settings(avatar_id: FromPath[str]) -> dict[str, Any]:
    """The settings that made this generated avatar, starting at its own seed (so the first
    image of a generate with them is this avatar again); 422 for an uploaded photo."""
    return {"settings": reuse.of_avatar(avatar_id).as_json()}


@get(f"{API}/prompts/recent", tags=["generations"])
@blocking
def recent_prompts(state: State) -> dict[str, Any]:
    """The last 10 distinct prompts of the Avatar Creator's generations, newest first."""
    return {"prompts": reuse.recent_prompts(state.runtime.user_id)}


routes = [generation_settings, avatar_settings, recent_prompts]
