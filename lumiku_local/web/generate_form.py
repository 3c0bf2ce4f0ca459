"""The project page's generate form: its first values (a "Use these settings" link's, read
from the rows by reuse.of_link), the recent prompts, and the models a negative prompt reaches."""

from __future__ import annotations

from typing import Any

from .. import reuse
from ..catalog import REMOTE_PROVIDER
from ..engines.diffusers import follows_negative_prompt
from ..errors import InvalidInput, NotFound

DEFAULT_COUNT = 4
DEFAULT_SIZE = 512
SIZES = (256, 384, 512, 768, 1024)


def context(
    user_id: int,
    project_id: str,
    reuse_link: str | None,
    models: list[dict[str, Any]],
    default_model: str | None,
    default_style: str | None,
) -> dict[str, Any]:
    """What project.html's form needs beyond the catalog."""
    values: dict[str, Any] = {
        "prompt": "",
        "preset": "",
        "model": default_model,
        "style": default_style,
        "size": DEFAULT_SIZE,
        "seed": None,
        "count": DEFAULT_COUNT,
        "negative": "",
        "reference": None,
        "likeness": None,  # percent; None: the model's default
    }
    notes: list[str] = []
    reused = False
    if reuse_link:
        try:
            settings = reuse.of_link(reuse_link)
        except (NotFound, InvalidInput) as exc:
            notes.append(f"Those settings could not be used: {exc.message}")
        else:
            notes += _fill(values, settings, project_id, models)
            reused = True
    sizes = sorted({*SIZES, values["size"]})
    return {
        "form": values,
        "form_notes": notes,
        "form_reused": reused,
        "sizes": sizes,
        "recent_prompts": reuse.recent_prompts(user_id),
        "negative_models": {
            model["key"]
            for model in models
            if model["provider"] in ("diffusers", REMOTE_PROVIDER)
            and follows_negative_prompt(model.get("capabilities") or {})
        },
    }


def _fill(
    values: dict[str, Any], settings: reuse.FormSettings, project_id: str, models: list[dict]
) -> list[str]:
    notes = []
    values.update(
        prompt=settings.prompt,
        preset=f"preset-{settings.preset_id}" if settings.preset_id is not None else "",
        seed=settings.seed,
        count=settings.count,
        negative=settings.negative_prompt,
    )
    if settings.size:
        values["size"] = settings.size
    if settings.style:
        values["style"] = settings.style
    model = next((m for m in models if m["key"] == settings.model_key), None)
    if model is not None and model["installed"]:
        values["model"] = model["key"]
    else:
        name = model["name"] if model else settings.model_key
        notes.append(
            f"{name} is not installed or not enabled, so another model is chosen; "
            "download it on the Models page to use it."
        )
    if settings.reference_avatar_id and settings.project_id == project_id:
        values["reference"] = settings.reference_avatar_id
        if settings.likeness is not None:
            values["likeness"] = round(settings.likeness * 100)
    elif settings.photo_gone:
        notes.append("Its photo was deleted since, so the form starts without one.")
    return notes
