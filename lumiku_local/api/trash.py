"""The trash: what deleting projects and avatars keeps (restorable) until it is emptied."""

from __future__ import annotations

from typing import Any

from litestar import delete, get
from litestar.datastructures import State

from .. import trash
from . import blocking, shapes
from .answers import change_errors, errors

API = shapes.API


@get(f"{API}/trash", tags=["trash"], responses=errors())
@blocking
def trash_contents(state: State) -> dict[str, Any]:
    """Deleted projects (with their avatar counts) and avatars deleted on their own, newest
    first, each with when it will be emptied (`trash_days` after its delete)."""
    return trash.contents(state.runtime)


@delete(f"{API}/trash", tags=["trash"], status_code=200, responses=change_errors())
@blocking
def empty_trash(state: State) -> dict[str, Any]:
    """Empty the trash now: its projects and avatars can no longer be restored, and their image
    files are removed (a file another avatar still shows stays)."""
    emptied = trash.empty(state.runtime)
    return {"projects": emptied.projects, "avatars": emptied.avatars}


routes = [trash_contents, empty_trash]
