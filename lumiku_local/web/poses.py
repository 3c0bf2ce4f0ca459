"""The Pose Generator's pages: the pose library, an avatar put in poses, and their actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import get, post
from litestar.datastructures import State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, MultipartBody
from litestar.response import Template

from .. import avatars, catalog, generations, pose_generations, pose_library, poses
from ..api import blocking, in_thread, shapes
from ..models import AIModel, Avatar, AvatarGeneration, AvatarProject
from . import actions, cards
from .pages import _page

# a form with a field given more than once (the chosen poses) has a list there
PoseForm = Annotated[dict[str, str | list[str]], Body(media_type=RequestEncodingType.URL_ENCODED)]
RECENT_GENERATIONS = 20
SOURCE_CHOICES = 24  # recent avatars offered when the page is opened without one


@get("/poses", include_in_schema=False)
@blocking
def poses_page(
    state: State,
    avatar: FromQuery[str | None] = None,
    category: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
) -> Template:
    """The pose library; with `?avatar=` the form that puts that avatar in the chosen poses.
    `category` and `q` filter on the server for a browser without scripts (app.js filters
    as one types)."""
    library = [shapes.pose(row) for row in pose_generations.library(category or None, q or None)]
    context: dict[str, Any] = {
        "poses": library,
        "categories": pose_library.CATEGORIES,
        "category": category or "",
        "q": q or "",
        "source": None,
    }
    if avatar:
        context.update(_choosing(state, avatar))
    else:
        context["choices"] = _recent_avatars()
    return _page(state, "poses.html", nav="poses", **context)


def _choosing(state: State, avatar_id: str) -> dict[str, Any]:
    source = avatars.get_live(avatar_id)
    project = generations.live_project(source.project_id)
    rows = AIModel.select().where(AIModel.enabled == True)  # noqa: E712
    models = [
        shapes.ai_model(row, state.downloads)
        for row in rows.order_by(AIModel.sort_order, AIModel.key)
        if pose_generations.poses_mode(row) is not None
    ]
    installed = [m["key"] for m in models if m["installed"]]
    chosen = catalog.INSTANT_MODEL_KEY if catalog.INSTANT_MODEL_KEY in installed else None
    recent = list(
        AvatarGeneration.select()
        .where(
            (AvatarGeneration.project == project.id)
            & (AvatarGeneration.app_id == pose_generations.APP_ID)
        )
        .order_by(AvatarGeneration.created_at.desc())
        .limit(RECENT_GENERATIONS)
    )
    return {
        "source": shapes.avatar(source),
        "project": shapes.project(project),
        "models": models,
        "chosen_model": chosen or (installed[0] if installed else None),
        "generations": cards.cards(recent),
        "max_poses": pose_generations.MAX_POSES,
        "max_gallery": pose_generations.MAX_GALLERY_VARIATIONS,
        "max_text": pose_generations.MAX_TEXT_VARIATIONS,
        "max_prompt": pose_generations.MAX_POSE_PROMPT,
    }


def _recent_avatars() -> list[dict[str, Any]]:
    rows = (
        Avatar.select()
        .join(AvatarProject)
        .where(Avatar.deleted_at.is_null() & AvatarProject.deleted_at.is_null())
        .order_by(Avatar.created_at.desc())
        .limit(SOURCE_CHOICES)
    )
    return [shapes.avatar(row) for row in rows]


@post("/ui/poses/generate", include_in_schema=False, status_code=200)
@blocking
def generate(state: State, data: PoseForm) -> Template:
    """The avatar in the chosen poses (or in a pose described in words): charged and queued
    by pose_generations.submit, answered with its live card."""
    fields = {key: value for key, value in data.items() if isinstance(value, str)}
    mode = fields.get("mode") or "gallery"
    chosen = data.get("poseIds") or []
    pose_ids = [chosen] if isinstance(chosen, str) else list(chosen)
    variations = actions._number(fields, "variations", "Variations")
    request = pose_generations.PoseRequest(
        avatar_id=fields.get("avatar", ""),
        mode=mode,
        pose_ids=tuple(pose_ids) if mode == "gallery" else (),
        pose_prompt=fields.get("posePrompt") if mode == "text" else None,
        variations=1 if variations is None else variations,
        model_key=fields.get("model") or None,
        seed=actions._number(fields, "seed", "Seed"),
    )
    generation, balance = pose_generations.submit(state.runtime, request)
    spent = generation.credit_cost * generation.count
    return actions._new_card(
        generation,
        balance,
        f"Started {generation.count} image{'s' if generation.count > 1 else ''} in poses: "
        f"{spent} credits, {balance} left.",
    )


@dataclass
class ImportForm:
    file: UploadFile
    name: str | None = None
    category: str | None = None
    choosing: str | None = None


@post("/ui/poses/import", include_in_schema=False, status_code=200)
async def import_pose(data: MultipartBody[ImportForm]) -> Template:
    """A custom pose from an OpenPose JSON file, answered with its library tile."""
    content = await data.file.read(poses.MAX_IMPORT_BYTES + 1)
    name = (data.name or "").strip() or data.file.filename
    pose = await in_thread(poses.import_pose, content, name, data.category or None)
    return actions.fragment(
        "_pose_tiles.html",
        {"poses": [shapes.pose(pose)], "choosing": bool(data.choosing)},
        {
            **actions._toast(f"Imported “{pose.name}”. It is at the end of the library."),
            "HX-Retarget": "#pose-grid",
            "HX-Reswap": "beforeend",
        },
    )


routes = [poses_page, generate, import_pose]
