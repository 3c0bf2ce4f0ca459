"""The project page's gallery in a real browser: the viewer with its keys, compare, selection
with a zip download and delete with Undo, favourites and filters, paging as you scroll."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import sqlite3
import uuid
import zipfile

import pytest
from browser import DESKTOP, axe_violations, screenshot, watched_context
from conftest import API, Server, png_bytes, wait_for
from playwright.sync_api import Page, expect

TIMEOUT = 20_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path / "home")
    started.home = tmp_path / "home"  # type: ignore[attr-defined]  # clone_rows writes there
    yield started
    started.kill()


def open_page(browser, **options):
    """A watched context's page, with the test's timeouts."""
    manager = watched_context(browser, **options)
    context, watch = manager.__enter__()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    expect.set_options(timeout=TIMEOUT)
    return manager, page, watch


def studio(server: Server, generated: int = 4, photos: int = 1) -> tuple[str, list[dict]]:
    """A project with `generated` Instant avatars (one generation) and `photos` uploads; its
    avatars newest first, as the gallery lists them."""
    status, body = server.request("POST", f"{API}/projects", {"name": "Studio"})
    assert status == 201, body
    project_id = body["id"]
    if generated:
        status, body = server.request(
            "POST",
            f"{API}/projects/{project_id}/avatars/generate",
            {"prompt": "a friendly wizard", "count": generated},
        )
        assert status == 202, body
        server.wait_generation(body["generation"]["id"])
    for n in range(photos):
        server.upload(project_id, png_bytes((200, 200), "teal"), f"photo {n}.png")
    return project_id, live_avatars(server, project_id)


def live_avatars(server: Server, project_id: str) -> list[dict]:
    """The project's live avatars, newest first (as the gallery shows them)."""
    return server.get(f"{API}/projects/{project_id}")["project"]["avatars"]


def clone_rows(server: Server, avatar_id: str, count: int) -> list[str]:
    """`count` copies of an avatar's row in the server's database (sharing its files), older
    than it, one second apart: a big project in a second, not an hour of generating."""
    database = sqlite3.connect(server.home / "lumiku.db", timeout=30)  # type: ignore[attr-defined]
    try:
        database.row_factory = sqlite3.Row
        row = dict(database.execute("SELECT * FROM avatar WHERE id = ?", (avatar_id,)).fetchone())
        start = dt.datetime.fromisoformat(str(row["created_at"])) - dt.timedelta(days=1)
        ids = [uuid.uuid4().hex for _ in range(count)]
        columns = list(row)
        rows = [
            {
                **row,
                "id": avatar_id_,
                "name": f"copy {n}",
                "created_at": (start + dt.timedelta(seconds=n)).isoformat(sep=" "),
            }
            for n, avatar_id_ in enumerate(ids)
        ]
        with database:
            database.executemany(
                f"INSERT INTO avatar ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)})",
                rows,
            )
        return ids
    finally:
        database.close()


def tile(page: Page, avatar: dict):
    return page.locator(f"#avatar-{avatar['id']}")


def viewer_heading(page: Page):
    return page.locator("#viewer-title")


def loaded(image) -> None:
    wait_for(lambda: image.evaluate("img => img.complete && img.naturalWidth") > 0)


def test_the_viewer_steps_with_the_arrow_keys_stars_and_closes_back_to_the_tile(server, ui):
    page, _ = ui
    project_id, avatars = studio(server)
    page.goto(f"{server.url}/projects/{project_id}")
    expect(page.locator("#gallery li.tile")).to_have_count(5)
    expect(page.locator("[data-gallery-count]")).to_have_text("5")
    tile(page, avatars[1]).locator(".tile-link").click()
    viewer = page.locator("#viewer")
    expect(page.get_by_role("dialog", name=avatars[1]["name"])).to_be_visible()
    expect(viewer.locator("[data-viewer-position]")).to_have_text("2 of 5")
    expect(viewer.locator("[data-viewer-image]")).to_have_attribute("src", avatars[1]["imageUrl"])
    expect(viewer.locator("dd").first).to_have_text("Generated")
    expect(viewer).to_contain_text("a friendly wizard")
    expect(viewer).to_contain_text("Instant (DiceBear)")
    expect(viewer).to_contain_text(str(avatars[1]["seed"]))
    loaded(viewer.locator("[data-viewer-image]"))

    page.keyboard.press("ArrowRight")
    expect(viewer_heading(page)).to_have_text(avatars[2]["name"])
    expect(viewer.locator("[data-viewer-position]")).to_have_text("3 of 5")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(viewer_heading(page)).to_have_text(avatars[0]["name"])
    expect(viewer.get_by_role("button", name="Previous avatar")).to_be_disabled()
    download = viewer.get_by_role("link", name="Download")
    expect(download).to_have_attribute("href", f"{avatars[0]['imageUrl']}?download=true")

    star = viewer.get_by_role("button", name="Favourite")
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")
    expect(tile(page, avatars[0]).locator("[data-star]")).to_have_attribute("aria-pressed", "true")
    wait_for(lambda: server.get(f"{API}/avatars/{avatars[0]['id']}")["avatar"]["favorite"])
    assert axe_violations(page) == []

    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()
    expect(tile(page, avatars[0]).locator(".tile-link")).to_be_focused()


def test_compare_from_the_viewer_and_from_the_selection(server, ui):
    page, _ = ui
    project_id, avatars = studio(server)
    page.goto(f"{server.url}/projects/{project_id}")
    tile(page, avatars[0]).locator(".tile-link").click()
    page.locator("#viewer").get_by_role("button", name="Compare").click()
    expect(page.locator("#viewer")).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Now choose the avatar to compare with")
    tile(page, avatars[3]).locator(".tile-link").click()  # selecting: a click chooses
    compare = page.get_by_role("dialog", name="Compare two avatars")
    expect(compare).to_be_visible()
    names = compare.locator("[data-compare-name]")
    expect(names).to_have_text([avatars[0]["name"], avatars[3]["name"]])
    expect(compare.locator("[data-compare-item] dl").nth(1)).to_contain_text(
        str(avatars[3]["seed"])
    )
    for image in compare.locator("[data-compare-item] img").all():
        loaded(image)
    assert axe_violations(page) == []
    compare.get_by_role("button", name="Slider").click()
    slider = compare.get_by_role("slider")
    expect(slider).to_be_visible()
    slider.fill("20")
    expect(compare.locator("[data-compare-over]")).to_have_attribute(
        "style", re.compile(r"inset\(0px 0px 0px 20%\)")
    )
    page.keyboard.press("Escape")
    expect(compare).to_be_hidden()

    bar = page.get_by_role("region", name="Selected avatars")
    expect(bar).to_contain_text("2 selected")
    bar.get_by_role("button", name="Compare").click()
    expect(compare).to_be_visible()
    expect(names).to_have_text([avatars[0]["name"], avatars[3]["name"]])


def test_select_a_range_download_the_zip_then_delete_and_undo(server, ui, tmp_path):
    page, _ = ui
    project_id, avatars = studio(server)
    page.goto(f"{server.url}/projects/{project_id}")
    page.get_by_role("button", name="Select", exact=True).click()
    tile(page, avatars[1]).locator(".tile-link").click()
    tile(page, avatars[3]).locator(".tile-link").click(modifiers=["Shift"])
    chosen = avatars[1:4]
    bar = page.get_by_role("region", name="Selected avatars")
    expect(bar).to_contain_text("3 selected")
    for avatar in chosen:
        expect(page.get_by_role("checkbox", name=f"Select {avatar['name']}")).to_be_checked()
    expect(page.get_by_role("checkbox", name=f"Select {avatars[0]['name']}")).not_to_be_checked()
    expect(bar.get_by_role("button", name="Compare")).to_be_hidden()

    with page.expect_download() as started:
        bar.get_by_role("button", name="Download zip").click()
    saved = tmp_path / "chosen.zip"
    started.value.save_as(saved)
    assert started.value.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        pngs = [name for name in names if name.endswith(".png")]
        assert len(pngs) == 3
        assert all(archive.read(name)[:8] == b"\x89PNG\r\n\x1a\n" for name in pngs)
    assert [entry["avatarId"] for entry in manifest["files"]] == [a["id"] for a in chosen]
    assert sorted(entry["name"] for entry in manifest["files"]) == sorted(pngs)

    bar.get_by_role("button", name="Delete").click()
    expect(page.locator("#gallery li.tile")).to_have_count(2)
    expect(page.locator("[data-gallery-count]")).to_have_text("2")
    expect(bar).to_be_hidden()
    undo = page.locator("#toasts").get_by_role("button", name="Undo")
    expect(page.locator("#toasts")).to_contain_text("Deleted 3 avatars.")
    expect(undo).to_be_focused()
    live = live_avatars(server, project_id)
    assert [a["id"] for a in live] == [avatars[0]["id"], avatars[4]["id"]]
    assert axe_violations(page) == []
    undo.click()
    expect(page.locator("#toasts")).to_contain_text("Restored 3 avatars.")
    expect(page.locator("#gallery li.tile")).to_have_count(5)
    ids = page.locator("#gallery li.tile").evaluate_all("tiles => tiles.map(t => t.dataset.avatar)")
    assert ids == [a["id"] for a in avatars]  # back where they were
    expect(page.locator("[data-gallery-count]")).to_have_text("5")
    assert len(live_avatars(server, project_id)) == 5


def test_delete_in_the_viewer_moves_on_and_undo_brings_it_back(server, ui):
    page, _ = ui
    project_id, avatars = studio(server, generated=2, photos=1)
    page.goto(f"{server.url}/projects/{project_id}")
    tile(page, avatars[0]).locator(".tile-link").click()
    viewer = page.locator("#viewer")
    viewer.get_by_role("button", name="Delete").click()
    expect(viewer_heading(page)).to_have_text(avatars[1]["name"])
    expect(viewer).to_contain_text(f"Deleted “{avatars[0]['name']}”.")
    expect(page.locator("#gallery li.tile")).to_have_count(2)
    viewer.get_by_role("button", name="Undo").click()
    expect(viewer_heading(page)).to_have_text(avatars[0]["name"])
    expect(page.locator("#gallery li.tile")).to_have_count(3)
    expect(page.locator("[data-gallery-count]")).to_have_text("3")


def test_the_avatar_pages_delete_says_so_with_undo(server, ui):
    page, _ = ui
    project_id, avatars = studio(server, generated=2, photos=0)
    page.goto(f"{server.url}/avatars/{avatars[0]['id']}")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete avatar").click()
    expect(page).to_have_url(f"{server.url}/projects/{project_id}")  # ?deleted= is dropped
    toast = page.locator("#toasts .toast", has_text=f"Deleted “{avatars[0]['name']}”.")
    expect(toast).to_be_visible()
    expect(page.locator("#gallery li.tile")).to_have_count(1)
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator("#toasts")).to_contain_text(f"Restored “{avatars[0]['name']}”.")
    expect(page.locator("#gallery li.tile")).to_have_count(2)
    expect(page.locator("[data-gallery-count]")).to_have_text("2")


def test_favourites_uploads_generation_filters_sort_and_live_tiles(server, ui):
    page, _ = ui
    project_id, avatars = studio(server, generated=3, photos=1)
    page.goto(f"{server.url}/projects/{project_id}")
    tile(page, avatars[2]).get_by_role("button", name=f"Favourite {avatars[2]['name']}").click()
    expect(tile(page, avatars[2]).locator("[data-star]")).to_have_attribute("aria-pressed", "true")
    tiles = page.locator("#gallery li.tile")

    page.locator(".filter-chip", has_text="Favourites").click()
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_have_id(f"avatar-{avatars[2]['id']}")
    expect(page.locator("[data-gallery-status]")).to_have_text("1 avatar shown.")
    expect(page.locator("[data-gallery-count]")).to_have_text("4")  # the project's total
    tiles.first.get_by_role("button", name=re.compile("^Favourite")).click()  # unstar
    page.locator(".filter-chip", has_text="All").click()
    page.locator(".filter-chip", has_text="Favourites").click()
    expect(page.locator("[data-gallery-empty]")).to_contain_text("No favourites here yet")
    expect(tiles).to_have_count(0)
    assert axe_violations(page) == []

    page.locator(".filter-chip", has_text="Uploads").click()
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_have_attribute("data-source", "upload")
    # a generation while Uploads are shown: its tiles are not added, the count still grows
    page.get_by_label("Prompt", exact=True).fill("a second batch")
    page.get_by_label("Images").fill("2")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.locator("[data-generation][data-status=completed]")).to_have_count(2)
    expect(page.locator("[data-gallery-count]")).to_have_text("6")
    expect(tiles).to_have_count(1)

    page.locator(".filter-chip", has_text="All").click()
    expect(tiles).to_have_count(6)
    page.get_by_label("Generation", exact=True).select_option(
        index=2
    )  # the first generation (older)
    expect(tiles).to_have_count(3)
    ids = tiles.evaluate_all("tiles => tiles.map(t => t.dataset.avatar)")
    assert ids == [a["id"] for a in avatars if a["source"] == "generated"]
    page.get_by_role("button", name="Select all").click()
    expect(page.get_by_role("region", name="Selected avatars")).to_contain_text("3 selected")
    page.get_by_label("Generation", exact=True).select_option(index=0)
    page.get_by_label("Sort", exact=True).select_option("oldest")
    expect(tiles.first).to_have_id(f"avatar-{avatars[-1]['id']}")
    expect(tiles).to_have_count(6)
    oldest = tiles.evaluate_all("tiles => tiles.map(t => t.dataset.avatar)")
    assert oldest[:4] == [a["id"] for a in reversed(avatars)]


def test_a_2000_avatar_project_loads_a_page_at_a_time_as_you_scroll(server, ui):
    page, _ = ui
    project_id, avatars = studio(server, generated=0, photos=1)
    clone_rows(server, avatars[0]["id"], 1999)
    page.goto(f"{server.url}/projects/{project_id}")
    tiles = page.locator("#gallery li.tile")
    expect(page.locator("[data-gallery-count]")).to_have_text("2000")
    assert tiles.count() == 60  # the first page only, on the page as sent
    more = page.locator(".gallery-more")
    loads = 0
    while more.count():
        before = tiles.count()
        more.scroll_into_view_if_needed()
        wait_for(lambda b=before: tiles.count() > b or not more.count(), timeout=20)
        loads += 1
    assert loads >= (2000 - 60) // 60
    ids = tiles.evaluate_all("tiles => tiles.map(t => t.dataset.avatar)")
    assert len(ids) == len(set(ids)) == 2000
    assert ids[0] == avatars[0]["id"]
    # the viewer's last tile is the project's last: → stops there
    tiles.last.locator(".tile-link").click()
    expect(page.locator("[data-viewer-position]")).to_have_text("2000 of 2000")
    expect(page.get_by_role("button", name="Next avatar")).to_be_disabled()


def test_the_viewer_steps_past_the_loaded_tiles_into_the_next_page(server, ui):
    page, _ = ui
    project_id, avatars = studio(server, generated=0, photos=1)
    clone_rows(server, avatars[0]["id"], 64)
    page.set_viewport_size({"width": 1280, "height": 500})  # the sentinel is out of view
    page.goto(f"{server.url}/projects/{project_id}")
    tiles = page.locator("#gallery li.tile")
    expect(tiles).to_have_count(60)
    tiles.nth(59).locator(".tile-link").click()
    expect(page.locator("[data-viewer-position]")).to_have_text("60 of 65")
    page.keyboard.press("ArrowRight")
    expect(page.locator("[data-viewer-position]")).to_have_text("61 of 65")
    expect(tiles).to_have_count(65)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width_name", ["desktop", "phone"])
def test_the_gallery_at_desktop_and_phone_width_in_light_and_dark(
    server, browser, scheme, width_name
):
    project_id, avatars = studio(server, generated=4, photos=1)
    viewport = DESKTOP if width_name == "desktop" else PHONE
    manager, page, _ = open_page(browser, viewport=viewport, color_scheme=scheme)
    try:
        page.goto(f"{server.url}/projects/{project_id}")
        name = f"gallery-{width_name}-{scheme}"
        for image in page.locator("#gallery img").all():
            image.scroll_into_view_if_needed()  # lazy: loaded once in view
            loaded(image)
        tile(page, avatars[0]).get_by_role("button", name=re.compile("^Favourite")).click()
        expect(tile(page, avatars[0]).locator("[data-star]")).to_have_attribute(
            "aria-pressed", "true"
        )
        page.get_by_role("button", name="Select", exact=True).click()
        page.get_by_role("checkbox", name=f"Select {avatars[1]['name']}").check()
        page.get_by_role("checkbox", name=f"Select {avatars[2]['name']}").check()
        bar = page.get_by_role("region", name="Selected avatars")
        expect(bar).to_contain_text("2 selected")
        bar_box = bar.bounding_box()
        assert (
            bar_box and bar_box["x"] >= 0 and bar_box["x"] + bar_box["width"] <= viewport["width"]
        )
        page.locator("#gallery-title").scroll_into_view_if_needed()
        assert axe_violations(page) == [], name
        screenshot(page, f"{name}-grid")
        page.evaluate("window.scrollTo(0, 0)")
        bar.get_by_role("button", name="Compare").click()
        compare = page.locator("#compare")
        for image in compare.locator("[data-compare-item] img").all():
            loaded(image)
        assert axe_violations(page) == [], name
        screenshot(page, f"{name}-compare", "#compare")
        page.keyboard.press("Escape")
        bar.get_by_role("button", name="Clear").click()
        tile(page, avatars[0]).locator(".tile-link").click()
        viewer = page.locator("#viewer")
        loaded(viewer.locator("[data-viewer-image]"))
        box = viewer.bounding_box()
        assert box and box["width"] <= viewport["width"]
        assert axe_violations(page) == [], name
        screenshot(page, f"{name}-viewer", "#viewer")
    finally:
        manager.__exit__(None, None, None)
