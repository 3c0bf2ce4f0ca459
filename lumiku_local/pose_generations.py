"""The Pose Generator: an avatar in many poses, several variations each, on the shared lifecycle.

It describes *what* a batch makes (a plan of variations "{poseId}-v{n}" or "text-v{n}", each
with its seed and pose) and hands it to generations.create, which charges, queues, makes,
resumes and refunds it exactly as for the Avatar Creator.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from . import generations, pose_library, references
from .db import write_transaction
from .engines import Variation
from .errors import Conflict, InvalidInput, NotFound
from .models import TERMINAL_STATUSES, AIModel, Avatar, AvatarGeneration, Pose
from .runtime import Runtime

APP_ID = "pose-generator"
MODES = ("gallery", "text")
MAX_POSES = 12  # poses per gallery generation
MAX_GALLERY_VARIATIONS = 4
MAX_TEXT_VARIATIONS = 8
MAX_POSE_PROMPT = 500


@dataclass(frozen=True)
class PoseRequest:
    avatar_id: str
    mode: str = "gallery"
    pose_ids: tuple[str, ...] = ()
    pose_prompt: str | None = None
    variations: int = 1
    model_key: str | None = None
    seed: int | None = None


def poses_mode(model: AIModel) -> str | None:
    """How `model` draws a pose, or None: the Instant engine draws a body; diffusion models
    need an OpenPose ControlNet in their capabilities."""
    if model.provider == "dicebear":
        return "instant"
    if model.provider == "diffusers" and (model.capabilities or {}).get("controlNet"):
        return "controlnet"
    return None


def get_pose(pose_id: str) -> Pose:
    pose = Pose.get_or_none(Pose.id == pose_id)
    if pose is None or not pose.enabled:
        raise NotFound(f"There is no pose {pose_id!r}. See the pose library for valid ids.")
    return pose


def library(category: str | None = None, text: str | None = None) -> list[Pose]:
    """The enabled poses, in library order, of a category and matching words if given."""
    query = Pose.select().where(Pose.enabled == True)  # noqa: E712
    if category:
        if category not in pose_library.CATEGORIES:
            names = ", ".join(pose_library.CATEGORIES)
            raise InvalidInput(f"Unknown category {category!r}. Pick one of: {names}.")
        query = query.where(Pose.category == category)
    rows = list(query.order_by(Pose.sort_order, Pose.id))
    words = [word for word in (text or "").lower().split() if word]
    if not words:
        return rows
    return [row for row in rows if all(word in _searchable(row) for word in words)]


def _searchable(pose: Pose) -> str:
    return " ".join([pose.id, pose.name, pose.category, *pose.tags]).lower()


def _plan(request: PoseRequest, seed: int) -> tuple[list[Variation], dict[str, Any]]:
    """The variations and what the options record of how they were chosen."""
    if request.mode == "gallery":
        if not 1 <= request.variations <= MAX_GALLERY_VARIATIONS:
            raise InvalidInput(f"variations must be between 1 and {MAX_GALLERY_VARIATIONS}.")
        ids = list(dict.fromkeys(request.pose_ids))  # each pose once, in the order chosen
        if not 1 <= len(ids) <= MAX_POSES:
            raise InvalidInput(f"Choose between 1 and {MAX_POSES} poses (poseIds).")
        poses = [get_pose(pose_id) for pose_id in ids]
        plan = [
            Variation(
                key=f"{pose.id}-v{n}",
                seed=seed + index * request.variations + n,
                pose_id=pose.id,
                label=f"{pose.name} #{n + 1}",
            )
            for index, pose in enumerate(poses)
            for n in range(request.variations)
        ]
        return plan, {"poseIds": ids, "poseKeypoints": {p.id: p.keypoints for p in poses}}
    if not 1 <= request.variations <= MAX_TEXT_VARIATIONS:
        raise InvalidInput(f"variations must be between 1 and {MAX_TEXT_VARIATIONS}.")
    words = (request.pose_prompt or "").strip()
    if not words:
        raise InvalidInput("Describe the pose in posePrompt, or choose poses from the library.")
    if len(words) > MAX_POSE_PROMPT:
        raise InvalidInput(f"Keep the pose description under {MAX_POSE_PROMPT} characters.")
    matched, matched_words = pose_library.best_match(words)
    pose = get_pose(matched.id)
    plan = [
        Variation(key=f"text-v{n}", seed=seed + n, pose_id=pose.id, label=f"#{n + 1}")
        for n in range(request.variations)
    ]
    return plan, {
        "posePrompt": words,
        "matchedPoseId": pose.id,
        "matchedWords": matched_words,
        "poseKeypoints": {pose.id: pose.keypoints},
    }


def submit(
    runtime: Runtime, request: PoseRequest, retried_from: AvatarGeneration | None = None
) -> tuple[AvatarGeneration, int]:
    """Check, then charge and record the batch in one write transaction, then queue it."""
    if request.mode not in MODES:
        raise InvalidInput("mode must be gallery (poses from the library) or text (in words).")
    if request.seed is not None and not 0 <= request.seed <= generations.MAX_SEED - 1000:
        raise InvalidInput(f"seed must be between 0 and {generations.MAX_SEED - 1000}.")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31 - 1000)
    files_dir = runtime.settings.files_dir
    source = Avatar.get_or_none(Avatar.id == request.avatar_id)
    found = references.find_face(files_dir, source.id, source.project_id) if source else None
    with write_transaction(generations.user_key(runtime)):
        avatar = _source(request.avatar_id)
        project = generations.live_project(avatar.project_id)
        model = generations.choose_model(request.model_key)
        if poses_mode(model) is None:
            raise InvalidInput(
                f"{model.name} cannot draw poses. Use the Instant model, or a model with an "
                "OpenPose ControlNet.",
                code="model_cannot_pose",
            )
        plan, chosen = _plan(request, seed)
        caps = model.capabilities or {}
        options: dict[str, Any] = {
            "mode": request.mode,
            "variations": request.variations,
            "seed": seed,
            "width": caps.get("width", 512),
            "height": caps.get("height", 512),
            "sourceAvatarId": avatar.id,
            **chosen,
        }
        copy = references.copy_of(avatar, files_dir, None, found)
        _, reference = references.resolve(copy, model, None, mode="pose")
        base = avatar.prompt or avatar.name
        prompt = f"{base}, {options['posePrompt']}" if request.mode == "text" else base
        batch = generations.Batch(
            app_id=APP_ID,
            prompt=prompt,
            name=f"{avatar.name} in poses"[:200],
            options=options,
            plan=plan,
            reference=copy,
            reference_info=reference,
        )
        generation, balance = generations.create(runtime, project, model, batch, retried_from)
    generations.enqueue_new(runtime, generation)
    return generation, balance


def _source(avatar_id: str) -> Avatar:
    avatar = Avatar.get_or_none(Avatar.id == avatar_id)
    if avatar is None:
        raise NotFound("No avatar has that avatarId.")
    if avatar.deleted_at is not None:
        raise NotFound("That avatar was deleted. Choose another avatar to put in poses.")
    return avatar


def get_generation(generation_id: str) -> AvatarGeneration:
    generation = generations.get_generation(generation_id)
    if generation.app_id != APP_ID:
        raise NotFound("No pose generation has that id.")
    return generation


def retry(runtime: Runtime, original: AvatarGeneration) -> tuple[AvatarGeneration, int]:
    """A new pose generation with the same avatar, poses and model, and new seeds."""
    if original.status not in TERMINAL_STATUSES:
        raise Conflict("This generation is still running; cancel it first or wait for it.")
    options = original.options or {}
    request = PoseRequest(
        avatar_id=str(options.get("sourceAvatarId")),
        mode=str(options.get("mode", "gallery")),
        pose_ids=tuple(options.get("poseIds") or ()),
        pose_prompt=options.get("posePrompt"),
        variations=int(options.get("variations", 1)),
        model_key=original.model_id,
    )
    return submit(runtime, request, retried_from=original)


def cost(model_key: str | None, poses: int, variations: int) -> dict[str, Any]:
    """What a batch would cost, for the page before submit."""
    model = generations.choose_model(model_key)
    count = poses * variations
    return {"modelKey": model.key, "count": count, "credits": model.credit_cost * count}
