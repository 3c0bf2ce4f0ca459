"""The browser UI: server-rendered pages, htmx fragments, and errors as words, never JSON."""

from __future__ import annotations

import logging

from litestar import MediaType, Request, Response, Router
from litestar.exceptions import HTTPException, ValidationException

from .. import storage
from ..api.methods import RouterWithOptions
from ..api.strict_input import describe
from ..errors import LumikuError
from ..machine_failures import noticed
from . import actions, exports, gallery, pages, poses, queue
from .render import render, template_config

log = logging.getLogger("lumiku.web")

__all__ = ["router", "template_config", "wants_html", "html_error"]


def wants_html(request: Request) -> bool:
    """A browser navigating (not the API, not a script): it gets a page, not JSON."""
    path = request.url.path
    if path.startswith(("/api/", "/schema", "/health")):
        return False
    return "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers


def html_error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response[str]:
    """An inline alert for htmx (the page puts it beside the form), else a whole error page."""
    if "hx-request" in request.headers:
        body = render("_alert.html", message=message, kind="error")
    else:
        body = render("error.html", status=status, message=message)
    return Response(body, status_code=status, media_type=MediaType.HTML, headers=headers)


def _lumiku_error(request: Request, exc: LumikuError) -> Response[str]:
    return html_error(request, exc.status_code, exc.message)


def _http_error(request: Request, exc: HTTPException) -> Response[str]:
    status = exc.status_code
    if status >= 500:  # a bug or a misconfiguration: its details are for the log, not the page
        return _internal_error(request, exc)
    if isinstance(exc, ValidationException):
        message = f"That request was not valid: {describe(exc, request)} Reload the page."
    elif status == 400:
        message = "That request was not valid. Reload the page and try again."
    elif status == 404:
        message = "There is nothing at this address."
    elif status == 413:
        message = storage.too_large(request.app.state.runtime.settings.max_upload_bytes)
    else:
        message = exc.detail or "That did not work."
    return html_error(request, status, message, dict(exc.headers or {}))


def _internal_error(request: Request, exc: Exception) -> Response[str]:
    if failure := noticed(request.app.state, exc):  # a full disk or a held database: not a bug
        return html_error(request, failure.status_code, failure.message)
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return html_error(
        request, 500, "Something went wrong inside Lumiku. It has been logged; please try again."
    )


def router() -> Router:
    """The pages and their actions, with exception handlers that answer in HTML."""
    return RouterWithOptions(
        path="/",
        route_handlers=[
            *pages.routes,
            *actions.routes,
            *poses.routes,
            *exports.routes,
            *gallery.routes,
            *queue.routes,
        ],
        include_in_schema=False,
        exception_handlers={
            LumikuError: _lumiku_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
