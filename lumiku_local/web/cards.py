"""What a generation card shows: the API's shape of a generation, plus, for the Pose
Generator, its images grouped by pose under the pose's name."""

from __future__ import annotations

from typing import Any

from ..api import shapes
from ..db import tuples
from ..models import AvatarGeneration, AvatarProject, Pose
from ..pose_generations import APP_ID as POSES_APP


def card(row: AvatarGeneration) -> dict[str, Any]:
    return with_project_state(with_poses([shapes.generation(row)]))[0]


def cards(rows: list[AvatarGeneration]) -> list[dict[str, Any]]:
    return with_project_state(with_poses(shapes.generations_of(rows)))


def with_project_state(generations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds `projectDeleted`: a card of a deleted project offers no retry (it cannot work)."""
    ids = sorted({g["projectId"] for g in generations})
    deleted = {
        project_id
        for (project_id,) in tuples(
            AvatarProject.select(AvatarProject.id).where(
                AvatarProject.id.in_(ids) & AvatarProject.deleted_at.is_null(False)
            )
        )
    }
    for generation in generations:
        generation["projectDeleted"] = generation["projectId"] in deleted
    return generations


def with_poses(generations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds `poseGroups` (pose id, name, expected variations, delivered avatars, in the order
    the poses were chosen) to the pose generations, with one query for all their pose names."""
    posed = [g for g in generations if g.get("appId") == POSES_APP]
    ids = {pose_id for g in posed for pose_id in _pose_ids(g)}
    names: dict[str, str] = (
        {
            str(pose_id): str(name)
            for pose_id, name in tuples(Pose.select(Pose.id, Pose.name).where(Pose.id.in_(ids)))
        }
        if ids
        else {}
    )
    for generation in posed:
        options = generation.get("options") or {}
        pose_ids = _pose_ids(generation)
        each = int(options.get("variations") or 1) if options.get("mode") != "text" else 0
        groups = []
        for pose_id in pose_ids:
            delivered = [a for a in generation.get("avatars") or () if a["poseId"] == pose_id]
            expected = each or generation["countRequested"]
            groups.append(
                {
                    "poseId": pose_id,
                    "name": names.get(pose_id, pose_id),
                    "expected": expected,
                    "avatars": delivered,
                }
            )
        generation["poseGroups"] = groups
        if options.get("matchedPoseId"):
            generation["matchedPoseName"] = names.get(options["matchedPoseId"])
    return generations


def _pose_ids(generation: dict[str, Any]) -> list[str]:
    options = generation.get("options") or {}
    if options.get("mode") == "text":
        return [options["matchedPoseId"]] if options.get("matchedPoseId") else []
    return list(options.get("poseIds") or ())
