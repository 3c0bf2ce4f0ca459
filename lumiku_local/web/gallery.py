"""The project page's gallery: a page of tiles at a time, filtered and sorted, and more as the
person scrolls; its viewer, compare and selection live in assets/gallery.js."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Response, get
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template

from .. import generations, projects
from ..api import blocking, shapes
from ..models import AIModel, Avatar, AvatarGeneration
from .render import ago


def _query(where: projects.AvatarFilter, cursor: str | None) -> str:
    fields = {
        "cursor": cursor,
        "favorite": None if where.favorite is None else str(where.favorite).lower(),
        "source": where.source,
        "generationId": where.generation_id,
        "order": where.order if where.order != "newest" else None,
    }
    return urlencode({name: value for name, value in fields.items() if value})


def tiles(
    project_id: str, where: projects.AvatarFilter, cursor: str | None = None
) -> dict[str, Any]:
    """One page of tiles, and the address of the next page (None on the last)."""
    page = projects.avatar_page(project_id, cursor=cursor, where=where)
    more = (
        f"/ui/projects/{project_id}/avatars?{_query(where, page.next_cursor)}"
        if page.next_cursor
        else None
    )
    return {
        "avatars": [shapes.avatar(row) for row in page.avatars],
        "more_url": more,
        "filtered": where != projects.AvatarFilter(),
    }


def page_context(project_id: str, deleted: str | None = None) -> dict[str, Any]:
    """What the project page's gallery section needs: the first page of all avatars, newest
    first, the total, the generations to filter by, and the model names the viewer shows."""
    listed = (
        AvatarGeneration.select(
            AvatarGeneration.id,
            AvatarGeneration.prompt,
            AvatarGeneration.count,
            AvatarGeneration.created_at,
        )
        .where(
            AvatarGeneration.id.in_(
                Avatar.select(Avatar.generation).where(
                    (Avatar.project == project_id) & Avatar.deleted_at.is_null()
                )
            )
        )
        .order_by(AvatarGeneration.created_at.desc())
    )
    models = {row.key: row.name for row in AIModel.select(AIModel.key, AIModel.name)}
    return {
        **tiles(project_id, projects.AvatarFilter()),
        "avatar_total": projects.count_avatars(project_id),
        "gallery_generations": [
            {"id": row.id, "label": generation_label(row.prompt, row.count, row.created_at)}
            for row in listed
        ],
        "model_names": models,
        "deleted_avatar": deleted_notice(project_id, deleted) if deleted else None,
    }


def generation_label(prompt: str | None, count: int, created_at: dt.datetime) -> str:
    """ "a friendly wizard · 4 images · 5 minutes ago": the filter's name for a generation,
    timed as its card is."""
    words = " ".join((prompt or "").split())
    if len(words) > 48:  # at a word's end, as the cards cut prompts
        words = words[:48].rsplit(" ", 1)[0] + "…"
    return f"{words or 'No prompt'} · {count} image{'' if count == 1 else 's'} · {ago(created_at)}"


def deleted_notice(project_id: str, avatar_id: str) -> dict[str, str] | None:
    """The avatar the avatar page just deleted, read back from the database (never from the
    URL): the project page offers to undo it while it is in the trash."""
    row = Avatar.get_or_none(
        (Avatar.id == avatar_id) & (Avatar.project == project_id) & Avatar.deleted_at.is_null(False)
    )
    if row is None or getattr(row, "purged_at", None) is not None:
        return None
    return {"id": row.id, "name": row.name}


@get("/ui/projects/{project_id:str}/avatars", include_in_schema=False)
@blocking
def gallery_page(
    project_id: FromPath[str],
    cursor: FromQuery[str | None] = None,
    favorite: FromQuery[bool | None] = None,
    source: FromQuery[str | None] = None,
    generation_id: Annotated[str | None, QueryParameter(name="generationId")] = None,
    order: FromQuery[str] = "newest",
) -> Template:
    """A page of tiles for the gallery: the first for a new filter (with how many match, for
    the page to say), then the next as the person scrolls (the sentinel at its end asks)."""
    project = generations.live_project(project_id)
    where = projects.AvatarFilter(
        favorite, source or None, generation_id or None, order or "newest"
    )
    context = tiles(project.id, where, cursor)
    headers = (
        {} if cursor else {"X-Gallery-Matching": str(projects.count_avatars(project.id, where))}
    )
    return Template(template_name="_gallery_page.html", context=context, headers=headers)


@get("/ui/projects/{project_id:str}/avatars/count", include_in_schema=False)
@blocking
def gallery_count(project_id: FromPath[str]) -> Response[str]:
    """The heading's count, read again after tiles come, go or come back."""
    project = generations.live_project(project_id)
    return Response(str(projects.count_avatars(project.id)), media_type="text/plain")


routes = [gallery_page, gallery_count]
