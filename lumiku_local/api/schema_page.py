"""The API explorer at /schema: Litestar's Swagger UI, in the language and colours of the app."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

from .. import __version__

ASSETS = "/assets/vendor/swagger-ui"
# follows the system's light or dark setting as the pages do (swagger-ui has no dark theme)
HEAD = (
    "<meta name='color-scheme' content='light dark'>"
    "<style>body { margin: 0; padding: 0 }</style>"
    f"<link rel='stylesheet' href='/assets/schema.css?v={__version__}'>"
)


class SchemaPage(SwaggerRenderPlugin):
    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
            path="/",
            favicon="<link rel='icon' type='image/svg+xml' href='/assets/favicon.svg'>",
            style=HEAD,
        )

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        return page.replace(b"<html>", b'<html lang="en">', 1)
