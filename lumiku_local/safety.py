"""Localhost safety (DESIGN §6): Host check against DNS rebinding, same-origin writes, a token
when bound beyond loopback.

The checks stand in front of routing (`guard`), so that a stranger gets the same refusal for a
route, an unknown path and a wrong method alike: a 404 or 405 would tell which routes exist.
Shared beyond loopback, every request needs the token, from this computer too (a page on a
rebinding domain reaches 127.0.0.1 with any Host header): nothing is public, not even /health.
A person logs in by opening any page with `?token=…`, which also sets the cookie."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from litestar import Litestar
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from .config import Settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
TOKEN_FILE = "access-token"
TOKEN_COOKIE = "lumiku_token"


def ensure_access_token(settings: Settings) -> str:
    """The token from settings, or one generated once into the data dir."""
    if settings.access_token:
        return settings.access_token
    path = Path(settings.home) / TOKEN_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private from birth
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token)
    return token


def guard(app: Litestar, settings: Settings, token: str | None) -> Litestar:
    """Put the safety checks in front of `app`'s router (Litestar's own middleware runs only
    once a route has matched, after any 404 or 405)."""
    app.asgi_handler = SafetyMiddleware(app.asgi_handler, settings, token)
    return app


def _hostname(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]")[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class SafetyMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, token: str | None) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = set(LOCAL_NAMES)
        if not settings.is_loopback and settings.host not in ("0.0.0.0", "::"):
            self.allowed_hosts.add(settings.host.lower())
        self.any_host = settings.host in ("0.0.0.0", "::")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = _hostname(headers.get("host", ""))
        if not self.any_host and host not in self.allowed_hosts:
            await _refuse(
                scope,
                send,
                421,
                "bad_host",
                "This address is not allowed. Open Lumiku at http://127.0.0.1.",
            )
            return
        method = scope.get("method", "GET")
        token_ok = self.token is not None and self._has_token(scope, headers)
        # A browser shows the token once (?token=…); a cookie then carries it for the page's
        # styles, scripts, links and event stream. The cookie proves who is asking, but a
        # cookie travels with cross-site requests too, so it never excuses a change from the
        # same-origin check that an explicit token does.
        cookie_ok = self.token is not None and secrets.compare_digest(
            _cookie(headers, TOKEN_COOKIE), self.token
        )
        if self.token is not None and not (token_ok or cookie_ok):
            await _refuse(
                scope,
                send,
                401,
                "token_required",
                "Lumiku is shared on the network: add ?token=… from the console.",
            )
            return
        if method not in SAFE_METHODS and not token_ok and not _same_origin(headers):
            await _refuse(
                scope, send, 403, "cross_origin", "Changes must come from Lumiku's own pages."
            )
            return
        if token_ok and not cookie_ok and method in SAFE_METHODS:
            send = _with_cookie(send, f"{TOKEN_COOKIE}={self.token}")
        await self.app(scope, receive, send)

    def _has_token(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        candidates = [headers.get("x-lumiku-token", "")]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:])
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        candidates += query.get("token", [])
        return any(secrets.compare_digest(c, self.token) for c in candidates if c)


def _cookie(headers: dict[str, str], name: str) -> str:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _with_cookie(send: Send, cookie: str) -> Send:
    header = f"{cookie}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

    async def sender(message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", header)]}
        await send(message)

    return sender


def _same_origin(headers: dict[str, str]) -> bool:
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is not None:
        return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()
    return True  # not a browser (curl, scripts): browsers always send one of the two


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":  # before the handshake: a close is its refusal
        await send({"type": "websocket.close", "code": 1008, "reason": code})
        return
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)
