"""The avatar page's "Export for profiles" in a real browser: sizes, square or circle with a
live circle preview, a transparent background where the engine can, the zip of all sizes and
single PNGs, checked pixel by pixel; at desktop and phone width, light and dark, axe clean.

Same set-up as test_browser.py: Debian's Chromium, driven by Playwright, against `lumiku serve`.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
import test_browser
from browser import DESKTOP, axe_violations, screenshot, watched_context
from conftest import API, Server, png_bytes
from PIL import Image
from playwright.sync_api import Page, expect
from test_browser import TIMEOUT, new_project

server = test_browser.server  # a `lumiku serve` per test (test_browser's fixture)
PROFILE_SIZES = [1024, 512, 400, 320, 128]
LAYOUTS = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}


def instant_avatar(server: Server, project_id: str) -> str:
    status, body = server.request(
        "POST",
        f"{API}/projects/{project_id}/avatars/generate",
        {"prompt": "a cheerful robot gardener", "count": 1, "style": "bottts"},
    )
    assert status == 202, body
    generation = server.wait_generation(body["generation"]["id"])
    assert generation["status"] == "completed", generation
    return generation["avatars"][0]["id"]


def panel(page: Page):
    return page.get_by_role("region", name="Export for profiles")


def picture(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def download(page: Page, click) -> tuple[str, bytes]:
    with page.expect_download() as info:
        click()
    return info.value.suggested_filename, info.value.path().read_bytes()


def corners(image: Image.Image) -> list[int]:
    last = image.width - 1
    return [image.getpixel(xy)[3] for xy in ((0, 0), (last, 0), (0, last), (last, last))]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("layout", ["desktop", "phone"])
def test_export_a_circle_with_a_transparent_background_at_every_profile_size(
    server, browser, layout, scheme
):
    project_id = new_project(server, "Team")
    avatar_id = instant_avatar(server, project_id)
    viewport = LAYOUTS[layout]
    with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, _):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        expect.set_options(timeout=TIMEOUT)
        page.goto(f"{server.url}/avatars/{avatar_id}")
        export = panel(page)
        export.scroll_into_view_if_needed()
        for size in PROFILE_SIZES:
            expect(export.get_by_label(f"{size} px", exact=True)).to_be_checked()
        expect(export.get_by_label("2048 px", exact=True)).not_to_be_checked()
        preview = export.get_by_role("img", name="Preview")
        expect(preview).not_to_have_class(re.compile(r"\bcircle\b"))

        export.get_by_label("Circle").check()
        expect(preview).to_have_class(re.compile(r"\bcircle\b"))
        clip = preview.evaluate("img => getComputedStyle(img).clipPath")
        assert clip.startswith("circle(50%"), clip
        export.get_by_label("Transparent background").check()
        expect(preview).to_have_attribute("src", re.compile("background=transparent"))
        expect(export.get_by_text("Circle, transparent background")).to_be_visible()
        page.wait_for_function(
            "() => { const img = document.querySelector('[data-profile-preview]');"
            " return img.complete && img.naturalWidth === 320; }"
        )
        assert (
            page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            <= 0
        )
        screenshot(page, f"export-{layout}-{scheme}", ".profile-export")
        screenshot(page, f"export-page-{layout}-{scheme}")
        assert axe_violations(page) == []

        name, content = download(
            page, export.get_by_role("button", name="Download zip of all sizes").click
        )
        assert name == "Team - a cheerful robot gardener profile pictures.zip"
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            files = manifest["files"]
            assert [file["width"] for file in files] == PROFILE_SIZES
            for file in files:
                image = picture(archive.read(file["name"]))
                assert image.size == (file["width"], file["width"])
                assert corners(image) == [0, 0, 0, 0]
                assert image.getpixel((file["width"] // 2, file["width"] // 2))[3] == 255
        assert manifest["profile"] == {
            "sizes": PROFILE_SIZES,
            "shape": "circle",
            "background": "transparent",
        }
        expect(page.locator("#toasts")).to_contain_text("zip of 5 PNGs")

        name, content = download(page, export.get_by_role("link", name="400 px").click)
        assert name.endswith("-400px-circle.png")
        image = picture(content)
        assert image.size == (400, 400) and corners(image) == [0, 0, 0, 0]


def test_an_upload_says_why_there_is_no_transparent_background_and_sizes_are_needed(
    server, browser
):
    project_id = new_project(server, "Holiday")
    photo = server.upload(project_id, png_bytes((300, 200), "teal"), "beach.png")
    with watched_context(browser, viewport=DESKTOP) as (context, _):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{server.url}/avatars/{photo['id']}")
        export = panel(page)
        expect(export.get_by_label("Transparent background")).to_have_count(0)
        expect(export).to_contain_text(
            "No transparent background for this avatar: it is an uploaded photo"
        )
        for size in PROFILE_SIZES:
            export.get_by_label(f"{size} px", exact=True).uncheck()
        export.get_by_role("button", name="Download zip of all sizes").click()
        expect(export.get_by_role("alert")).to_have_text("Choose at least one size.")
        expect(export.get_by_label("2048 px", exact=True)).to_be_focused()
        export.get_by_label("64 px", exact=True).check()
        expect(export.get_by_role("alert")).to_be_hidden()
        screenshot(page, "export-upload-desktop", ".profile-export")

        name, content = download(
            page, export.get_by_role("button", name="Download zip of all sizes").click
        )
        assert name == "Holiday - Uploaded photo profile pictures.zip"
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            (file,) = json.loads(archive.read("manifest.json"))["files"]
            image = picture(archive.read(file["name"]))
        assert image.size == (64, 64) and image.getpixel((0, 0))[:3] == (0, 128, 128)
