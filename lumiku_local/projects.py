"""Avatar projects: create, list, read, rename, delete (which cancels and refunds its work)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from peewee import JOIN, fn

from . import file_deletions, generations, storage
from .db import dicts, tuples, utcnow, write_transaction
from .errors import InvalidInput
from .models import UNFINISHED_STATUSES, Avatar, AvatarGeneration, AvatarProject
from .runtime import Runtime

MAX_NAME = 120


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the project a name.")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"Keep the project name under {MAX_NAME} characters.")
    return name


def create(runtime: Runtime, name: str, description: str = "") -> AvatarProject:
    return AvatarProject.create(
        user=runtime.user_id, name=_clean_name(name), description=(description or "").strip()
    )


def update(project_id: str, name: str | None, description: str | None) -> AvatarProject:
    with write_transaction():
        project = generations.live_project(project_id)
        if name is not None:
            project.name = _clean_name(name)
        if description is not None:
            project.description = description.strip()
        project.updated_at = utcnow()
        project.save()
    return project


PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class ProjectPage:
    projects: list[tuple[AvatarProject, int]]  # with their live avatar counts
    next_cursor: str | None  # None on the last page


def _cursor(project: AvatarProject) -> str:
    mark = f"{project.updated_at.isoformat()}|{project.id}"
    return base64.urlsafe_b64encode(mark.encode()).decode().rstrip("=")


def _after(cursor: str) -> tuple[dt.datetime, str]:
    try:
        mark = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, project_id = mark.split("|", 1)
        return dt.datetime.fromisoformat(moment), project_id
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise InvalidInput(
            "cursor is not valid: pass the nextCursor of the previous page, or none for the first.",
            code="invalid_cursor",
        ) from None


def list_live(runtime: Runtime, limit: int = PAGE_SIZE, cursor: str | None = None) -> ProjectPage:
    """A page of projects, most recently active first; the cursor continues after the last.

    Keyset paging on (updated_at, id): a page costs the same however far down the list it is.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}.", code="invalid_limit")
    avatar_count = fn.COUNT(Avatar.id).alias("avatar_count")
    live = AvatarProject.deleted_at.is_null() & (AvatarProject.user == runtime.user_id)
    if cursor:
        updated_at, project_id = _after(cursor)
        live &= (AvatarProject.updated_at < updated_at) | (
            (AvatarProject.updated_at == updated_at) & (AvatarProject.id < project_id)
        )
    query = (
        AvatarProject.select(AvatarProject, avatar_count)
        .join(
            Avatar,
            JOIN.LEFT_OUTER,
            on=((Avatar.project == AvatarProject.id) & Avatar.deleted_at.is_null()),
        )
        .where(live)
        .group_by(AvatarProject.id)
        .order_by(AvatarProject.updated_at.desc(), AvatarProject.id.desc())
        .limit(limit + 1)  # one more tells whether another page follows
    )
    rows = [(project, getattr(project, "avatar_count")) for project in query]  # noqa: B009
    more = len(rows) > limit
    rows = rows[:limit]
    return ProjectPage(rows, _cursor(rows[-1][0]) if more else None)


def live_avatars(project_id: str) -> list[dict]:
    """Rows as dicts (field names, foreign keys as ids): a gallery can hold thousands."""
    return dicts(
        Avatar.select()
        .where((Avatar.project == project_id) & Avatar.deleted_at.is_null())
        .order_by(Avatar.created_at.desc())
    )


def delete(runtime: Runtime, project_id: str) -> None:
    """Soft-delete the project, finish its unfinished generations with refunds, then remove
    its files once that has committed."""
    # One transaction: a generate request either commits before (and is canceled here) or
    # after (and finds the project gone); none can slip in between.
    with write_transaction():
        project = generations.live_project(project_id)
        now = utcnow()
        AvatarProject.update(deleted_at=now, updated_at=now).where(
            AvatarProject.id == project.id
        ).execute()
        unfinished = [
            generation.id
            for generation in AvatarGeneration.select(AvatarGeneration.id).where(
                (AvatarGeneration.project == project.id)
                & AvatarGeneration.status.in_(UNFINISHED_STATUSES)
            )
        ]
        for generation_id in unfinished:
            generations.finish(
                runtime,
                generation_id,
                "canceled",
                "Canceled because its project was deleted. Undelivered images were refunded.",
            )
        doomed = live_avatars(project.id)
        Avatar.update(deleted_at=now).where(
            (Avatar.project == project.id) & Avatar.deleted_at.is_null()
        ).execute()
        file_deletions.record(avatar_files(avatar) for avatar in doomed)
        file_deletions.record(reference_files(project.id))  # the project's deleted: not kept
    # files only after the rows are committed as deleted: a crash here leaves files to remove
    file_deletions.carry_out_quietly(runtime.settings.files_dir)


def reference_files(project_id: str) -> list[storage.StoredImage]:
    """The reference photos its generations kept (names only: record() needs no sizes)."""
    rows = AvatarGeneration.select(
        AvatarGeneration.reference_file, AvatarGeneration.reference_thumbnail
    ).where(
        (AvatarGeneration.project == project_id) & AvatarGeneration.reference_file.is_null(False)
    )
    return [
        storage.StoredImage(image, thumbnail or image, 0, 0, 0)
        for image, thumbnail in tuples(rows.distinct())
    ]


def avatar_files(avatar: Avatar | dict) -> storage.StoredImage:
    data = avatar if isinstance(avatar, dict) else avatar.__data__
    return storage.StoredImage(
        data["image_file"],
        data["thumbnail_file"],
        data["width"],
        data["height"],
        data["file_size"],
    )


def cover_thumbnails(project_ids: list[str], per_project: int = 4) -> dict[str, list[str]]:
    """The newest few live avatar ids of each project, in one query (the project list's covers)."""
    rank = (
        fn.ROW_NUMBER()
        .over(partition_by=[Avatar.project], order_by=[Avatar.created_at.desc()])
        .alias("rank")
    )
    ranked = (
        Avatar.select(Avatar.id, Avatar.project, rank)
        .where(Avatar.project.in_(project_ids) & Avatar.deleted_at.is_null())
        .alias("ranked")
    )
    query = (
        Avatar.select(ranked.c.id, ranked.c.project_id)
        .from_(ranked)
        .where(ranked.c.rank <= per_project)
    )
    covers: dict[str, list[str]] = {}
    for avatar_id, project_id in tuples(query):
        covers.setdefault(project_id, []).append(avatar_id)
    return covers
