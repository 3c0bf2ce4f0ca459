"""Avatars: uploads, reads and deletes (generated ones are made by the generations module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import face_box as boxes
from . import storage
from .db import utcnow, write_transaction
from .engines.base import FaceBox
from .errors import Conflict, InvalidInput, NotFound
from .generations import live_project
from .models import Avatar, AvatarProject, AvatarUsageHistory
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
    favorite: bool | None = None,
) -> Avatar:
    """Rename an avatar, mark it a favourite or set its face square (the user's, on the photo);
    422 changes nothing. Generations already submitted keep the square they copied."""
    with write_transaction():
        avatar = get_live(avatar_id)
        changed: list[Any] = []
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
        if favorite is not None:
            avatar.favorite = favorite
            changed.append(Avatar.favorite)
        if changed:
            avatar.save(only=changed)
    return avatar


def file_path(runtime: Runtime, avatar_id: str, thumbnail: bool) -> Path:
    return path_of(runtime, get_live(avatar_id), thumbnail)


def path_of(runtime: Runtime, avatar: Avatar, thumbnail: bool) -> Path:
    """Where the avatar's image (or thumbnail) is; 404 when the file is missing."""
    name = avatar.thumbnail_file if thumbnail else avatar.image_file
    path = storage.resolve(runtime.settings.files_dir, name)
    if not path.is_file():
        raise NotFound("The image file is missing from the data folder; run `lumiku doctor`.")
    return path


MAX_IDS = 1000  # avatars one bulk delete or restore names


def delete(runtime: Runtime, avatar_id: str) -> None:
    """Move the avatar to the trash: the row (still counted as delivered) and its files stay
    until the trash is emptied, so a delete can be undone (`restore`)."""
    delete_many(runtime, [avatar_id])


def delete_many(runtime: Runtime, avatar_ids: list[str]) -> int:
    """Move these live avatars to the trash in one transaction; 404 naming any that is unknown
    or already deleted, and then nothing changes."""
    wanted = _checked_ids(avatar_ids)
    with write_transaction():
        rows = _rows(wanted)
        if gone := [i for i in wanted if i not in rows or rows[i].deleted_at is not None]:
            raise NotFound(_naming("No live avatar has the id", gone), code="avatar_not_found")
        now = utcnow()
        Avatar.update(deleted_at=now).where(Avatar.id.in_(wanted)).execute()
        _record_history(rows, wanted, "delete")
    return len(wanted)


def restore(runtime: Runtime, avatar_id: str) -> Avatar:
    """Take the avatar out of the trash; 409 when it is not there (live, or emptied)."""
    restore_many(runtime, [avatar_id])
    return Avatar.get_by_id(avatar_id)


def restore_many(runtime: Runtime, avatar_ids: list[str]) -> int:
    """Take these avatars out of the trash in one transaction (all or none)."""
    wanted = _checked_ids(avatar_ids)
    with write_transaction():
        rows = _rows(wanted)
        if unknown := [i for i in wanted if i not in rows]:
            raise NotFound(_naming("No avatar has the id", unknown), code="avatar_not_found")
        if purged := [i for i in wanted if rows[i].purged_at is not None]:
            raise Conflict(
                _naming("The trash was emptied; it no longer holds", purged), code="not_in_trash"
            )
        if live := [i for i in wanted if rows[i].deleted_at is None]:
            raise Conflict(_naming("Not deleted, nothing to restore:", live), code="not_in_trash")
        projects = {rows[i].project_id for i in wanted}
        trashed = AvatarProject.select(AvatarProject.name).where(
            AvatarProject.id.in_(sorted(projects)) & AvatarProject.deleted_at.is_null(False)
        )
        if names := [project.name for project in trashed]:
            raise Conflict(
                f"Its project “{names[0]}” is deleted too: restore the project from the trash "
                "first.",
                code="project_deleted",
            )
        Avatar.update(deleted_at=None).where(Avatar.id.in_(wanted)).execute()
        _record_history(rows, wanted, "restore")
    return len(wanted)


def _record_history(rows: dict[str, Avatar], avatar_ids: list[str], action: str) -> None:
    """One usage-history row per avatar, in the caller's write transaction."""
    AvatarUsageHistory.insert_many(
        [
            {
                "user": rows[i].user_id,
                "project": rows[i].project_id,
                "avatar": i,
                "action": action,
                "details": {},
            }
            for i in avatar_ids
        ]
    ).execute()


def _checked_ids(avatar_ids: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(avatar_ids))  # in order, once each
    if not wanted:
        raise InvalidInput("Name at least one avatar in avatarIds.")
    if len(wanted) > MAX_IDS:
        raise InvalidInput(f"Name at most {MAX_IDS} avatars at once.")
    return wanted


def _rows(avatar_ids: list[str]) -> dict[str, Avatar]:
    return {row.id: row for row in Avatar.select().where(Avatar.id.in_(avatar_ids))}


def _naming(text: str, ids: list[str]) -> str:
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return f"{text} {shown}."
