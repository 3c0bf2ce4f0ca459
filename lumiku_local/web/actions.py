"""What the pages' buttons and forms do: thin POST handlers answering with HTML fragments.

htmx sends the forms; each handler calls the same service as the JSON API and answers with the
fragment to swap in, plus a toast event saying what happened. Errors are rendered by the web
router's exception handlers (see web/__init__.py) into the form's own error slot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import post
from litestar.datastructures import State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, MultipartBody
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Template

from .. import avatars, generations, hf_token, projects, remote_consent
from ..api import blocking, in_thread, shapes
from ..catalog import REMOTE_PROVIDER
from ..db import utcnow
from ..errors import InvalidInput
from ..models import AIModel, AvatarGeneration, User
from . import cards
from .render import RETRY_AFTER

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
INT_LIMIT = 2**31 - 1


def _toast(message: str, kind: str = "success", key: str | None = None) -> dict[str, str]:
    """The HX-Trigger header that shows a toast. JSON with \\u escapes: header values are
    latin-1, and names and messages are not (curly quotes, emoji, U+202F in file names).
    `key`: what the toast is about, so the page can take it back when that changes."""
    toast: dict[str, str] = {"message": message, "kind": kind}
    if key:
        toast["key"] = key
    event = {"lumiku:toast": toast}
    return {"HX-Trigger": json.dumps(event, ensure_ascii=True)}


def fragment(name: str, context: dict[str, Any], headers: dict[str, str]) -> Template:
    return Template(template_name=name, context=context, headers=headers)


def _number(form: dict[str, str], name: str, label: str) -> int | None:
    """An optional whole number from a form field, or a clear error naming the field."""
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{label} must be a whole number.") from None
    if not -INT_LIMIT <= value <= INT_LIMIT:
        raise InvalidInput(f"{label} is far too large.")
    return value


def _balance(state: State) -> int:
    return User.get_by_id(state.runtime.user_id).credit_balance


# ---------------------------------------------------------------- projects


@post("/ui/projects", include_in_schema=False, status_code=200)
@blocking
def create_project(state: State, data: Form) -> ClientRedirect:
    project = projects.create(state.runtime, data.get("name", ""), data.get("description", ""))
    return ClientRedirect(f"/projects/{project.id}")


@post("/ui/projects/{project_id:str}/rename", include_in_schema=False, status_code=200)
@blocking
def rename_project(project_id: FromPath[str], data: Form) -> Template:
    project = projects.update(project_id, data.get("name", ""), None)
    return fragment(
        "_project_title.html",
        {"project": shapes.project(project), "renamed": True},  # the tab's title follows
        _toast(f"Renamed to “{project.name}”."),
    )


@post("/ui/projects/{project_id:str}/delete", include_in_schema=False, status_code=200)
@blocking
def delete_project(state: State, project_id: FromPath[str]) -> ClientRedirect:
    projects.delete(state.runtime, project_id)
    return ClientRedirect(f"/projects?deleted={project_id}")


@dataclass
class UploadForm:
    file: UploadFile


@post("/ui/projects/{project_id:str}/upload", include_in_schema=False, status_code=200)
async def upload(
    state: State, project_id: FromPath[str], data: MultipartBody[UploadForm]
) -> Template:
    filename = data.file.filename or "photo"
    if any(mark in filename for mark in ("/", "\\", "\x00")):
        raise InvalidInput("The file name must be a plain name, not a path.", code="bad_filename")
    content = await data.file.read()
    name = filename.rsplit(".", 1)[0][:120] or "Uploaded photo"
    avatar = await in_thread(avatars.upload, state.runtime, project_id, content, name)
    return fragment(
        "_uploaded.html", {"avatars": [shapes.avatar(avatar)]}, _toast(f"Uploaded {filename}.")
    )


# ---------------------------------------------------------------- generations


@post("/ui/projects/{project_id:str}/generate", include_in_schema=False, status_code=200)
@blocking
def generate(state: State, project_id: FromPath[str], data: Form) -> Template:
    size = _number(data, "size", "Size")
    model_key = data.get("model") or None
    model = AIModel.get_or_none(AIModel.key == model_key) if model_key else None
    takes_style = model is None or model.provider == "dicebear"
    reference = data.get("reference") or None
    likeness = _number(data, "likeness", "Likeness") if reference else None
    request = generations.GenerateRequest(
        prompt=data.get("prompt", ""),
        model_key=model_key,
        style=(data.get("style") or None) if takes_style else None,
        count=1 if (count := _number(data, "count", "Images")) is None else count,
        seed=_number(data, "seed", "Seed"),
        width=size,
        height=size,
        reference_avatar_id=reference,
        likeness=None if likeness is None else likeness / 100,  # the slider is in percent
        negative_prompt=None if takes_style else data.get("negativePrompt"),
    )
    if (
        model is not None
        and model.provider == REMOTE_PROVIDER
        and data.get("remoteConsent") == model.key
    ):
        # the page asked before this first remote generation (app.js): remember the yes
        remote_consent.give(state.runtime.user_id, model.key)
    generation, balance = generations.submit(state.runtime, project_id, request)
    spent = generation.credit_cost * generation.count
    return _new_card(
        generation,
        balance,
        f"Started {generation.count} avatar{'s' if generation.count > 1 else ''}: "
        f"{spent} credits, {balance} left.",
    )


def _new_card(generation: AvatarGeneration, balance: int, message: str) -> Template:
    headers = {**_toast(message), "HX-Retarget": "#generations", "HX-Reswap": "afterbegin"}
    return fragment(
        "_generation_oob.html",
        {"generation": cards.card(generation), "balance": balance},
        headers,
    )


@post("/ui/generations/{generation_id:str}/cancel", include_in_schema=False, status_code=200)
@blocking
def cancel(state: State, generation_id: FromPath[str]) -> Template:
    generation = cards.card(generations.cancel(state.runtime, generation_id))
    refunded = generation["creditRefunded"]
    return fragment(
        "_generation_oob.html",
        {"generation": generation, "balance": _balance(state)},
        _toast(f"Canceled. {refunded} credits refunded." if refunded else "Canceled."),
    )


@post("/ui/generations/{generation_id:str}/retry", include_in_schema=False, status_code=200)
@blocking
def retry(
    state: State, generation_id: FromPath[str], only: FromQuery[str | None] = None
) -> Template:
    """Retry a finished generation (`?only=missing`: just its undelivered images, with their
    own seeds); one still running after 10 minutes is canceled first."""
    original = generations.get_generation(generation_id)
    if original.status in ("pending", "processing"):
        if utcnow() - original.created_at < RETRY_AFTER:
            raise InvalidInput("This generation is still running; cancel it or let it finish.")
        generations.cancel(state.runtime, generation_id)
    missing = only == "missing"
    generation, balance = generations.retry(state.runtime, generation_id, only_missing=missing)
    count = generation.count
    words = f"the missing {count}" if missing else f"{count} new"
    return _new_card(generation, balance, f"Retrying: {words} image{'' if count == 1 else 's'}.")


@post("/ui/avatars/{avatar_id:str}/more", include_in_schema=False, status_code=200)
@blocking
def more_like_this(state: State, avatar_id: FromPath[str]) -> ClientRedirect:
    """A new generation with this avatar's prompt, model, style, size and reference."""
    generation, _ = generations.more_like(state.runtime, avatar_id)
    return ClientRedirect(f"/projects/{generation.project_id}#generation-{generation.id}")


@post("/ui/avatars/{avatar_id:str}/delete", include_in_schema=False, status_code=200)
@blocking
def delete_avatar(state: State, avatar_id: FromPath[str]) -> ClientRedirect:
    avatar = avatars.get_live(avatar_id)
    avatars.delete(state.runtime, avatar_id)
    # the project page says so, with an Undo (gallery.js), while the trash holds it
    return ClientRedirect(f"/projects/{avatar.project_id}?deleted={avatar.id}")


# ---------------------------------------------------------------- models and token


def _model_fragment(state: State, key: str, message: str, kind: str = "success") -> Template:
    model = AIModel.get_by_id(key)
    return fragment(
        "_model.html", {"model": shapes.ai_model(model, state.downloads)}, _toast(message, kind)
    )


@post("/ui/models/{key:str}/download", include_in_schema=False, status_code=200)
@blocking
def download_model(state: State, key: FromPath[str]) -> Template:
    state.downloads.start(key)
    model = shapes.ai_model(AIModel.get_by_id(key), state.downloads)
    # offline, it can fail before this answer: the row's error box is then the one message
    started = model["downloading"] or model["installed"]
    headers = (
        _toast("Download started. You can keep working meanwhile.", key=f"download:{key}")
        if started
        else {}
    )
    return fragment("_model.html", {"model": model}, headers)


@post("/ui/models/{key:str}/cancel", include_in_schema=False, status_code=200)
@blocking
def cancel_download(state: State, key: FromPath[str]) -> Template:
    state.downloads.cancel(key)
    return _model_fragment(state, key, "Download canceled. It resumes where it stopped.")


@post("/ui/models/{key:str}/delete", include_in_schema=False, status_code=200)
@blocking
def delete_model(state: State, key: FromPath[str]) -> Template:
    freed = state.downloads.remove_files(key)
    message = (
        f"Deleted the model files ({freed / 1e9:.1f} GB freed)."
        if freed
        else ("There were no downloaded files to delete.")
    )
    return _model_fragment(state, key, message)


@post("/ui/settings/hf-token", include_in_schema=False, status_code=200)
@blocking
def save_token(state: State, data: Form) -> Template:
    token = (data.get("token") or "").strip()
    if not token:
        raise InvalidInput("Paste your Hugging Face access token (it starts with hf_).")
    hf_token.save(token, endpoint=state.runtime.settings.hf_endpoint or None)
    return fragment(
        "_token.html",
        {"token": hf_token.status(), "remote_models": _remote_models(state)},
        _toast("Token saved. Gated models can now be downloaded and remote models used."),
    )


@post("/ui/settings/hf-token/delete", include_in_schema=False, status_code=200)
@blocking
def remove_token(state: State) -> Template:
    hf_token.remove()
    return fragment(
        "_token.html",
        {"token": hf_token.status(), "remote_models": _remote_models(state)},
        _toast("Token removed."),
    )


def _remote_models(state: State) -> list[dict[str, Any]]:
    """The remote models' rows, as the token makes them now (swapped in out of band)."""
    rows = AIModel.select().where(AIModel.provider == REMOTE_PROVIDER).order_by(AIModel.sort_order)
    return [shapes.ai_model(row, state.downloads) for row in rows]


routes = [
    create_project,
    rename_project,
    delete_project,
    upload,
    generate,
    cancel,
    retry,
    more_like_this,
    delete_avatar,
    download_model,
    cancel_download,
    delete_model,
    save_token,
    remove_token,
]
