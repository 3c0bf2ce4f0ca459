"""A generation's reference photo: which models take one, how it is chosen, kept and read."""

from __future__ import annotations

from typing import Any

from .models import AIModel

MODES = ("lookAlike", "img2img", "ipAdapter")
# likeness when the request names none: how strongly results follow the photo, per mode
DEFAULT_LIKENESS = {"lookAlike": 0.8, "img2img": 0.5, "ipAdapter": 0.6}


def mode_for(model: AIModel, style: str | None = None) -> str | None:
    """How `model` (with `style`, for the Instant engine) uses a photo, or None if it cannot.

    Capabilities say it: the Instant model lists `lookAlikeStyles` (styles with colour
    options); a diffusion model with `ipAdapter` keeps the face, any other starts from the
    photo (img2img); `"reference": false` turns it off for a model.
    """
    caps = model.capabilities or {}
    if caps.get("reference") is False:
        return None
    if model.provider == "dicebear":
        styles = caps.get("lookAlikeStyles") or []
        chosen = style or caps.get("defaultStyle")
        return "lookAlike" if chosen in styles else None
    if model.provider == "diffusers":
        return "ipAdapter" if caps.get("ipAdapter") else "img2img"
    return None


def default_likeness(model: AIModel, mode: str) -> float:
    caps = model.capabilities or {}
    return float(caps.get("defaultLikeness", DEFAULT_LIKENESS[mode]))


def capability(model: AIModel) -> dict[str, Any] | None:
    """What the model list and the form show: the mode, default likeness, styles that can."""
    caps = model.capabilities or {}
    if model.provider == "dicebear":
        styles = caps.get("lookAlikeStyles") or []
        if not styles or caps.get("reference") is False:
            return None
        return {
            "mode": "lookAlike",
            "defaultLikeness": default_likeness(model, "lookAlike"),
            "styles": styles,
        }
    mode = mode_for(model)
    if mode is None:
        return None
    return {"mode": mode, "defaultLikeness": default_likeness(model, mode)}
