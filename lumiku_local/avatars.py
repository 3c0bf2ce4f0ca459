"""Avatars: uploads, reads and deletes (generated ones are made by the generations module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import face_box as boxes
from . import file_deletions, storage
from .db import utcnow, write_transaction
from .engines.base import FaceBox
from .errors import InvalidInput, NotFound
from .generations import live_project
from .models import Avatar, AvatarProject, AvatarUsageHistory
from .projects import avatar_files
from .runtime import Runtime

MAX_NAME = 120


def get_live(avatar_id: str) -> Avatar:
    avatar = Avatar.get_or_none(Avatar.id == avatar_id)
    if avatar is None:
        raise NotFound("No avatar has that id.")
    if avatar.deleted_at is not None:
        raise NotFound("That avatar was deleted.")
    return avatar


def upload(runtime: Runtime, project_id: str, content: bytes, name: str | None) -> Avatar:
    """Validate, re-encode and store an uploaded image; nothing is written if it is refused."""
    settings = runtime.settings
    live_project(project_id)
    name = (name or "").strip() or "Uploaded photo"
    if len(name) > MAX_NAME:
        raise InvalidInput(f"Keep the avatar name under {MAX_NAME} characters.")
    png, image = storage.decode_upload(
        content, settings.max_upload_bytes, settings.max_image_pixels
    )
    box = boxes.detect(image)  # before prepare_png, which may shrink `image` in place
    prepared = storage.prepare_png(png, image)
    stored = storage.write(settings.files_dir, prepared)
    with write_transaction():
        # a project deleted meanwhile raises NotFound; the file just written is then left to
        # the start-up sweep (quarantined, never a row without its file)
        project = live_project(project_id)
        storage.write(settings.files_dir, prepared)  # see storage.write
        avatar = record_upload(
            runtime.user_id, project, name, stored, "upload", {"bytes": len(content)}, box
        )
    return avatar


def record_upload(
    user_id: int,
    project: AvatarProject,
    name: str,
    stored: storage.StoredImage,
    action: str,
    details: dict[str, object],
    box: FaceBox | None = None,
) -> Avatar:
    """The rows of an uploaded image whose files are written; call in a write transaction."""
    avatar = Avatar.create(
        user=user_id,
        project=project,
        name=name,
        source="upload",
        image_file=stored.image_file,
        thumbnail_file=stored.thumbnail_file,
        width=stored.width,
        height=stored.height,
        file_size=stored.file_size,
        face_box=boxes.as_json(box) if box else None,
    )
    AvatarUsageHistory.create(
        user=user_id, project=project, avatar=avatar, action=action, details=details
    )
    AvatarProject.update(updated_at=utcnow()).where(AvatarProject.id == project.id).execute()
    return avatar


def update(
    runtime: Runtime,
    avatar_id: str,
    face_box: dict[str, Any] | None = None,
    name: str | None = None,
) -> Avatar:
    """Rename an avatar or set its face square (the user's, on the photo); 422 changes nothing.

    Generations already submitted keep the square they copied."""
    with write_transaction():
        avatar = get_live(avatar_id)
        changed = []
        if name is not None:
            name = name.strip()
            if not name or len(name) > MAX_NAME:
                raise InvalidInput(f"Give the avatar a name of 1 to {MAX_NAME} characters.")
            avatar.name = name
            changed.append(Avatar.name)
        if face_box is not None:
            box = boxes.from_user(face_box, avatar.width, avatar.height)
            avatar.face_box = boxes.as_json(box)
            changed.append(Avatar.face_box)
        if changed:
            avatar.save(only=changed)
    return avatar


def file_path(runtime: Runtime, avatar_id: str, thumbnail: bool) -> Path:
    avatar = get_live(avatar_id)
    name = avatar.thumbnail_file if thumbnail else avatar.image_file
    path = storage.resolve(runtime.settings.files_dir, name)
    if not path.is_file():
        raise NotFound("The image file is missing from the data folder; run `lumiku doctor`.")
    return path


def delete(runtime: Runtime, avatar_id: str) -> None:
    """Soft-delete the row (it still counts as delivered), then remove its files once that has
    committed."""
    with write_transaction():
        avatar = get_live(avatar_id)
        avatar.deleted_at = utcnow()
        avatar.save(only=[Avatar.deleted_at])
        AvatarUsageHistory.create(
            user=avatar.user_id,
            project=avatar.project_id,
            avatar=avatar,
            action="delete",
        )
        file_deletions.record([avatar_files(avatar)])
    file_deletions.carry_out_quietly(runtime.settings.files_dir)
