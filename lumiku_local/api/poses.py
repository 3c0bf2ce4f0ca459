"""The Pose Generator's API: the pose library, pose imports, and pose generations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.datastructures import State, UploadFile
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody
from litestar.response import Response, Stream

from .. import exports, generations, pose_generations, poses
from ..models import Avatar
from . import blocking, in_thread, shapes
from .answers import change_errors, errors
from .generations import RetryBody
from .strict_input import Body

API = "/api/apps/pose-generator"
SmallInt = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]


class PoseGenerateBody(Body, rename="camel"):
    avatar_id: Annotated[str, msgspec.Meta(max_length=64, description="The avatar to pose.")]
    mode: Annotated[
        str, msgspec.Meta(description="gallery: poses from the library; text: a pose in words.")
    ] = "gallery"
    pose_ids: list[Annotated[str, msgspec.Meta(max_length=80)]] | None = None
    pose_prompt: str | None = None
    variations: SmallInt = 1
    model_key: str | None = None
    seed: SmallInt | None = None


class ExportBody(Body, rename="camel"):
    avatar_ids: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]],
        msgspec.Meta(min_length=1, max_length=1000, description="Live avatars to export."),
    ]


@dataclass
class PoseImportForm:
    file: UploadFile
    name: str | None = None
    category: str | None = None


@get(f"{API}/poses", tags=["poses"], responses=errors(422))
@blocking
def list_poses(
    category: FromQuery[str | None] = None, q: FromQuery[str | None] = None
) -> dict[str, Any]:
    """The pose library (and imported poses), by category and words in name or tags."""
    return {"poses": [shapes.pose(row) for row in pose_generations.library(category, q)]}


@get(f"{API}/poses/{{pose_id:str}}/skeleton.png", tags=["poses"], responses=errors(404, 422))
@blocking
def pose_skeleton(pose_id: FromPath[str], size: FromQuery[int] = 256) -> Response[bytes]:
    """The pose's OpenPose skeleton (the picture OpenPose ControlNets follow), size x size."""
    from .. import skeleton  # Pillow loads on first use: start-up stays fast

    pose = pose_generations.get_pose(pose_id)
    png = skeleton.png([tuple(point) for point in pose.keypoints], size)
    return Response(
        png,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600"},
    )


@post(
    f"{API}/poses/import",
    tags=["poses"],
    status_code=201,
    responses=change_errors(413, 422),
)
async def import_pose(state: State, data: MultipartBody[PoseImportForm]) -> dict[str, Any]:
    """A custom pose from an OpenPose JSON file (people[0].pose_keypoints_2d)."""
    content = await data.file.read(poses.MAX_IMPORT_BYTES + 1)
    pose = await in_thread(
        poses.import_pose, content, data.name or data.file.filename, data.category
    )
    return {"pose": shapes.pose(pose)}


@post(
    f"{API}/generate",
    tags=["pose generations"],
    status_code=202,
    responses=change_errors(402, 404, 409, 422),
)
@blocking
def generate(state: State, data: JSONBody[PoseGenerateBody]) -> dict[str, Any]:
    """Charge credits and queue the avatar in poses; progress arrives on /api/events."""
    request = pose_generations.PoseRequest(
        avatar_id=data.avatar_id,
        mode=data.mode,
        pose_ids=tuple(data.pose_ids or ()),
        pose_prompt=data.pose_prompt,
        variations=data.variations,
        model_key=data.model_key,
        seed=data.seed,
    )
    generation, balance = pose_generations.submit(state.runtime, request)
    return shapes.started(generation, balance, "Pose generation started")


@get(f"{API}/generations/{{generation_id:str}}", tags=["pose generations"], responses=errors(404))
@blocking
def get_pose_generation(generation_id: FromPath[str]) -> dict[str, Any]:
    return {"generation": shapes.generation(pose_generations.get_generation(generation_id))}


@post(
    f"{API}/generations/{{generation_id:str}}/cancel",
    tags=["pose generations"],
    status_code=200,
    responses=change_errors(404, 409),
)
@blocking
def cancel_pose_generation(state: State, generation_id: FromPath[str]) -> dict[str, Any]:
    """Stop it; the variations not delivered are refunded."""
    pose_generations.get_generation(generation_id)
    return {"generation": shapes.generation(generations.cancel(state.runtime, generation_id))}


@post(
    f"{API}/generations/{{generation_id:str}}/retry",
    tags=["pose generations"],
    status_code=202,
    responses=change_errors(402, 404, 409),
)
@blocking
def retry_pose_generation(
    state: State, generation_id: FromPath[str], data: JSONBody[RetryBody | None] = None
) -> dict[str, Any]:
    """A new pose generation with the same avatar and poses, and new seeds; with
    `{"only": "missing"}` just the undelivered variations, with their own seeds and poses,
    charged for those alone (409 when nothing is missing)."""
    original = pose_generations.get_generation(generation_id)
    if data is not None and data.only == "missing":
        generation, balance = generations.retry(state.runtime, original.id, only_missing=True)
    else:
        generation, balance = pose_generations.retry(state.runtime, original)
    return shapes.started(generation, balance, "Pose generation started")


@get(
    f"{API}/generations/{{generation_id:str}}/export",
    tags=["pose generations"],
    responses=errors(404),
    media_type="application/zip",
)
@blocking
def export_pose_generation(state: State, generation_id: FromPath[str]) -> Stream:
    """Its images as one zip, streamed: every PNG (with its parameters) and a manifest.json
    (pose, variation key, seed, model, prompt)."""
    generation = pose_generations.get_generation(generation_id)
    rows = (
        Avatar.select()
        .where((Avatar.generation == generation.id) & Avatar.deleted_at.is_null())
        .order_by(Avatar.created_at)
    )
    export = exports.plan(state.runtime.settings.files_dir, list(rows))
    return exports.response(export, f"poses-{generation.id[:8]}.zip")


@post(
    f"{API}/exports",
    tags=["pose generations"],
    status_code=200,
    responses=errors(404, 422),
    media_type="application/zip",
)
@blocking
def export_avatars(state: State, data: JSONBody[ExportBody]) -> Stream:
    """Chosen avatars as one zip, streamed: their PNGs (with parameters) and a manifest.json;
    an unknown or deleted id is a 404 naming it, and nothing is sent."""
    rows = exports.chosen(data.avatar_ids)
    export = exports.plan(state.runtime.settings.files_dir, rows)
    return exports.response(export, f"avatars-{len(rows)}.zip")


routes = [
    list_poses,
    pose_skeleton,
    import_pose,
    generate,
    get_pose_generation,
    cancel_pose_generation,
    retry_pose_generation,
    export_pose_generation,
    export_avatars,
]
