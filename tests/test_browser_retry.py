"""Retry as a person sees it (issue 12, rough edge 3): a batch that delivered 3 of 8 offers to
finish the missing 5 with their own seeds, charged 5, beside a new batch; each button says its
cost; a deleted project's generation offers no retry at all."""

from __future__ import annotations

import pytest
from browser import DESKTOP, PHONE, axe_violations, screenshot, watched_context
from conftest import API, Server
from playwright.sync_api import expect

TIMEOUT = 30_000
# the 4th image fails on each of the 3 attempts, then the engine works again: the batch of 8
# fails with v0-v2 delivered and 5 refunded
PARTIAL = "engine.generate=error@4*3"


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path / "home", PARTIAL)
    yield started
    started.kill()


def partial_batch(server: Server) -> tuple[str, str, dict]:
    status, project = server.request("POST", f"{API}/projects", {"name": "Retries"})
    assert status == 201
    status, body = server.request(
        "POST",
        f"{API}/projects/{project['id']}/avatars/generate",
        {"prompt": "a lighthouse keeper", "count": 8, "seed": 500},
    )
    assert status == 202, body
    done = server.wait_generation(body["generation"]["id"], timeout=60)
    assert done["status"] == "failed" and done["countCompleted"] == 3, done
    return project["id"], done["id"], done


@pytest.mark.parametrize(
    ("viewport", "scheme"), [(DESKTOP, "light"), (PHONE, "dark")], ids=["desktop", "phone-dark"]
)
def test_finish_the_missing_five_charges_five_and_keeps_their_seeds(
    server, browser, viewport, scheme
):
    project_id, generation_id, done = partial_batch(server)
    assert done["missingCount"] == 5
    balance = server.get("/api/me")["creditBalance"]
    assert balance == 1000 - 8 + 5
    with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, _):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{server.url}/projects/{project_id}")
        card = page.locator(f"#generation-{generation_id}")
        finish = card.get_by_role("button", name="Finish the missing 5")
        expect(finish).to_contain_text("5 credits")
        expect(card.get_by_role("button", name="New batch of 8")).to_contain_text("8 credits")
        assert axe_violations(page) == []
        screenshot(
            page, f"retry-missing-{scheme}-{viewport['width']}", f"#generation-{generation_id}"
        )
        finish.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("5 missing images")
        expect(dialog).to_contain_text("5 credits")
        dialog.get_by_role("button", name="Finish them").click()
        expect(page.locator("#toasts")).to_contain_text("the missing 5")
        expect(page.locator("#balance")).to_contain_text(str(balance - 5))
        newest = page.locator("[data-generation]").first
        expect(newest).to_have_attribute("data-status", "completed")
        retried = server.get(f"{API}/generations/{newest.get_attribute('data-generation')}")
    made = sorted((a["variationKey"], a["seed"]) for a in retried["generation"]["avatars"])
    assert made == [(f"v{n}", 500 + n) for n in range(3, 8)]
    assert server.get("/api/me")["creditBalance"] == balance - 5


def test_a_deleted_projects_generation_offers_no_retry(server, browser):
    project_id, generation_id, _ = partial_batch(server)
    status, _ = server.request("DELETE", f"{API}/projects/{project_id}")
    assert status == 204
    with watched_context(browser, viewport=DESKTOP) as (context, _):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{server.url}/generations/{generation_id}")
        card = page.locator(f"#generation-{generation_id}")
        expect(card).to_be_visible()
        expect(card.get_by_role("button", name="Finish the missing")).to_have_count(0)
        expect(card.get_by_role("button", name="Retry")).to_have_count(0)
        expect(card.get_by_role("button", name="New batch")).to_have_count(0)
