"""The queue page (cancel one, cancel all), the trash page (restore an avatar and a project, empty
it) and the Undo of a project's delete, in Chromium at desktop and phone width, light and dark.

The server runs one worker whose first image takes a minute: the first generation stays
running and the rest stay waiting, in order, for as long as a test needs."""

from __future__ import annotations

import re

import pytest
from browser import axe_violations, screenshot, watched_context
from conftest import API, Server, wait_for
from playwright.sync_api import Page, expect

TIMEOUT = 20_000
HOLD = "engine.generate=delay(60)"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LOOKS = [("desktop", DESKTOP, "light"), ("phone", PHONE, "dark")]


@pytest.fixture
def held_server(servers) -> Server:
    return servers(HOLD, LUMIKU_WORKERS="1")


def page_for(context) -> Page:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    expect.set_options(timeout=TIMEOUT)
    return page


def project(server: Server, name: str) -> str:
    status, body = server.request("POST", f"{API}/projects", {"name": name})
    assert status == 201, body
    return body["id"]


def generate(server: Server, project_id: str, prompt: str, count: int) -> dict:
    status, body = server.request(
        "POST", f"{API}/projects/{project_id}/avatars/generate", {"prompt": prompt, "count": count}
    )
    assert status == 202, body
    return body["generation"]


def status_of(server: Server, generation_id: str) -> str:
    return server.get(f"{API}/generations/{generation_id}")["generation"]["status"]


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


def check_looks(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    no_sideways_scroll(page)
    screenshot(page, name)
    assert axe_violations(page) == []


def waiting_items(page: Page):
    return page.get_by_role("region", name=re.compile("^Waiting")).get_by_role("listitem")


def toasts(page: Page):
    return expect(page.locator("#toasts"))


# ---------------------------------------------------------------- the queue


@pytest.mark.parametrize(("width", "viewport", "scheme"), LOOKS)
def test_the_queue_shows_the_line_live_and_cancels_one_then_all(
    held_server, browser, width, viewport, scheme
):
    server = held_server
    portraits = project(server, "Portraits")
    team = project(server, "Team badges")
    running = generate(server, portraits, "a slow portrait in oils", 3)
    wait_for(lambda: status_of(server, running["id"]) == "processing")
    first = generate(server, portraits, "second in the day", 2)
    second = generate(server, team, "a badge for Ana", 4)
    with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, _):
        page = page_for(context)
        page.goto(server.url + "/projects")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Queue").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Queue")
        running_list = page.get_by_role("region", name=re.compile("^Running"))
        expect(running_list).to_contain_text("a slow portrait in oils")
        expect(running_list.get_by_role("link", name="Portraits")).to_be_visible()
        expect(running_list.get_by_role("progressbar")).to_be_visible()
        expect(waiting_items(page)).to_have_count(2)
        expect(waiting_items(page).nth(0)).to_contain_text("1st in line")
        expect(waiting_items(page).nth(0)).to_contain_text("second in the day")
        expect(waiting_items(page).nth(1)).to_contain_text("2nd in line")
        expect(waiting_items(page).nth(1)).to_contain_text("Team badges")

        third = generate(server, team, "a badge for Bo", 1)  # joins the line while it is open
        expect(waiting_items(page)).to_have_count(3)
        expect(waiting_items(page).nth(2)).to_contain_text("3rd in line")
        expect(waiting_items(page).nth(2)).to_contain_text("a badge for Bo")
        check_looks(page, f"queue-{width}-{scheme}")

        waiting_items(page).nth(0).get_by_role("button", name="Cancel").click()
        toasts(page).to_contain_text("Canceled. 2 credits refunded.")
        expect(waiting_items(page)).to_have_count(2)
        expect(waiting_items(page).nth(0)).to_contain_text("a badge for Ana")
        expect(waiting_items(page).nth(0)).to_contain_text("1st in line")
        expect(waiting_items(page).nth(1)).to_contain_text("2nd in line")
        expect(page.locator("#balance")).to_contain_text(str(1000 - 3 - 4 - 1))
        assert status_of(server, first["id"]) == "canceled"

        page.get_by_role("button", name="Cancel all").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(
            "Cancel all 3 unfinished generations? 8 credits come back for the images not made yet"
        )
        dialog.get_by_role("button", name="Keep it").click()
        expect(waiting_items(page)).to_have_count(2)
        page.get_by_role("button", name="Cancel all").click()
        dialog.get_by_role("button", name="Cancel all").click()
        toasts(page).to_contain_text("Canceled 3 generations. 8 credits refunded.")
        expect(page.get_by_text("Nothing is running.")).to_be_visible()
        expect(page.get_by_text("Nothing is waiting.")).to_be_visible()
        expect(page.locator("#balance")).to_contain_text("1000")
        assert {status_of(server, g["id"]) for g in (running, second, third)} == {"canceled"}
        assert server.get("/api/queue") == {"running": [], "waiting": [], "creditRefundable": 0}
        check_looks(page, f"queue-empty-{width}-{scheme}")


# ---------------------------------------------------------------- the trash


def finished_avatars(server: Server, project_id: str, prompt: str, count: int) -> list[dict]:
    generation = generate(server, project_id, prompt, count)
    done = server.wait_generation(generation["id"])
    assert done["status"] == "completed", done
    return done["avatars"]


@pytest.mark.parametrize(("width", "viewport", "scheme"), LOOKS)
def test_the_trash_restores_an_avatar_and_a_project_and_empties(
    servers, browser, width, viewport, scheme
):
    server = servers()
    keep = project(server, "Keepers")
    kept = finished_avatars(server, keep, "a calm owl", 2)
    gone = project(server, "Old campaign")
    finished_avatars(server, gone, "a retro robot", 3)
    status, _ = server.request("DELETE", f"{API}/avatars/{kept[0]['id']}")
    assert status in (200, 204)
    status, _ = server.request("DELETE", f"{API}/projects/{gone}")
    assert status in (200, 204)
    with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, _):
        page = page_for(context)
        page.goto(server.url + "/projects")
        page.get_by_role("link", name="Trash").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Trash")
        expect(page.get_by_text(re.compile(r"stay here for 30 days"))).to_be_visible()
        projects_part = page.get_by_role("region", name=re.compile("^Projects"))
        avatars_part = page.get_by_role("region", name=re.compile("^Avatars"))
        expect(projects_part).to_contain_text("Old campaign")
        expect(projects_part).to_contain_text("3 avatars")
        expect(projects_part).to_contain_text("kept 30 more days")
        expect(avatars_part).to_contain_text(kept[0]["name"])
        expect(avatars_part.get_by_role("link", name="Keepers")).to_be_visible()
        thumbnails = page.locator("#trash img")
        expect(thumbnails).to_have_count(4)  # 3 of the project's, 1 avatar: files stay
        page.wait_for_load_state("networkidle")
        for index in range(4):
            assert thumbnails.nth(index).evaluate("img => img.complete && img.naturalWidth > 0")
        check_looks(page, f"trash-{width}-{scheme}")

        avatars_part.get_by_role("button", name="Restore").click()
        toasts(page).to_contain_text(f"Restored “{kept[0]['name']}” to “Keepers”.")
        expect(page.get_by_text("No avatars deleted on their own.")).to_be_visible()
        projects_part.get_by_role("button", name="Restore").click()
        toasts(page).to_contain_text("Restored “Old campaign”.")
        expect(page.get_by_text("The trash is empty.")).to_be_visible()
        assert server.get(f"{API}/projects/{keep}")["project"]["avatarCount"] == 2
        assert server.get(f"{API}/projects/{gone}")["project"]["avatarCount"] == 3

        page.goto(f"{server.url}/projects")
        expect(page.get_by_role("link", name="Old campaign")).to_be_visible()

        server.request("DELETE", f"{API}/avatars/{kept[1]['id']}")
        page.goto(f"{server.url}/trash")
        page.get_by_role("button", name="Empty trash").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Delete everything in the trash for good?")
        expect(dialog).to_contain_text("0 projects and 1 avatar")
        dialog.get_by_role("button", name="Empty trash").click()
        toasts(page).to_contain_text("Emptied the trash: 1 avatar deleted for good.")
        expect(page.get_by_text("The trash is empty.")).to_be_visible()
        check_looks(page, f"trash-empty-{width}-{scheme}")
        status, _ = server.request("POST", f"{API}/avatars/{kept[1]['id']}/restore")
        assert status == 409  # emptied: gone for good


# ---------------------------------------------------------------- undo a project's delete


@pytest.mark.parametrize(("width", "viewport", "scheme"), LOOKS)
def test_undo_brings_a_deleted_project_back_and_the_notice_counts_only_its_refunds(
    held_server, browser, width, viewport, scheme
):
    server = held_server
    doomed = project(server, "Doomed")
    running = generate(server, doomed, "still running", 3)
    wait_for(lambda: status_of(server, running["id"]) == "processing")
    earlier = generate(server, doomed, "canceled before the delete", 2)
    status, _ = server.request("POST", f"{API}/generations/{earlier['id']}/cancel")
    assert status == 200  # refunds 2 now: not the delete's doing
    with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, _):
        page = page_for(context)
        page.goto(f"{server.url}/projects/{doomed}")
        page.get_by_role("button", name="Delete project").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete project").click()
        expect(page).to_have_url(re.compile(r"/projects\?deleted="))
        notice = page.get_by_role("alert")
        expect(notice).to_contain_text("Deleted “Doomed”. 3 credits were refunded for unfinished")
        expect(notice).not_to_contain_text("5 credits")
        expect(notice.get_by_role("link", name="trash")).to_be_visible()
        expect(page.get_by_role("link", name="Doomed")).to_have_count(0)
        check_looks(page, f"trash-undo-notice-{width}-{scheme}")

        notice.get_by_role("button", name="Undo").click()
        expect(page).to_have_url(f"{server.url}/projects/{doomed}")
        expect(page.get_by_role("heading", level=1)).to_have_text("Doomed")
        assert status_of(server, running["id"]) == "canceled"  # canceled work stays canceled
        page.goto(f"{server.url}/projects")
        expect(page.get_by_role("link", name="Doomed")).to_be_visible()
        expect(page.get_by_role("alert")).to_have_count(0)
        page.goto(f"{server.url}/projects?deleted={doomed}")  # a stale link: no notice, no Undo
        expect(page.get_by_role("button", name="Undo")).to_have_count(0)


def test_the_nav_fits_one_line_of_a_360px_phone(servers, browser):
    server = servers()
    with watched_context(browser, viewport={"width": 360, "height": 740}) as (context, _):
        page = page_for(context)
        page.goto(server.url + "/queue")
        links = page.get_by_role("navigation", name="Main").get_by_role("link")
        expect(links).to_have_count(6)
        tops = {round(links.nth(i).bounding_box()["y"]) for i in range(6)}
        assert len(tops) == 1, f"the nav wraps onto {len(tops)} lines"
        no_sideways_scroll(page)
        screenshot(page, "queue-nav-360")
