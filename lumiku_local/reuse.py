"""Generating again from what was made: the settings "Use these settings" fills the form with,
read from the rows (never from a URL), and the prompts a person wrote lately."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peewee import fn

from . import generations
from .db import tuples
from .errors import InvalidInput, NotFound
from .models import Avatar, AvatarGeneration, AvatarProject

RECENT_PROMPTS = 10
AVATAR_PREFIX = "avatar:"  # ?reuse=avatar:<id> on the project page; a bare id is a generation


@dataclass(frozen=True)
class FormSettings:
    """What the generate form is filled with. A photo is offered only while it is live in the
    project; `photo_gone` says that the original had one that was deleted since."""

    project_id: str
    prompt: str
    model_key: str
    count: int
    seed: int | None
    size: int | None
    style: str | None = None
    preset_id: int | None = None
    negative_prompt: str = ""
    reference_avatar_id: str | None = None
    likeness: float | None = None
    photo_gone: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "projectId": self.project_id,
            "prompt": self.prompt,
            "modelKey": self.model_key,
            "count": self.count,
            "seed": self.seed,
            "size": self.size,
            "style": self.style,
            "presetId": self.preset_id,
            "negativePrompt": self.negative_prompt,
            "referenceAvatarId": self.reference_avatar_id,
            "likeness": self.likeness,
            "photoGone": self.photo_gone,
        }


def of_generation(generation_id: str) -> FormSettings:
    """A generation's request: its prompt, model, style, size, base seed, count and photo."""
    generation = generations.get_generation(generation_id)
    if generation.app_id != generations.APP_ID:
        raise InvalidInput(
            "That is a Pose Generator batch; open its avatar under Poses to make more poses."
        )
    return _settings(generation, seed=(generation.options or {}).get("seed"))


def of_avatar(avatar_id: str) -> FormSettings:
    """The settings that made this avatar: its generation's, starting at this avatar's seed
    (the form's first image is this avatar again)."""
    avatar = Avatar.get_or_none((Avatar.id == avatar_id) & Avatar.deleted_at.is_null())
    if avatar is None:
        raise NotFound("No avatar has that id.")
    if avatar.source != "generated" or not avatar.prompt:
        raise InvalidInput(
            "An uploaded photo has no settings to reuse; start from it as the photo instead."
        )
    generation = AvatarGeneration.get_or_none(AvatarGeneration.id == avatar.generation_id)
    if generation is None or generation.app_id != generations.APP_ID:
        raise InvalidInput("Only avatars of the Avatar Creator have settings to reuse here.")
    seed = avatar.seed
    if seed is None or seed > generations.MAX_SEED - generations.MAX_COUNT:
        seed = (generation.options or {}).get("seed")  # the last few seeds: the batch's base
    return _settings(generation, seed=seed)


def of_link(reuse: str) -> FormSettings:
    """The project page's `?reuse=`: `avatar:<id>` or a generation id."""
    if reuse.startswith(AVATAR_PREFIX):
        return of_avatar(reuse.removeprefix(AVATAR_PREFIX))
    return of_generation(reuse)


def _settings(generation: AvatarGeneration, seed: int | None) -> FormSettings:
    options = generation.options or {}
    info = generation.reference or {}
    photo_id = info.get("avatarId") if generation.reference_file else None
    live_photo = bool(photo_id) and (
        Avatar.select()
        .where(
            (Avatar.id == photo_id)
            & (Avatar.project == generation.project_id)
            & Avatar.deleted_at.is_null()
        )
        .exists()
    )
    width = options.get("width")
    return FormSettings(
        project_id=generation.project_id,
        prompt=generation.prompt,
        model_key=generation.model_id,
        count=generation.count,
        seed=seed,
        size=int(width) if width and width == options.get("height") else None,
        style=options.get("style"),
        preset_id=options.get("presetId"),
        negative_prompt=options.get("negativePrompt") or "",
        reference_avatar_id=photo_id if live_photo else None,
        likeness=info.get("likeness") if live_photo else None,
        photo_gone=bool(photo_id) and not live_photo,
    )


def recent_prompts(user_id: int, limit: int = RECENT_PROMPTS) -> list[str]:
    """The user's last `limit` distinct prompts, newest first (projects in the trash left out)."""
    latest = fn.MAX(AvatarGeneration.created_at)
    rows = (
        AvatarGeneration.select(AvatarGeneration.prompt, latest.alias("latest"))
        .join(AvatarProject, on=(AvatarGeneration.project == AvatarProject.id))
        .where(
            (AvatarGeneration.user == user_id)
            & (AvatarGeneration.app_id == generations.APP_ID)
            & AvatarProject.deleted_at.is_null()
        )
        .group_by(AvatarGeneration.prompt)
        .order_by(latest.desc())
        .limit(limit)
    )
    return [str(prompt) for prompt, _ in tuples(rows)]
