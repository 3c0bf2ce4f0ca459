"""The trash: deleted projects and avatars keep their rows and files until it is emptied.

Deleting moves a row to the trash (`deleted_at`), which `avatars.restore` and `projects.restore`
undo. Emptying it (by hand, or at start-up for what has been there `trash_days`) marks the rows
emptied (`purged_at`) and records their files in the same transaction; the files go once that
has committed (file_deletions), so a crash never leaves a row without its file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from peewee import fn

from . import file_deletions
from .db import dicts, iso, tuples, utcnow, write_transaction
from .models import Avatar, AvatarProject
from .projects import avatar_files, reference_files
from .runtime import Runtime

SHOWN = 500  # avatars the trash lists (newest deleted first); the count is exact


@dataclass(frozen=True)
class Emptied:
    projects: int
    avatars: int
    files: int  # file names let go of (shared names that a row still uses are kept)


def contents(runtime: Runtime) -> dict[str, Any]:
    """What the trash holds: projects (with how many avatars went with each) and the avatars
    deleted on their own, newest first, with the moment each will be emptied."""
    from .api import shapes

    keep = dt.timedelta(days=runtime.settings.trash_days)
    projects = list(
        AvatarProject.select()
        .where(
            (AvatarProject.user == runtime.user_id)
            & AvatarProject.deleted_at.is_null(False)
            & AvatarProject.purged_at.is_null()
        )
        .order_by(AvatarProject.deleted_at.desc())
    )
    trashed_projects = {project.id for project in projects}
    alone = (
        (Avatar.user == runtime.user_id)
        & Avatar.deleted_at.is_null(False)
        & Avatar.purged_at.is_null()
        & Avatar.project.not_in(
            AvatarProject.select(AvatarProject.id).where(AvatarProject.deleted_at.is_null(False))
        )
    )
    rows = dicts(Avatar.select().where(alone).order_by(Avatar.deleted_at.desc()).limit(SHOWN))
    counts = {
        project_id: count
        for project_id, count in tuples(
            Avatar.select(Avatar.project, fn.COUNT(Avatar.id))
            .where(Avatar.project.in_(sorted(trashed_projects)) & Avatar.purged_at.is_null())
            .group_by(Avatar.project)
        )
    }
    return {
        "projects": [
            {
                **shapes.project(project, counts.get(project.id, 0)),
                "deletedAt": iso(project.deleted_at),
                "emptiedAfter": iso(project.deleted_at + keep) if project.deleted_at else None,
            }
            for project in projects
        ],
        "avatars": [
            {
                **shapes.avatar(row),
                "emptiedAfter": iso(row["deleted_at"] + keep),
            }
            for row in rows
        ],
        "avatarCount": Avatar.select().where(alone).count(),
        "keepDays": runtime.settings.trash_days,
    }


def empty(runtime: Runtime, older_than: dt.timedelta | None = None) -> Emptied:
    """Empty the trash (with `older_than`, only what was deleted longer ago than that)."""
    now = utcnow()
    with write_transaction():
        projects = AvatarProject.select().where(
            AvatarProject.deleted_at.is_null(False) & AvatarProject.purged_at.is_null()
        )
        avatars = Avatar.select().where(
            Avatar.deleted_at.is_null(False) & Avatar.purged_at.is_null()
        )
        if older_than is not None:
            projects = projects.where(AvatarProject.deleted_at <= now - older_than)
            avatars = avatars.where(Avatar.deleted_at <= now - older_than)
        project_ids = [project.id for project in projects]
        # the avatars of an emptied project go with it, whenever they were deleted
        doomed = dicts(
            avatars.orwhere(  # an empty IN is false: no project, no extra avatars
                Avatar.project.in_(project_ids)
                & Avatar.purged_at.is_null()
                & Avatar.deleted_at.is_null(False)
            )
        )
        ids = [row["id"] for row in doomed]
        for start in range(0, len(ids), 400):
            Avatar.update(purged_at=now).where(Avatar.id.in_(ids[start : start + 400])).execute()
        if project_ids:
            AvatarProject.update(purged_at=now).where(AvatarProject.id.in_(project_ids)).execute()
        files = file_deletions.record(avatar_files(row) for row in doomed)
        for project_id in project_ids:  # their generations' reference copies
            files += file_deletions.record(reference_files(project_id))
    file_deletions.carry_out_quietly(runtime.settings.files_dir)
    return Emptied(len(project_ids), len(ids), files)


def empty_expired(runtime: Runtime) -> Emptied:
    """At start-up: empty what has been in the trash for `trash_days`."""
    return empty(runtime, dt.timedelta(days=runtime.settings.trash_days))
