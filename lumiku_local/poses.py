"""Custom poses: OpenPose JSON files imported into the library (the library itself is data:
pose_library.py, seeded by migration m011)."""

from __future__ import annotations

import hashlib

from . import pose_library
from .db import write_transaction
from .errors import InvalidInput
from .models import Pose

MAX_IMPORT_BYTES = pose_library.MAX_IMPORT_BYTES
MAX_NAME = 80
IMPORT_ORDER = 10_000  # imported poses list after the library's


def import_pose(content: bytes, name: str | None, category: str | None) -> Pose:
    """Validate and store an OpenPose file's pose; a bad file is a 4xx and writes nothing.
    The same keypoints imported twice are one pose."""
    keypoints = pose_library.parse_openpose(content, MAX_IMPORT_BYTES)
    title = (name or "").strip().removesuffix(".json").strip() or "Imported pose"
    if len(title) > MAX_NAME:
        raise InvalidInput(f"Keep the pose name under {MAX_NAME} characters.")
    category = category or "standing"
    if category not in pose_library.CATEGORIES:
        names = ", ".join(pose_library.CATEGORIES)
        raise InvalidInput(f"Unknown category {category!r}. Pick one of: {names}.")
    points = [[round(x, 4), round(y, 4), int(visible)] for x, y, visible in keypoints]
    digest = hashlib.sha256(repr(points).encode()).hexdigest()[:12]
    pose_id = f"custom-{digest}"
    with write_transaction():
        Pose.insert(
            id=pose_id,
            name=title,
            category=category,
            tags=["imported"],
            keypoints=points,
            source="import",
            sort_order=IMPORT_ORDER,
        ).on_conflict_ignore().execute()
        return Pose.get_by_id(pose_id)
