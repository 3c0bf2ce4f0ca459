"""The queue page (what runs and waits across projects and apps) and the trash page (deleted
projects and avatars, restorable until it is emptied), with their buttons' actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.plugins.htmx import ClientRedirect
from litestar.response import File, Template

from .. import avatars, credits, lineup, projects, trash
from ..api import blocking
from ..api import queue as queue_api
from ..api.avatars import CACHE
from ..db import utcnow
from ..errors import NotFound
from ..models import AIModel, Avatar, AvatarProject
from .actions import Form, fragment
from .actions import _toast as toast

APPS = {"avatar-creator": "Avatar Creator", "pose-generator": "Pose Generator"}


def _page(state: State, name: str, nav: str, **context: Any) -> Template:
    balance = credits.balance(state.runtime.user_id)
    return Template(template_name=name, context={"balance": balance, "nav": nav, **context})


# ---------------------------------------------------------------- the queue


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st."""
    teen = 10 <= number % 100 <= 20
    suffix = "th" if teen else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _lineup(state: State) -> dict[str, Any]:
    snapshot = lineup.snapshot(state.runtime, state.job_queue.pickup_order())
    shaped = queue_api.shape(snapshot)
    entries = shaped["running"] + shaped["waiting"]
    keys = {entry["modelKey"] for entry in entries}
    model_names = {
        model.key: model.name
        for model in AIModel.select(AIModel.key, AIModel.name).where(AIModel.key.in_(keys))
    }
    for entry in entries:
        entry["appName"] = APPS.get(entry["appId"], entry["appId"])
        entry["modelName"] = model_names.get(entry["modelKey"], entry["modelKey"])
    for entry in shaped["waiting"]:
        entry["inLine"] = f"{ordinal(entry['position'])} in line"
    count = len(shaped["running"]) + len(shaped["waiting"])
    return {"line": shaped, "unfinished": count, "workers": state.runtime.settings.workers}


@get("/queue", include_in_schema=False)
@blocking
def queue_page(state: State) -> Template:
    return _page(state, "queue.html", "queue", **_lineup(state))


@get("/ui/queue/live", include_in_schema=False)
@blocking
def queue_live(state: State) -> Template:
    """The running and waiting lists, fetched again by queue.js when an event changes them."""
    return Template(template_name="_queue_live.html", context=_lineup(state))


@post("/ui/queue/cancel", include_in_schema=False, status_code=200)
@blocking
def cancel_queued(state: State, data: Form) -> Template:
    """Cancel one generation (the form's `generation`) or, without one, everything unfinished."""
    generation_id = (data.get("generation") or "").strip()
    result = lineup.cancel(state.runtime, [generation_id] if generation_id else None)
    count = len(result.generations)
    if generation_id and count:
        message = "Canceled."
    elif count:
        message = f"Canceled {count} generation{'' if count == 1 else 's'}."
    else:
        message = "Nothing was left to cancel."
    if result.refunded:
        message += f" {result.refunded} credit{'' if result.refunded == 1 else 's'} refunded."
    context = {**_lineup(state), "balance": credits.balance(state.runtime.user_id), "oob": True}
    return fragment("_queue_live.html", context, toast(message))


# ---------------------------------------------------------------- the trash


def _empties_in(moment: str | None) -> str:
    if not moment:
        return ""
    left = dt.datetime.fromisoformat(moment.replace("Z", "")) - utcnow()
    days = left.total_seconds() / 86400
    if days < 1:
        hours = max(round(left.total_seconds() / 3600), 1)
        return f"kept {hours} more hour{'' if hours == 1 else 's'}"
    whole = round(days)
    return f"kept {whole} more day{'' if whole == 1 else 's'}"


def _trash(state: State) -> dict[str, Any]:
    held = trash.contents(state.runtime)
    deleted_at = {
        project.id: project.deleted_at
        for project in AvatarProject.select(AvatarProject.id, AvatarProject.deleted_at).where(
            AvatarProject.id.in_([project["id"] for project in held["projects"]])
        )
    }
    for project in held["projects"]:
        project["emptiesIn"] = _empties_in(project.get("emptiedAfter"))
        # a few of the avatars that went with it (the trash lists a handful of projects)
        project["thumbnails"] = [
            row.id
            for row in Avatar.select(Avatar.id)
            .where(
                (Avatar.project == project["id"])
                & (Avatar.deleted_at == deleted_at[project["id"]])
                & Avatar.purged_at.is_null()
            )
            .order_by(Avatar.created_at.desc())
            .limit(3)
        ]
    names = {
        project.id: project.name
        for project in AvatarProject.select(AvatarProject.id, AvatarProject.name).where(
            AvatarProject.id.in_({avatar["projectId"] for avatar in held["avatars"]})
        )
    }
    for avatar in held["avatars"]:
        avatar["emptiesIn"] = _empties_in(avatar.get("emptiedAfter"))
        avatar["projectName"] = names.get(avatar["projectId"], "")
    held["keepWords"] = _keep_words(float(held["keepDays"]))
    return {"trash": held}


def _keep_words(days: float) -> str:
    if days == 0:
        return "until Lumiku next starts"
    if days < 1:
        hours = max(round(days * 24), 1)
        return f"for {hours} hour{'' if hours == 1 else 's'}"
    whole = round(days)
    return f"for {whole} day{'' if whole == 1 else 's'}"


@get("/trash", include_in_schema=False)
@blocking
def trash_page(state: State) -> Template:
    return _page(state, "trash.html", "trash", **_trash(state))


def _trash_fragment(state: State, message: str) -> Template:
    return fragment("_trash_contents.html", _trash(state), toast(message))


@post("/ui/trash/avatars/{avatar_id:str}/restore", include_in_schema=False, status_code=200)
@blocking
def restore_avatar(state: State, avatar_id: FromPath[str]) -> Template:
    avatar = avatars.restore(state.runtime, avatar_id)
    project = AvatarProject.get_by_id(avatar.project_id)
    return _trash_fragment(state, f"Restored “{avatar.name}” to “{project.name}”.")


@post("/ui/trash/projects/{project_id:str}/restore", include_in_schema=False, status_code=200)
@blocking
def restore_project(state: State, project_id: FromPath[str]) -> Template:
    project = projects.restore(state.runtime, project_id)
    return _trash_fragment(state, f"Restored “{project.name}”.")


@post("/ui/projects/{project_id:str}/restore", include_in_schema=False, status_code=200)
@blocking
def undo_project_delete(state: State, project_id: FromPath[str]) -> ClientRedirect:
    """The Undo of the projects page's notice: the project is back, and opens."""
    project = projects.restore(state.runtime, project_id)
    return ClientRedirect(f"/projects/{project.id}")


@post("/ui/trash/empty", include_in_schema=False, status_code=200)
@blocking
def empty_trash(state: State) -> Template:
    emptied = trash.empty(state.runtime)
    parts = []
    if emptied.projects:
        parts.append(f"{emptied.projects} project{'' if emptied.projects == 1 else 's'}")
    if emptied.avatars:
        parts.append(f"{emptied.avatars} avatar{'' if emptied.avatars == 1 else 's'}")
    message = (
        f"Emptied the trash: {' and '.join(parts)} deleted for good."
        if parts
        else "The trash was already empty."
    )
    return _trash_fragment(state, message)


@get("/ui/trash/avatars/{avatar_id:str}/thumbnail", include_in_schema=False)
@blocking
def trashed_thumbnail(state: State, avatar_id: FromPath[str]) -> File:
    """A deleted avatar's thumbnail while the trash holds it (the API's answers 404: deleted)."""
    avatar = Avatar.get_or_none(Avatar.id == avatar_id)
    if avatar is None or avatar.deleted_at is None or avatar.purged_at is not None:
        raise NotFound("The trash holds no avatar with that id.")
    path = avatars.path_of(state.runtime, avatar, thumbnail=True)
    return File(path, media_type="image/webp", content_disposition_type="inline", headers=CACHE)


routes = [
    queue_page,
    queue_live,
    cancel_queued,
    trash_page,
    restore_avatar,
    restore_project,
    undo_project_delete,
    empty_trash,
    trashed_thumbnail,
]
