"""The pages a person sees: thin GET handlers that gather rows and render a template."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

import anyio.to_thread
from litestar import Response, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from peewee import fn

from .. import (
    avatars,
    catalog,
    credits,
    generations,
    hardware,
    names,
    projects,
    references,
    style_samples,
)
from ..api import blocking, shapes
from ..api.health import last_heartbeat
from ..db import tuples, utcnow
from ..engines import engine_for
from ..engines.dicebear import DiceBearEngine
from ..errors import NotFound
from ..generations import APP_ID, counts_by_status
from ..models import (
    AIModel,
    Avatar,
    AvatarGeneration,
    AvatarPreset,
    AvatarProject,
    CreditLedger,
    PersonaExample,
    Pose,
    User,
)
from . import cards, gallery, generate_form
from .exports import panel as export_panel

log = logging.getLogger("lumiku.web")
RECENT_GENERATIONS = 20
PROJECT_PAGE = 48  # cards per page: a multiple of the grid's 2, 3 and 4 columns
LEDGER_PAGE = 50
LEDGER_PROMPT_CHARACTERS = 70  # of a generation's prompt on the credits page


def _page(state: State, name: str, nav: str = "", **context: Any) -> Template:
    balance = User.get_by_id(state.runtime.user_id).credit_balance
    return Template(template_name=name, context={"balance": balance, "nav": nav, **context})


def _models(state: State) -> list[dict[str, Any]]:
    rows = AIModel.select().order_by(AIModel.sort_order, AIModel.key)
    return [shapes.ai_model(row, state.downloads) for row in rows]


@get("/", include_in_schema=False)
@blocking
def home(state: State) -> Template:
    """The welcome page until the first project exists, then the project list."""
    if not AvatarProject.select().where(AvatarProject.deleted_at.is_null()).exists():
        return _welcome(state)
    return _projects(state, None)


@get("/welcome", include_in_schema=False)
@blocking
def welcome(state: State) -> Template:
    return _welcome(state)


def _welcome(state: State) -> Template:
    instant = AIModel.get_or_none(AIModel.key == catalog.INSTANT_MODEL_KEY)
    return _page(state, "welcome.html", nav="welcome", instant=instant)


@get("/ui/recommendation", include_in_schema=False)
@blocking
def recommendation(state: State) -> Template:
    """Loaded after the welcome page: finding the GPU imports torch, which takes a second."""
    settings = state.runtime.settings
    facts = state.get("hardware")  # the device facts do not change while the app runs
    if facts is None:
        facts = state.hardware = hardware.report(settings.device, settings.hf_cache)
    models = list(AIModel.select().order_by(AIModel.sort_order))
    model, reason = hardware.recommend_model(facts, models)
    shaped = shapes.ai_model(model, state.downloads) if model else None
    return Template(
        template_name="_recommendation.html",
        context={"facts": facts, "model": shaped, "reason": reason},
    )


@get("/projects", include_in_schema=False)
@blocking
def project_list(state: State, deleted: FromQuery[str | None] = None) -> Template:
    return _projects(state, deleted)


def _projects(state: State, deleted: str | None) -> Template:
    return _page(
        state,
        "projects.html",
        nav="projects",
        **_project_cards(state, None),
        deleted_notice=_deleted_notice(deleted) if deleted else None,
    )


@get("/ui/projects/more", include_in_schema=False)
@blocking
def more_projects(state: State, cursor: FromQuery[str]) -> Template:
    """The next page of project cards, for the list's "Show more" button."""
    return Template(template_name="_project_cards.html", context=_project_cards(state, cursor))


def _project_cards(state: State, cursor: str | None) -> dict[str, Any]:
    """One page of the project list: a person with 500 projects gets them a page at a time."""
    page = projects.list_live(state.runtime, PROJECT_PAGE, cursor)
    covers = projects.cover_thumbnails([project.id for project, _ in page.projects])
    listing = [
        {**shapes.project(project, count), "cover": covers.get(project.id)}
        for project, count in page.projects
    ]
    return {"projects": listing, "next_cursor": page.next_cursor}


def _deleted_notice(project_id: str) -> dict[str, Any] | None:
    """What deleting a project did, read back from the database (never from the URL): the
    refunds of its generations recorded at or after its delete are the ones the delete caused
    (a generation canceled or failed before had its refund then)."""
    project = AvatarProject.get_or_none(AvatarProject.id == project_id)
    if project is None or project.deleted_at is None:
        return None
    refunded = (
        CreditLedger.select(fn.COALESCE(fn.SUM(CreditLedger.amount), 0))
        .join(AvatarGeneration, on=(CreditLedger.generation == AvatarGeneration.id))
        .where(
            (AvatarGeneration.project == project.id)
            & (CreditLedger.kind == "refund")
            & (CreditLedger.created_at >= project.deleted_at)
        )
        .scalar()
    )
    notice = f"Deleted “{project.name}”."
    if refunded:
        were = "credit was" if refunded == 1 else "credits were"
        notice += f" {refunded} {were} refunded for unfinished images."
    return {"id": project.id, "message": notice, "restorable": project.purged_at is None}


@get("/projects/{project_id:str}", include_in_schema=False)
@blocking
def project_page(
    state: State,
    project_id: FromPath[str],
    reference: FromQuery[str | None] = None,
    reuse: FromQuery[str | None] = None,
    deleted: FromQuery[str | None] = None,
) -> Template:
    """The project: its generate form (with `?reference=` an avatar chosen as its photo, with
    `?reuse=` filled with a generation's settings, or `avatar:<id>`'s), and the first page of
    its gallery (with `?deleted=` the avatar its page just deleted, to undo)."""
    project = generations.live_project(project_id)
    shown = gallery.page_context(project.id, deleted)
    recent = list(
        AvatarGeneration.select()
        .where(AvatarGeneration.project == project.id)
        .order_by(AvatarGeneration.created_at.desc())
        .limit(RECENT_GENERATIONS)
    )
    models = [model for model in _models(state) if model["enabled"]]
    instant = next((m for m in models if m["key"] == catalog.INSTANT_MODEL_KEY), None)
    styles = (instant or {}).get("capabilities", {}).get("styles", [])
    if instant is not None:  # a Generate may follow: its render processes start meanwhile
        engine = engine_for("dicebear")
        if isinstance(engine, DiceBearEngine):
            engine.warm_up_soon()
    default_style = (instant or {}).get("capabilities", {}).get("defaultStyle")
    form = generate_form.context(
        state.runtime.user_id, project.id, reuse, models, _default_model(models), default_style
    )
    reference = reference or form["form"]["reference"]
    return _page(
        state,
        "project.html",
        nav="projects",
        project=shapes.project(project, shown["avatar_total"]),
        **shown,
        generations=cards.cards(recent),
        models=models,
        chosen_model=form["form"]["model"],
        styles=styles,
        photo_styles=set(((instant or {}).get("reference") or {}).get("styles") or ()),
        sample_src=_sample_uris(tuple(styles)),
        default_style=form["form"]["style"],
        references=_reference_choices(state, project.id, reference),
        chosen_reference=reference,
        presets=[shapes.preset(p) for p in AvatarPreset.select().order_by(AvatarPreset.sort_order)],
        personas=[
            shapes.persona_example(p)
            for p in PersonaExample.select().order_by(PersonaExample.sort_order)
        ],
        max_count=generations.MAX_COUNT,
        max_upload_bytes=state.runtime.settings.max_upload_bytes,
        **form,
    )


def _reference_choices(state: State, project_id: str, chosen: str | None) -> list[dict[str, Any]]:
    """The photos the form offers as a reference, plus a generated avatar the link chose,
    each with the face square a generation from it will follow."""
    photos = [shapes.avatar(row) for row in projects.live_photos(project_id)]
    picked = (
        Avatar.get_or_none(
            (Avatar.id == chosen)
            & (Avatar.project == project_id)
            & Avatar.deleted_at.is_null()
            & (Avatar.source != "upload")
        )
        if chosen
        else None
    )
    choices = photos + [shapes.avatar(picked)] if picked else photos
    references.fill_face_boxes(state.runtime.settings.files_dir, choices)
    return choices


def _default_model(models: list[dict[str, Any]]) -> str | None:
    try:
        return generations.choose_model(None).key
    except Exception:  # nothing installed: the form says so and the picker shows why
        return next((m["key"] for m in models if m["installed"]), None)


@get("/generations/{generation_id:str}", include_in_schema=False)
@blocking
def generation_page(state: State, generation_id: FromPath[str]) -> Template:
    row = generations.get_generation(generation_id)
    project = AvatarProject.get_by_id(row.project_id)
    generation = cards.card(row)
    reference_id = (generation.get("reference") or {}).get("avatarId")
    model = AIModel.get_or_none(AIModel.key == row.model_id)
    preset_id = (row.options or {}).get("presetId")
    preset = AvatarPreset.get_or_none(AvatarPreset.id == preset_id) if preset_id else None
    return _page(
        state,
        "generation.html",
        nav="projects",
        generation=generation,
        model_name=model.name if model else row.model_id,
        preset_name=preset.name if preset else None,
        project=shapes.project(project),
        project_deleted=project.deleted_at is not None,
        reference_avatar_live=bool(reference_id)
        and Avatar.select()
        .where((Avatar.id == reference_id) & Avatar.deleted_at.is_null())
        .exists(),
    )


@get("/avatars/{avatar_id:str}", include_in_schema=False)
@blocking
def avatar_page(state: State, avatar_id: FromPath[str]) -> Template:
    avatar = avatars.get_live(avatar_id)
    project = generations.live_project(avatar.project_id)
    model = AIModel.get_or_none(AIModel.key == avatar.model_key) if avatar.model_key else None
    generation = (
        AvatarGeneration.get_or_none(AvatarGeneration.id == avatar.generation_id)
        if avatar.generation_id
        else None
    )
    return _page(
        state,
        "avatar.html",
        nav="projects",
        avatar=shapes.avatar(avatar),
        project=shapes.project(project),
        model_name=model.name if model else avatar.model_key,
        generation=generation,
        reusable=bool(avatar.prompt) and generation is not None and generation.app_id == APP_ID,
        negative_prompt=(generation.options or {}).get("negativePrompt") if generation else None,
        more=generations.more_like_cost(avatar.id)
        if avatar.source == "generated" and avatar.prompt
        else None,
        variation=names.variation_label(avatar.variation_key),
        file_name=names.avatar_file_name(
            project.name, avatar.name, avatar.variation_key, avatar.seed
        ),
        pose=Pose.get_or_none(Pose.id == avatar.pose_id) if avatar.pose_id else None,
        profile_export=export_panel(avatar, state.runtime.settings.files_dir),
    )


@get("/models", include_in_schema=False)
@blocking
def models_page(state: State) -> Template:
    from .. import hf_token

    return _page(state, "models.html", nav="models", models=_models(state), token=hf_token.status())


@get("/ui/models/{key:str}/row", include_in_schema=False)
@blocking
def model_row(state: State, key: FromPath[str]) -> Template:
    row = AIModel.get_or_none(AIModel.key == key)
    if row is None:
        raise NotFound(f"There is no model {key!r}.")
    return Template(
        template_name="_model.html", context={"model": shapes.ai_model(row, state.downloads)}
    )


@get("/credits", include_in_schema=False)
@blocking
def credits_page(state: State, page: FromQuery[int] = 1) -> Template:
    page_number = max(1, min(page, 1_000_000))
    query = CreditLedger.select().where(CreditLedger.user == state.runtime.user_id)
    total = query.count()
    pages = max(1, -(-total // LEDGER_PAGE))
    page_number = min(page_number, pages)
    entries = list(query.order_by(CreditLedger.id.desc()).paginate(page_number, LEDGER_PAGE))
    generation_ids = {entry.generation_id for entry in entries if entry.generation_id}
    about: dict[str, dict[str, Any]] = {
        generation_id: {
            "projectId": project_id,
            "projectName": project_name,
            "projectDeleted": deleted_at is not None,
            "prompt": names.shorten(prompt, LEDGER_PROMPT_CHARACTERS),
        }
        for generation_id, project_id, project_name, deleted_at, prompt in tuples(
            AvatarGeneration.select(
                AvatarGeneration.id,
                AvatarProject.id,
                AvatarProject.name,
                AvatarProject.deleted_at,
                AvatarGeneration.prompt,
            )
            .join(AvatarProject)
            .where(AvatarGeneration.id.in_(generation_ids))
        )
    }
    rows = []
    for entry in entries:
        row = {**shapes.ledger_entry(entry), **about.get(entry.generation_id or "", {})}
        # the badge says "Refund" already: "Refund: 3 of 8 images…" would say it twice
        row["description"] = (row["description"] or "").removeprefix("Refund: ")
        rows.append(row)
    return _page(
        state,
        "credits.html",
        nav="credits",
        entries=rows,
        page_number=page_number,
        pages=pages,
        total=total,
    )


def admin_status(state: State) -> dict[str, Any]:
    """Everything the admin page shows, read fresh (the page polls it)."""
    worker = state.job_queue.health()
    last_beat = last_heartbeat(state, worker)
    now = utcnow()
    failures = (
        AvatarGeneration.select()
        .where(AvatarGeneration.status == "failed")
        .order_by(AvatarGeneration.completed_at.desc())
        .limit(10)
    )
    refunds = (
        CreditLedger.select()
        .where(CreditLedger.kind == "refund")
        .order_by(CreditLedger.id.desc())
        .limit(10)
    )
    return {
        "worker": worker,
        "last_beat": last_beat,
        "beat_age": (dt.datetime.now(dt.UTC) - last_beat).total_seconds() if last_beat else None,
        "counts": counts_by_status(),
        "queued_tasks": state.job_queue.queue_length(),
        "completed_24h": AvatarGeneration.select()
        .where(
            (AvatarGeneration.status == "completed")
            & (AvatarGeneration.completed_at >= now - dt.timedelta(hours=24))
        )
        .count(),
        "failures": [shapes.generation(row, with_avatars=False) for row in failures],
        "refunds": [shapes.ledger_entry(row) for row in refunds],
        "refunded_total": credits.total_refunded(),
    }


@get("/admin", include_in_schema=False)
@blocking
def admin_page(state: State) -> Template:
    return _page(state, "admin.html", nav="admin", **admin_status(state))


@get("/ui/admin/status", include_in_schema=False)
@blocking
def admin_fragment(state: State) -> Template:
    return Template(template_name="_admin_status.html", context=admin_status(state))


@get("/ui/generations/{generation_id:str}/card", include_in_schema=False)
@blocking
def generation_card(generation_id: FromPath[str]) -> Template:
    generation = cards.card(generations.get_generation(generation_id))
    return Template(template_name="_generation.html", context={"generation": generation})


@get("/ui/generations/{generation_id:str}/avatars", include_in_schema=False)
@blocking
def generation_avatars(generation_id: FromPath[str]) -> Template:
    """The generation's delivered avatars as gallery tiles (the page adds the new ones)."""
    generation = shapes.generation(generations.get_generation(generation_id))
    return Template(template_name="_tiles.html", context={"avatars": generation["avatars"]})


@get("/ui/balance", include_in_schema=False)
@blocking
def balance_fragment(state: State) -> Template:
    balance = User.get_by_id(state.runtime.user_id).credit_balance
    return Template(template_name="_balance.html", context={"balance": balance})


@get("/ui/styles/{style:str}", include_in_schema=False)
async def style_sample(style: FromPath[str]) -> Response[bytes]:
    """A small sample of a DiceBear style for the style picker (same seed for every style)."""
    if style not in _styles():
        raise NotFound(f"There is no style {style!r}.")
    webp = _samples.get(style)
    if webp is None:  # read once; after that no thread and no disk
        webp = _samples[style] = await anyio.to_thread.run_sync(_style_webp, style)
    return Response(
        webp, media_type="image/webp", headers={"Cache-Control": "public, max-age=604800"}
    )


_samples: dict[str, bytes] = {}


@functools.lru_cache(maxsize=4)
def _sample_uris(styles: tuple[str, ...]) -> dict[str, str]:
    """The picker's samples inside the page (about 70 KB): 61 requests cost a cold browser
    on a busy machine more than a second, none cost nothing."""
    return {
        style: style_samples.data_uri(_samples.get(style) or _style_webp(style))
        for style in styles
        if style in _styles()
    }


@functools.cache
def _styles() -> frozenset[str]:
    return frozenset(catalog.dicebear_styles())


def _style_webp(style: str) -> bytes:
    """The sample made at build time; one missing (a newer dicebear-styles) is drawn once."""
    from ..app import assets_dir

    try:
        return (style_samples.folder(assets_dir()) / style_samples.file_name(style)).read_bytes()
    except FileNotFoundError:
        log.warning("no sample of style %s in assets; run build/render_style_samples.py", style)
    engine = engine_for("dicebear")
    assert isinstance(engine, DiceBearEngine)
    return engine.pool.run(style_samples.render, style)  # never on the server's GIL


routes = [
    home,
    welcome,
    recommendation,
    project_list,
    more_projects,
    project_page,
    generation_page,
    avatar_page,
    models_page,
    model_row,
    credits_page,
    admin_page,
    admin_fragment,
    generation_card,
    generation_avatars,
    balance_fragment,
    style_sample,
]
