"""The Pose Generator in a real browser: an avatar put in poses chosen from the library, the
live card grouped by pose, the export zip; the pose library's filters and imports.

Same set-up as test_browser.py: Debian's Chromium, driven by Playwright, against `lumiku serve`.
"""

from __future__ import annotations

import json
import re
import zipfile

import pytest
import test_browser
from browser import DESKTOP, PHONE, axe_violations, screenshot, watched_context
from conftest import API, Server, wait_for
from playwright.sync_api import Page, expect
from test_browser import TIMEOUT, new_project

from lumiku_local import pose_library

# the browser tests' fixtures: a server per test, a watched desktop page (on conftest's Chromium)
server = test_browser.server  # the `ui` fixture is conftest's
POSES_API = "/api/apps/pose-generator"
INSTANT = "avatar-creator:instant"


def new_avatar(server: Server, prompt: str = "a cheerful robot gardener") -> str:
    """One Instant avatar made through the API; its id once it exists."""
    project_id = new_project(server)
    status, body = server.request(
        "POST", f"{API}/projects/{project_id}/avatars/generate", {"prompt": prompt, "count": 1}
    )
    assert status == 202, body
    generation = server.wait_generation(body["generation"]["id"])
    assert generation["status"] == "completed", generation
    return generation["avatars"][0]["id"]


def instant_cost(server: Server) -> int:
    models = server.get(f"{API}/models")["models"]
    return next(model["creditCost"] for model in models if model["key"] == INSTANT)


def balance(server: Server) -> int:
    return server.get("/api/me")["creditBalance"]


def choose(page: Page, category: str, words: str) -> str:
    """Filter the library, click the first pose shown, and return its name."""
    page.get_by_role("search").get_by_label("Category").select_option(category)
    page.get_by_role("search").get_by_label("Search").fill(words)
    shown = page.locator("#pose-grid .pose-tile:visible")
    expect(shown.first).to_be_visible()
    tile = shown.first
    name = tile.locator(".pose-name").inner_text()
    tile.locator("label").click()
    expect(tile.locator("input")).to_be_checked()
    return name


def loaded(images) -> None:
    for index in range(images.count()):
        image = images.nth(index)
        wait_for(lambda image=image: image.evaluate("i => i.complete && i.naturalWidth") > 0)


def test_an_avatar_in_three_poses_on_instant_grouped_by_pose_and_exported(server, ui):
    page, _ = ui
    avatar_id = new_avatar(server)
    page.goto(f"{server.url}/avatars/{avatar_id}")
    page.get_by_role("link", name="Put in poses").click()
    expect(page).to_have_url(re.compile(rf"/poses\?avatar={avatar_id}$"))
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Poses")
    ).to_have_attribute("aria-current", "page")
    source = page.get_by_alt_text(re.compile("the avatar to put in poses"))
    loaded(source)
    generate = page.get_by_role("button", name="Generate", exact=True)
    expect(generate).to_be_disabled()
    expect(page.locator("#pose-cost")).to_have_text("Choose one or more poses in the library.")

    chosen = [
        choose(page, "gestures", "wave"),
        choose(page, "sitting", ""),
        choose(page, "action", "jump"),
    ]
    page.get_by_role("search").get_by_label("Category").select_option("")
    page.get_by_role("search").get_by_label("Search").fill("")
    expect(page.locator("[data-chosen-count]")).to_have_text("3 poses chosen")
    expect(page.locator("[data-chosen-list] button")).to_have_text(chosen)
    cost, before = instant_cost(server), balance(server)
    page.get_by_label("Variations of each pose (1–4)").fill("2")
    expect(page.locator(f'input[name=model][value="{INSTANT}"]')).to_be_checked()  # default
    expect(page.locator("#pose-cost")).to_have_text(
        f"3 × 2 = 6 images · costs {6 * cost} credits · balance after: {before - 6 * cost}"
    )
    screenshot(page, "poses-chosen-desktop")
    generate.click()

    this = page.locator("#generations [data-generation]").first
    expect(this).to_have_attribute("data-app", "pose-generator")
    expect(this).to_have_attribute("data-status", "completed")
    expect(this.locator("[data-step]")).to_have_text("6 of 6 images · 100%")
    groups = this.locator(".pose-group")
    expect(groups).to_have_count(3)
    for index, name in enumerate(chosen):
        group = groups.nth(index)
        expect(group.get_by_role("heading")).to_have_text(re.compile(rf"^{re.escape(name)} 2/2$"))
        expect(group.locator(".gen-results img")).to_have_count(2)
        loaded(group.locator(".gen-results img"))
    expect(page.locator("#balance [data-balance]")).to_have_text(str(before - 6 * cost))
    screenshot(page, "poses-generated-desktop")

    generation_id = this.get_attribute("data-generation")
    generation = server.get(f"{POSES_API}/generations/{generation_id}")["generation"]
    by_name = {pose["name"]: pose["id"] for pose in server.get(f"{POSES_API}/poses")["poses"]}
    assert generation["options"]["poseIds"] == [by_name[name] for name in chosen]
    keys = sorted(avatar["variationKey"] for avatar in generation["avatars"])
    assert keys == sorted(f"{by_name[name]}-v{n}" for name in chosen for n in range(2))

    with page.expect_download() as download:
        this.get_by_role("link", name="Export zip").click()
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        assert archive.testzip() is None
    assert manifest["count"] == 6 and manifest["missing"] == []
    pngs = sorted(name for name in names if name.endswith(".png"))
    assert sorted(entry["name"] for entry in manifest["files"]) == pngs and len(pngs) == 6
    assert sorted(entry["variationKey"] for entry in manifest["files"]) == keys


def test_a_pose_in_words_says_which_library_pose_it_used(server, ui):
    page, _ = ui
    avatar_id = new_avatar(server)
    page.goto(f"{server.url}/poses?avatar={avatar_id}")
    page.get_by_text("Describe the pose in words").click()
    expect(page.locator("[data-chosen-count]")).to_be_hidden()
    page.get_by_label("The pose in words", exact=True).fill("waving hello with one hand")
    page.get_by_label("Variations (1–8)", exact=True).fill("3")
    cost = instant_cost(server)
    expect(page.locator("#pose-cost")).to_contain_text(f"3 images · costs {3 * cost} credits")
    page.get_by_role("button", name="Generate", exact=True).click()
    this = page.locator("#generations [data-generation]").first
    expect(this).to_have_attribute("data-status", "completed")
    generation = server.get(f"{POSES_API}/generations/{this.get_attribute('data-generation')}")
    options = generation["generation"]["options"]
    name = server.get(f"{POSES_API}/poses?q={options['matchedPoseId']}")["poses"][0]["name"]
    words = ", ".join(f"“{word}”" for word in options["matchedWords"])
    assert options["matchedWords"], options
    expect(this.locator(".gen-pose-words")).to_have_text(
        f"“waving hello with one hand”: used the library pose {name} (it matched {words})"
    )
    expect(this.locator(".pose-group")).to_have_count(1)
    expect(this.locator(".pose-group .gen-results img")).to_have_count(3)


def openpose_file(pose_id: str, size: int = 512) -> bytes:
    """A library pose as another tool exports it: pixels on a canvas, a confidence per point."""
    pose = pose_library.find(pose_id)
    values = []
    for x, y, visible in pose.keypoints:
        values += [x * size, y * size, 0.9] if visible else [0, 0, 0]
    document = {
        "canvas_width": size,
        "canvas_height": size,
        "people": [{"pose_keypoints_2d": values}],
    }
    return json.dumps(document).encode()


def test_the_library_filters_and_imports_an_openpose_file(server, ui, tmp_path):
    page, watch = ui
    watch.allow("status of 422")
    page.goto(f"{server.url}/poses")
    library = server.get(f"{POSES_API}/poses")["poses"]
    tiles = page.locator("#pose-grid .pose-tile")
    expect(tiles).to_have_count(len(library))
    expect(page.locator("[data-pose-shown]")).to_have_text(str(len(library)))
    page.get_by_role("search").get_by_label("Category").select_option("sitting")
    sitting = server.get(f"{POSES_API}/poses?category=sitting")["poses"]
    expect(page.locator("#pose-grid .pose-tile:visible")).to_have_count(len(sitting))
    page.get_by_role("search").get_by_label("Search").fill("zzz no such pose")
    expect(page.get_by_text("No pose matches")).to_be_visible()
    page.get_by_role("search").get_by_label("Search").fill("")
    page.get_by_role("search").get_by_label("Category").select_option("")
    loaded(page.locator("#pose-grid img").first)

    page.get_by_text("Import an OpenPose file").click()
    bad = tmp_path / "broken.json"
    bad.write_bytes(b'{"people": [{"pose_keypoints_2d": [1, 2]}]}')
    page.get_by_label("OpenPose JSON file").set_input_files(str(bad))
    page.get_by_role("button", name="Import pose").click()
    expect(page.locator("[data-pose-import] [role=alert]")).to_be_visible()
    assert len(server.get(f"{POSES_API}/poses")["poses"]) == len(library)  # nothing written

    good = tmp_path / "my stretch.json"
    good.write_bytes(openpose_file("action-jumping"))
    page.get_by_label("OpenPose JSON file").set_input_files(str(good))
    page.get_by_label("Its category").select_option("action")
    page.get_by_role("button", name="Import pose").click()
    expect(page.locator("#toasts")).to_contain_text("Imported “my stretch”.")
    expect(tiles).to_have_count(len(library) + 1)
    imported = tiles.last
    expect(imported.locator(".pose-name")).to_have_text("my stretch")
    expect(imported.locator(".pose-badge")).to_have_text("Imported")
    loaded(imported.locator("img"))
    expect(page.locator("[data-pose-import] [role=alert]")).to_have_count(0)
    assert [p["name"] for p in server.get(f"{POSES_API}/poses?category=action")["poses"]][-1] == (
        "my stretch"
    )


def test_generate_without_enough_credits_is_a_clear_message(client):
    from lumiku_local.models import User

    project_id = client.project()
    generation = client.generate(project_id, count=1)["generation"]
    avatar_id = client.wait_generation(generation["id"])["avatars"][0]["id"]
    User.update(credit_balance=1).execute()
    response = client.post(
        "/ui/poses/generate",
        data={
            "avatar": avatar_id,
            "mode": "gallery",
            "poseIds": ["sitting-chair", "action-jumping"],
        },
        headers={"hx-request": "true"},
    )
    assert response.status_code == 402
    assert 'role="alert"' in response.text and "credits" in response.text
    assert client.balance() == 1


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_pose_pages_pass_axe_at_desktop_and_phone_width(server, browser, scheme):
    avatar_id = new_avatar(server)
    status, body = server.request(
        "POST",
        f"{POSES_API}/generate",
        {"avatarId": avatar_id, "poseIds": ["gesture-wave", "sitting-chair"], "variations": 2},
    )
    assert status == 202, body
    server.wait_generation(body["generation"]["id"])
    pages = {"poses": "/poses", "poses-avatar": f"/poses?avatar={avatar_id}"}
    problems: dict[str, list[str]] = {}
    for width_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, _):
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            for name, path in pages.items():
                page.goto(server.url + path)
                page.wait_for_load_state("networkidle")
                if name == "poses-avatar":
                    page.locator("#pose-grid label").nth(2).click()
                    page.locator("#pose-grid label").nth(5).click()
                    expect(page.locator("[data-chosen-count]")).to_have_text("2 poses chosen")
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                if overflow > 0:
                    problems.setdefault(f"{name} {width_name}", []).append(
                        f"scrolls sideways by {overflow}px"
                    )
                screenshot(page, f"{name}-{width_name}-{scheme}")
                problems.setdefault(f"{name} {width_name}", []).extend(axe_violations(page))
    assert {name: found for name, found in problems.items() if found} == {}
