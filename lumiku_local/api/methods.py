"""OPTIONS answers that list every method an address takes.

Litestar 2 builds its default OPTIONS handler when a path's first handler is registered, so with
one handler per method it lists only the first one's (litestar-org/litestar#4169, fixed in v3).
Declaring OPTIONS ourselves, before the other handlers, leaves Litestar nothing to guess.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, Router, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler


def with_options(handlers: list[Any]) -> list[Any]:
    """`handlers` preceded by one OPTIONS handler per path, naming all of that path's methods."""
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        if isinstance(handler, HTTPRouteHandler):
            for path in handler.paths:
                methods.setdefault(path, set()).update(handler.http_methods)
    options = [_options(path, allowed) for path, allowed in methods.items()]
    return [*options, *handlers]


def _options(path: str, allowed: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted(allowed | {"OPTIONS"}))

    def options() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow})

    handler = route(
        path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False
    )
    return handler(options)


class RouterWithOptions(Router):
    """A Router whose addresses answer OPTIONS with all their methods (for routers built by
    Litestar's helpers, such as the static files', which take a `router_class`)."""

    def __init__(self, *, route_handlers: list[Any], **kwargs: Any) -> None:
        super().__init__(route_handlers=with_options(list(route_handlers)), **kwargs)
