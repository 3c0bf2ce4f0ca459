"""A real Chromium (Debian's) driven by Playwright against a real Lumiku server.

Every page a test opens is watched: a request to any host but localhost is blocked and fails the
test, and so does any console error or uncaught exception the test did not expect.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
ARTIFACTS = Path(
    os.environ.get("LUMIKU_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


@dataclass
class Watch:
    """What the pages of one context did that a test must not let pass silently."""

    foreign_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect console errors matching this (e.g. a refused connection during a restart)."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location.get('url')}")

    def unexpected(self) -> list[str]:
        return [e for e in self.console_errors if not any(p.search(e) for p in self.allowed)]


@contextmanager
def watched_context(browser: Browser, **options) -> Iterator[tuple[BrowserContext, Watch]]:
    watch = Watch()
    context = browser.new_context(accept_downloads=True, **options)

    def route(route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            watch.foreign_requests.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    context.on("console", watch.on_console)
    context.on("weberror", lambda error: watch.console_errors.append(f"uncaught: {error.error}"))
    try:
        yield context, watch
    finally:
        context.close()
    assert not watch.foreign_requests, f"requests left localhost: {watch.foreign_requests}"
    assert not watch.unexpected(), f"console errors: {watch.unexpected()}"


def axe_violations(page: Page) -> list[str]:
    """Serious and critical accessibility violations on the page as it is now (axe-core)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['impact']}: {v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['html']})"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def screenshot(page: Page, name: str, selector: str | None = None) -> Path:
    """The whole page, or only the element `selector` names, as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if selector:
        page.locator(selector).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    return path
