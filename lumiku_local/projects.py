"""Avatar projects: create, list, read, rename, delete (which cancels and refunds its work)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from peewee import JOIN, fn

from . import file_deletions, generations, storage
from .db import dicts, tuples, utcnow, write_transaction
from .errors import Conflict, InvalidInput, NotFound
from .models import UNFINISHED_STATUSES, Avatar, AvatarGeneration, AvatarProject, CreditLedger
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
    return _mark(project.updated_at, project.id)


def _mark(moment: dt.datetime, row_id: str) -> str:
    mark = f"{moment.isoformat()}|{row_id}"
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


def live_photos(project_id: str) -> list[dict]:
    """The project's live uploaded photos, newest first (what the reference picker offers)."""
    return dicts(
        Avatar.select()
        .where(
            (Avatar.project == project_id)
            & Avatar.deleted_at.is_null()
            & (Avatar.source == "upload")
        )
        .order_by(Avatar.created_at.desc(), Avatar.id.desc())
    )


GALLERY_PAGE = 60  # tiles per page: a multiple of the grid's 2, 3, 4, 5 and 6 columns
ORDERS = ("newest", "oldest")
SOURCES = ("upload", "generated")


@dataclass(frozen=True)
class AvatarFilter:
    favorite: bool | None = None
    source: str | None = None
    generation_id: str | None = None
    order: str = "newest"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise InvalidInput(f"order must be one of: {', '.join(ORDERS)}.", code="invalid_order")
        if self.source is not None and self.source not in SOURCES:
            raise InvalidInput(
                f"source must be one of: {', '.join(SOURCES)}.", code="invalid_source"
            )

    def where(self, project_id: str) -> Any:
        condition = (Avatar.project == project_id) & Avatar.deleted_at.is_null()
        if self.favorite is not None:
            condition &= Avatar.favorite == self.favorite
        if self.source is not None:
            condition &= Avatar.source == self.source
        if self.generation_id is not None:
            condition &= Avatar.generation == self.generation_id
        return condition


@dataclass(frozen=True)
class AvatarPage:
    avatars: list[dict[str, Any]]  # rows as dicts (shapes.avatar takes them)
    next_cursor: str | None  # None on the last page


def avatar_page(
    project_id: str,
    limit: int = GALLERY_PAGE,
    cursor: str | None = None,
    where: AvatarFilter | None = None,
) -> AvatarPage:
    """A page of the project's live avatars, newest (or oldest) first, filtered; the cursor
    continues after the last. Keyset paging on (created_at, id) over an index: page 80 of a
    5,000-avatar project costs what page 1 does."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}.", code="invalid_limit")
    where = where or AvatarFilter()
    condition = where.where(project_id)
    newest = where.order == "newest"
    if cursor:
        created_at, avatar_id = _after(cursor)
        if newest:
            condition &= (Avatar.created_at < created_at) | (
                (Avatar.created_at == created_at) & (Avatar.id < avatar_id)
            )
        else:
            condition &= (Avatar.created_at > created_at) | (
                (Avatar.created_at == created_at) & (Avatar.id > avatar_id)
            )
    sort = (
        (Avatar.created_at.desc(), Avatar.id.desc())
        if newest
        else (Avatar.created_at.asc(), Avatar.id.asc())
    )
    rows = dicts(Avatar.select().where(condition).order_by(*sort).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = _mark(last["created_at"], last["id"]) if more and last else None
    return AvatarPage(rows, next_cursor)


def count_avatars(project_id: str, where: AvatarFilter | None = None) -> int:
    """How many live avatars of the project the filter matches (the gallery's heading)."""
    return Avatar.select().where((where or AvatarFilter()).where(project_id)).count()


def delete(runtime: Runtime, project_id: str) -> int:
    """Move the project and its avatars to the trash, finishing its unfinished generations with
    refunds; return the credits this delete refunded. Rows and files stay until the trash is
    emptied, so `restore` can undo it (canceled generations stay canceled)."""
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
        refunded = (
            CreditLedger.select(fn.COALESCE(fn.SUM(CreditLedger.amount), 0))
            .where(CreditLedger.generation.in_(unfinished) & (CreditLedger.kind == "refund"))
            .scalar()
            if unfinished
            else 0
        )
        # the avatars go with it, at the same moment: restoring the project brings back these,
        # not the ones deleted on their own before
        Avatar.update(deleted_at=now).where(
            (Avatar.project == project.id) & Avatar.deleted_at.is_null()
        ).execute()
    # canceled generations let go of their reference copies unless an avatar (live or in the
    # trash) has the same picture
    file_deletions.carry_out_quietly(runtime.settings.files_dir)
    return int(refunded)


def restore(runtime: Runtime, project_id: str) -> AvatarProject:
    """Take the project out of the trash with the avatars deleted with it; 409 when it is not
    in the trash (live, or the trash was emptied)."""
    with write_transaction():
        project = AvatarProject.get_or_none(AvatarProject.id == project_id)
        if project is None:
            raise NotFound("No project has that id.")
        if project.purged_at is not None:
            raise Conflict(
                "The trash was emptied; this project can no longer be restored.",
                code="not_in_trash",
            )
        if project.deleted_at is None:
            raise Conflict("This project is not deleted; nothing to restore.", code="not_in_trash")
        Avatar.update(deleted_at=None).where(
            (Avatar.project == project.id)
            & (Avatar.deleted_at == project.deleted_at)
            & Avatar.purged_at.is_null()
        ).execute()
        project.deleted_at = None
        project.updated_at = utcnow()
        project.save(only=[AvatarProject.deleted_at, AvatarProject.updated_at])
    return project


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
