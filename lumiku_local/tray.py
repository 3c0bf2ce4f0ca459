"""The tray icon: "Open Lumiku" and "Quit" where a tray exists (Windows, macOS, with pystray).

pystray is imported here only, and only when an icon is made: it is the `tray` extra, part of
the packaged builds for Windows and macOS; anywhere else Lumiku simply runs without an icon.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lumiku.tray")

TRAY_PLATFORMS = ("win32", "darwin")


class Tray:
    """A pystray icon, run the way its platform needs."""

    def __init__(self, icon: Any, platform: str) -> None:
        self.icon = icon
        # AppKit's event loop must run on the main thread; Windows runs its own loop thread
        self.needs_main_thread = platform == "darwin"

    def start(self) -> None:
        self.icon.run_detached()  # Windows: the icon's message loop in its own thread

    def run_until(self, serving: threading.Thread) -> None:
        """macOS: run the icon on this (main) thread until the server thread ends."""

        def setup(icon: Any) -> None:
            icon.visible = True
            serving.join()
            icon.stop()

        self.icon.run(setup=setup)

    def stop(self) -> None:
        try:
            self.icon.stop()
        except Exception:  # a tray that failed to show must not spoil a clean exit
            log.warning("the tray icon did not stop cleanly", exc_info=True)


def make_tray(
    url: str,
    open_page: Callable[[], None],
    quit_app: Callable[[], None],
    *,
    interactive: bool = False,
    platform: str = sys.platform,
) -> Tray | None:
    """A running tray icon, or None where there is no tray (or no pystray) to show one."""
    if platform not in TRAY_PLATFORMS:
        return None
    if platform == "darwin" and interactive:
        # started from a terminal: Ctrl+C stops it there, and pystray's macOS loop would take
        # the main thread (and Ctrl+C) from the server
        return None
    try:
        import pystray
    except Exception as exc:  # not installed (a pip install without the tray extra)
        log.info("no tray icon: %s", exc)
        return None
    try:
        menu = pystray.Menu(
            pystray.MenuItem("Open Lumiku", lambda icon, item: open_page(), default=True),
            pystray.MenuItem("Quit Lumiku", lambda icon, item: quit_app()),
        )
        icon = pystray.Icon("lumiku", icon_image(), f"Lumiku Local: {url}", menu)
        tray = Tray(icon, platform)
        if not tray.needs_main_thread:
            tray.start()
        return tray
    except Exception:  # no tray on this desktop, after all: run without one
        log.warning("no tray icon", exc_info=True)
        return None


def icon_image(side: int = 64) -> Any:
    """The app's favicon as a Pillow image, rendered by resvg."""
    import resvg
    from PIL import Image

    from .app import assets_dir

    svg = (assets_dir() / "favicon.svg").read_text(encoding="utf-8")
    svg = svg.replace("<svg ", f'<svg width="{side}" height="{side}" ', 1)
    tree = resvg.usvg.Tree.from_str(svg, resvg.usvg.Options.default())
    png = bytes(resvg.render(tree, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)))
    return Image.open(io.BytesIO(png)).convert("RGBA")
