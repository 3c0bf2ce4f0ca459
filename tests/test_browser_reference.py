"""A photo as the start of a generation, in a real browser: pick it, move its face square, generate.

Same set-up as test_browser.py: Debian's Chromium, driven by Playwright, against `lumiku serve`.
"""

from __future__ import annotations

import io
import re

import pytest
import test_browser
from browser import DESKTOP, PHONE, axe_violations, screenshot, watched_context
from conftest import API, Server, wait_for
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect
from test_browser import TIMEOUT, new_project

# the browser tests' fixtures: a server per test, a watched desktop page (on conftest's Chromium)
server = test_browser.server  # the `ui` fixture is conftest's


def portrait(size: tuple[int, int] = (480, 360)) -> bytes:
    """A drawn head and shoulders left of centre on a blue wall: skin, dark hair, eyes, mouth."""
    width, height = size
    image = Image.new("RGB", size, (70, 110, 170))
    draw = ImageDraw.Draw(image)
    cx, cy, r = width * 3 // 8, height * 9 // 20, height // 5
    draw.ellipse((cx - 2 * r, cy + r, cx + 2 * r, cy + 4 * r), fill=(40, 60, 50))  # shoulders
    draw.ellipse((cx - r - 8, cy - r - 14, cx + r + 8, cy + r // 2), fill=(60, 35, 20))  # hair
    draw.ellipse((cx - r, cy - r, cx + r, cy + int(r * 1.25)), fill=(224, 178, 140))  # face
    for eye_x in (cx - r // 2.5, cx + r // 2.5):
        draw.ellipse((eye_x - 7, cy - 12, eye_x + 7, cy - 2), fill=(35, 30, 30))
    draw.arc((cx - r // 2, cy + r // 4, cx + r // 2, cy + r * 3 // 4), 20, 160, (120, 40, 40), 4)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload_photo(page: Page, tmp_path, name: str = "selfie") -> str:
    """Upload a drawn portrait through the page; return its avatar id once it is in the picker."""
    photo = tmp_path / f"{name}.png"
    photo.write_bytes(portrait())
    page.locator("#upload-input").set_input_files(str(photo))
    choice = page.locator("[data-reference-choices] label", has_text=name)
    expect(choice).to_have_count(1)
    return choice.locator("input").get_attribute("value")


def face_box(server: Server, avatar_id: str) -> dict:
    return server.get(f"{API}/avatars/{avatar_id}")["avatar"]["faceBox"]


def test_a_photo_with_a_dragged_face_square_makes_four_instant_look_alikes(server, ui, tmp_path):
    page, _ = ui
    project_id = new_project(server)
    page.goto(f"{server.url}/projects/{project_id}")
    expect(page.locator("[data-face-editor]")).to_be_hidden()
    photo_id = upload_photo(page, tmp_path)
    page.locator("[data-reference-choices] label", has_text="selfie").click()

    editor = page.locator("[data-face-editor]")
    expect(editor).to_be_visible()
    square = editor.locator("[data-face-square]")
    first = face_box(server, photo_id)  # found (or the centre) when the photo was uploaded
    assert first["source"] in ("detected", "no_face", "no_detector"), first
    expect(editor.locator("[data-face-source]")).to_contain_text(
        {
            "detected": "Face found",
            "no_face": "No face found: the centre square is used",
            "no_detector": "Face detection is not installed in this version",
        }[first["source"]]
    )
    photo = editor.locator("[data-face-photo]")
    wait_for(lambda: photo.evaluate("img => img.complete && img.naturalWidth") > 0)

    # drag the square by 40 × 24 screen pixels towards where the photo has room for it
    shown = photo.bounding_box()
    scale = 480 / shown["width"]  # photo pixels per screen pixel
    sign_x = 1 if first["x"] + first["size"] / 2 < 240 else -1
    sign_y = 1 if first["y"] + first["size"] / 2 < 180 else -1
    box = square.bounding_box()
    start_x, start_y = box["x"] + box["width"] / 3, box["y"] + box["height"] / 3
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    page.mouse.move(start_x + sign_x * 40, start_y + sign_y * 24, steps=8)
    page.mouse.up()
    expected_x = first["x"] + round(sign_x * 40 * scale)
    expected_y = first["y"] + round(sign_y * 24 * scale)
    expect(editor.locator("[data-face-source]")).to_contain_text("Your square is used")
    saved = wait_for(lambda: (b := face_box(server, photo_id))["source"] == "user" and b)
    assert abs(saved["x"] - expected_x) <= 2 and abs(saved["y"] - expected_y) <= 2, (
        first,
        saved,
        (expected_x, expected_y),
    )
    assert saved["size"] == first["size"]

    page.get_by_label("Likeness").fill("60")
    expect(editor.locator("[data-likeness-value]")).to_have_text("60%")
    page.get_by_label("Prompt", exact=True).fill("me as a cheerful avatar")
    page.get_by_label("Images").fill("4")

    # the keyboard moves it too: one step left, just before Generate, which waits for its save
    square.focus()
    page.keyboard.press("ArrowLeft")
    moved = saved["x"] - max(1, round(360 / 50))
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(editor.locator("[data-face-where]")).to_have_text(
        f"{saved['size']} × {saved['size']} px at {moved}, {saved['y']}"
    )
    this = page.locator("[data-generation]").first
    screenshot(page, "reference-editor-desktop")
    expect(this).to_have_attribute("data-status", "completed")
    results = this.locator(".gen-results img")
    expect(results).to_have_count(4)
    for index in range(4):
        image = results.nth(index)
        wait_for(lambda image=image: image.evaluate("i => i.complete && i.naturalWidth") > 0)
    thumbnail = this.locator(".gen-reference img")
    expect(thumbnail).to_have_attribute("alt", "Reference photo")
    wait_for(lambda: thumbnail.evaluate("i => i.complete && i.naturalWidth") > 0)
    expect(this.locator(".gen-reference")).to_contain_text("likeness 60%")
    expect(page.locator("#gallery li.tile")).to_have_count(5)  # the photo and its 4 avatars
    screenshot(page, "reference-generated-desktop")

    generation_id = this.get_attribute("data-generation")
    reference = server.get(f"{API}/generations/{generation_id}")["generation"]["reference"]
    assert reference["avatarId"] == photo_id
    assert reference["mode"] == "lookAlike"
    assert reference["likeness"] == pytest.approx(0.6)
    assert reference["faceBox"] == {**saved, "x": moved}
    assert face_box(server, photo_id) == {**saved, "x": moved}


def test_the_photo_page_leads_to_the_form_with_the_photo_chosen(server, ui, tmp_path):
    page, _ = ui
    project_id = new_project(server)
    page.goto(f"{server.url}/projects/{project_id}")
    photo_id = upload_photo(page, tmp_path, "passport")
    page.locator(f"#avatar-{photo_id} a").click()  # the viewer, which leads to the page
    page.locator("#viewer").get_by_role("link", name="Open page").click()
    page.get_by_role("link", name="Make avatars from this photo").click()
    expect(page).to_have_url(re.compile(rf"/projects/{project_id}\?reference={photo_id}"))
    expect(page.locator(f"#reference-{photo_id} input")).to_be_checked()
    expect(page.locator("[data-face-editor]")).to_be_visible()
    expect(page.get_by_role("button", name="Generate", exact=True)).to_be_enabled()


def test_a_style_without_colours_says_it_cannot_use_the_photo(server, ui, tmp_path):
    page, _ = ui
    project_id = new_project(server)
    page.goto(f"{server.url}/projects/{project_id}")
    upload_photo(page, tmp_path)
    page.locator("[data-reference-choices] label", has_text="selfie").click()
    expect(page.locator("[data-photo-styles-note]")).to_be_visible()
    page.get_by_text("Style: ").click()
    greyed = page.locator("label.style-choice:not([data-photo])").first
    style = greyed.get_attribute("data-style-label")  # its readable name
    greyed.click()  # chosen by hand with the photo already picked: it stays chosen
    expect(page.locator("[data-style-name]")).to_have_text(style)
    note = page.locator("[data-reference-note]")
    expect(note).to_have_text(re.compile(rf"The {re.escape(style)} style cannot use a photo"))
    generate = page.get_by_role("button", name="Generate", exact=True)
    expect(generate).to_be_disabled()
    page.locator("label.style-choice[data-photo]").first.click()
    expect(note).to_be_hidden()
    expect(generate).to_be_enabled()
    page.locator("[data-reference-choices] label", has_text="No photo").click()
    expect(page.locator("[data-face-editor]")).to_be_hidden()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_face_square_editor_passes_axe_at_desktop_and_phone_width(
    server, browser, tmp_path, scheme
):
    project_id = new_project(server)
    problems: dict[str, list[str]] = {}
    for width_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, _):
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(f"{server.url}/projects/{project_id}")
            if width_name == "desktop":
                upload_photo(page, tmp_path)
            page.locator("[data-reference-choices] label", has_text="selfie").click()
            expect(page.locator("[data-face-editor]")).to_be_visible()
            photo = page.locator("[data-face-photo]")
            wait_for(lambda photo=photo: photo.evaluate("i => i.complete && i.naturalWidth") > 0)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                problems.setdefault(width_name, []).append(f"scrolls sideways by {overflow}px")
            screenshot(page, f"reference-{width_name}-{scheme}")
            screenshot(page, f"reference-form-{width_name}-{scheme}", "#generate")
            problems.setdefault(width_name, []).extend(axe_violations(page))
    assert {name: found for name, found in problems.items() if found} == {}
