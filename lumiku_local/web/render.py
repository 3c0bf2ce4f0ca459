"""The Jinja environment the pages render with: templates, filters and the error fragments."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from markupsafe import Markup, escape

from .. import __version__

TEMPLATES = Path(__file__).resolve().parent / "templates"
WARN_AFTER = dt.timedelta(minutes=5)  # the original system's rules for a slow generation
RETRY_AFTER = dt.timedelta(minutes=10)


def icon(name: str, label: str | None = None) -> Markup:
    """An icon from the vendored sprite; decorative unless it is given a label."""
    aria = f'role="img" aria-label="{escape(label)}"' if label else 'aria-hidden="true"'
    return Markup(
        f'<svg class="icon" {aria} focusable="false">'
        f'<use href="/assets/icons.svg?v={__version__}#i-{name}"></use></svg>'
    )


def asset(path: str) -> str:
    return f"/assets/{path}?v={__version__}"


def _parse(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def ago(value: str | dt.datetime | None) -> str:
    """'just now', '5 minutes ago', '3 days ago': how long ago a UTC time was."""
    moment = _parse(value)
    if moment is None:
        return "never"
    seconds = (dt.datetime.now(dt.UTC) - moment).total_seconds()
    if seconds < 45:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return f"{round(seconds)} seconds ago"


def when(value: str | dt.datetime | None) -> str:
    """An exact UTC time for a tooltip or a <time datetime>."""
    moment = _parse(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def size(value: int | float | None) -> str:
    number = float(value or 0)
    for unit in ("bytes", "KB", "MB", "GB"):
        if number < 1000 or unit == "GB":
            return f"{number:.0f} {unit}" if unit in ("bytes", "KB") else f"{number:.1f} {unit}"
        number /= 1000
    return f"{number:.1f} GB"


def style_name(style: str | None) -> str:
    """A DiceBear style as people read it: "adventurer-neutral" -> "Adventurer Neutral"."""
    return " ".join(word.capitalize() for word in (style or "").split("-"))


def age_flags(generation: dict[str, Any]) -> dict[str, bool]:
    """Whether an unfinished generation is slow enough for a warning, or for a retry."""
    if generation["status"] not in ("pending", "processing"):
        return {"warn": False, "offer_retry": False}
    created = _parse(generation["createdAt"])
    age = dt.datetime.now(dt.UTC) - created if created else dt.timedelta(0)
    return {"warn": age >= WARN_AFTER, "offer_retry": age >= RETRY_AFTER}


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        icon=icon,
        asset=asset,
        version=__version__,
        age_flags=age_flags,
        warn_after_s=int(WARN_AFTER.total_seconds()),
        retry_after_s=int(RETRY_AFTER.total_seconds()),
    )
    env.filters.update(ago=ago, when=when, size=size, style_name=style_name)
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment()))


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
