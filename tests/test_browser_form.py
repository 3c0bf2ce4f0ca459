"""The generate form in a real browser: "Use these settings", recent prompts, Ctrl+Enter, the
style search, the negative prompt, and the project page's rough edges (new card into view on a
phone, More like this with its cost, anchors below the sticky header, the capped Generations
column, the tab title after a rename), at desktop and phone width, light and dark, axe-clean."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from browser import DESKTOP, axe_violations, screenshot, watched_context
from conftest import API, Server
from playwright.sync_api import Page, expect

TIMEOUT = 20_000
PHONE = {"width": 390, "height": 844}
LOOKS = [
    pytest.param(DESKTOP, "light", id="desktop-light"),
    pytest.param(DESKTOP, "dark", id="desktop-dark"),
    pytest.param(PHONE, "light", id="phone-light"),
    pytest.param(PHONE, "dark", id="phone-dark"),
]


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path / "home")
    yield started
    started.kill()


@contextmanager
def opened(browser, viewport=DESKTOP, scheme="light"):
    with watched_context(browser, viewport=viewport, color_scheme=scheme) as (context, watch):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        expect.set_options(timeout=TIMEOUT)
        yield page, watch


def name_of(viewport, scheme) -> str:
    return f"{'phone' if viewport is PHONE else 'desktop'}-{scheme}"


def new_project(server: Server, name: str = "Portraits") -> str:
    status, body = server.request("POST", f"{API}/projects", {"name": name})
    assert status == 201, body
    return body["id"]


def generated(server: Server, project_id: str, **body) -> dict:
    body.setdefault("prompt", "a friendly astronaut")
    status, answer = server.request("POST", f"{API}/projects/{project_id}/avatars/generate", body)
    assert status == 202, answer
    return server.wait_generation(answer["generation"]["id"])


def assert_clean(page: Page) -> None:
    assert axe_violations(page) == []


def below_header(page: Page, locator) -> None:
    """The element's top is on screen and not under the sticky header (once a smooth scroll
    has ended: waited for, up to the timeout)."""
    locator.evaluate(
        """(element) => new Promise((resolve, reject) => {
          const deadline = performance.now() + 10000;
          const check = () => {
            const header = document.querySelector(".topbar").getBoundingClientRect().bottom;
            const top = element.getBoundingClientRect().top;
            if (top >= header && top < innerHeight) resolve();
            else if (performance.now() > deadline) reject(new Error(`top ${top} < ${header}`));
            else requestAnimationFrame(check);
          };
          check();
        })"""
    )


# ---------------------------------------------------------------- use these settings


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_use_these_settings_fills_the_form(browser, server, viewport, scheme):
    project = new_project(server)
    source = generated(
        server,
        project,
        prompt="a calm owl",
        style="pixel-art",
        count=3,
        seed=1234,
        width=384,
        height=384,
    )
    with opened(browser, viewport, scheme) as (page, _):
        page.goto(f"{server.url}/projects/{project}")
        form = page.locator("#generate")
        page.get_by_label("Images").fill("1")
        page.evaluate("window.sameDocument = true")  # gone if the click reloaded the page
        page.locator(f"#generation-{source['id']}").get_by_role(
            "link", name="Use these settings"
        ).click()
        expect(page.get_by_label("Prompt", exact=True)).to_have_value("a calm owl")
        expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
        expect(page.get_by_label("Images")).to_have_value("3")
        expect(page.get_by_label("Seed (optional)")).to_have_value("1234")
        expect(page.get_by_label("Size", exact=True)).to_have_value("384")
        expect(form.locator("input[name=style][value=pixel-art]")).to_be_checked()
        expect(form.locator("[data-style-name]")).to_have_text("Pixel Art")
        expect(form.locator("[data-reuse-note]")).to_contain_text("Filled in with the settings")
        assert page.evaluate("window.sameDocument") is True
        below_header(page, page.locator("#generate-title"))
        assert_clean(page)
        screenshot(page, f"form-reuse-{name_of(viewport, scheme)}", "#generate")
        # from the avatar page: the project page opens with the form filled by the server
        avatar = next(a for a in source["avatars"] if a["variationKey"] == "v1")
        page.goto(f"{server.url}/avatars/{avatar['id']}")
        page.get_by_role("link", name="Use these settings").click()
        expect(page).to_have_url(re.compile(rf"\?reuse=avatar:{avatar['id']}#generate-title$"))
        expect(page.get_by_label("Seed (optional)")).to_have_value(str(avatar["seed"]))
        expect(page.get_by_label("Prompt", exact=True)).to_have_value("a calm owl")
        below_header(page, page.locator("#generate-title"))
        assert_clean(page)


# ---------------------------------------------------------------- keyboard and pickers


def test_ctrl_enter_generates_once(browser, server):
    project = new_project(server)
    with opened(browser, scheme="dark") as (page, _):
        page.goto(f"{server.url}/projects/{project}")
        expect(page.locator("[data-shortcut-hint]")).to_contain_text("Ctrl + Enter")
        prompt = page.get_by_label("Prompt", exact=True)
        prompt.fill("a knight in the rain")
        page.get_by_label("Images").fill("2")
        prompt.press("Control+Enter")
        expect(page.locator("[data-generation]")).to_have_count(1)
        expect(page.locator("#toasts")).to_contain_text("Started 2 avatars")
        # two presses in one moment: the second finds the first still in flight
        page.evaluate(
            """() => {
              const prompt = document.getElementById("prompt");
              for (const meta of [false, true]) prompt.dispatchEvent(new KeyboardEvent("keydown",
                {key: "Enter", ctrlKey: !meta, metaKey: meta, bubbles: true, cancelable: true}));
            }"""
        )
        expect(page.locator("[data-generation]")).to_have_count(2)
        expect(page.get_by_role("button", name="Generate", exact=True)).to_be_enabled()
        status, body = server.request("GET", f"{API}/projects/{project}/generations")
        assert len(body["generations"]) == 2
        assert_clean(page)


@pytest.mark.parametrize(("viewport", "scheme"), [LOOKS[0], LOOKS[3]])
def test_style_search_and_readable_names(browser, server, viewport, scheme):
    project = new_project(server)
    with opened(browser, viewport, scheme) as (page, _):
        page.goto(f"{server.url}/projects/{project}")
        page.locator(".styles summary").click()
        search = page.get_by_label("Find a style")
        search.fill("pixel art")
        visible = page.locator(".style-choice:visible")
        expect(visible).to_have_text(["Pixel Art", "Pixel Art Neutral"])
        expect(page.locator("[data-style-matches]")).to_have_text(re.compile(r"^2 of \d+ styles$"))
        search.fill("adventurer neutral")
        expect(visible).to_have_text(["Adventurer Neutral"])
        search.press("Enter")  # the only match is chosen; nothing is submitted
        expect(page.locator("[data-style-name]")).to_have_text("Adventurer Neutral")
        expect(page.locator("input[name=style][value=adventurer-neutral]")).to_be_checked()
        search.fill("no such thing")
        expect(visible).to_have_count(0)
        expect(page.locator("[data-style-matches]")).to_have_text(
            "No style matches “no such thing”"
        )
        search.fill("")
        assert_clean(page)
        screenshot(page, f"form-styles-{name_of(viewport, scheme)}", "[data-styles]")
        assert page.locator("[data-generation]").count() == 0


def test_recent_prompts_fill_the_prompt_from_the_keyboard(browser, server):
    project = new_project(server)
    generated(server, project, prompt="a sleepy cat", count=1)
    generated(server, project, prompt="a brave fox", count=1)
    with opened(browser) as (page, _):
        page.goto(f"{server.url}/projects/{project}")
        recent = page.get_by_label("Recent prompts")
        expect(recent.locator("option")).to_have_text(
            ["Recent prompts…", "a brave fox", "a sleepy cat"]
        )
        recent.focus()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        expect(page.get_by_label("Prompt", exact=True)).to_have_value("a sleepy cat")
        # what is generated joins the list at the top
        page.get_by_label("Prompt", exact=True).fill("a tall giraffe")
        page.get_by_role("button", name="Generate", exact=True).click()
        expect(page.locator("[data-generation]")).to_have_count(3)
        expect(recent.locator("option").nth(1)).to_have_text("a tall giraffe")
        assert_clean(page)


def test_negative_prompt_only_for_diffusion_models(browser, tmp_path):
    from tiny_pipeline import add_to_catalog, tiny_model_files, write_hf_cache

    cache = tmp_path / "hf-cache"
    write_hf_cache(tiny_model_files(), cache, repo_id="lumiku-test/tiny-form")
    home = tmp_path / "home"
    server = Server(home, LUMIKU_HF_CACHE_DIR=str(cache), LUMIKU_DEVICE="cpu")
    try:
        add_to_catalog(
            "avatar-creator:tiny-form", "lumiku-test/tiny-form", database=home / "lumiku.db"
        )
        project = new_project(server)
        with opened(browser, scheme="dark") as (page, _):
            page.goto(f"{server.url}/projects/{project}")
            negative = page.get_by_label("Negative prompt")
            expect(negative).to_be_hidden()  # the Instant model is chosen
            page.get_by_text("Tiny test model").click()
            expect(negative).to_be_visible()
            expect(page.locator("[data-styles]")).to_be_hidden()  # the Instant model's
            expect(page.locator("#negative-help")).to_have_text(
                "Tiny test model draws in a few steps without guidance, so it ignores a "
                "negative prompt."
            )
            negative.fill("blurry, text")
            page.get_by_label("Prompt", exact=True).fill("a lighthouse")
            page.get_by_label("Images").fill("1")
            page.get_by_role("button", name="Generate", exact=True).click()
            expect(page.locator("[data-generation]")).to_have_count(1)
            generation_id = page.locator("[data-generation]").first.get_attribute("data-generation")
            assert_clean(page)
            screenshot(page, "form-negative-desktop-dark", "#generate")
            done = server.wait_generation(generation_id, timeout=60)
            assert done["options"]["negativePrompt"] == "blurry, text"
            page.get_by_text("Instant (DiceBear)").click()
            expect(negative).to_be_hidden()
    finally:
        server.kill()


# ---------------------------------------------------------------- rough edges 1, 2, 7, 12


@pytest.mark.parametrize(("viewport", "scheme"), [LOOKS[2], LOOKS[3]])
def test_on_a_phone_the_new_card_comes_into_view(browser, server, viewport, scheme):
    project = new_project(server)
    with opened(browser, viewport, scheme) as (page, _):
        page.goto(f"{server.url}/projects/{project}")
        page.get_by_label("Prompt", exact=True).fill("a friendly astronaut")
        page.get_by_label("Images").fill("2")
        page.get_by_role("button", name="Generate", exact=True).click()
        card = page.locator("[data-generation]").first
        expect(card).to_be_visible()
        expect(card).to_have_attribute("data-status", "completed")
        expect(page.locator("#toasts .toast")).to_have_count(1)
        heading = page.get_by_role("heading", name="Generations")
        page.wait_for_function(  # the smooth scroll has ended: the heading is at the top
            """() => {
              const top = document.getElementById("generations-title").getBoundingClientRect().top;
              return top >= 0 && top < innerHeight / 2;
            }"""
        )
        expect(page.locator("#gallery li.tile")).to_have_count(2)  # all arrived: nothing moves
        below_header(page, heading)
        box, viewport_height = card.bounding_box(), page.viewport_size["height"]
        assert box["y"] < viewport_height, box  # the card starts on screen
        toast = page.locator("#toasts .toast").bounding_box()
        title = heading.bounding_box()
        assert toast["y"] >= title["y"] + title["height"], (toast, title)  # not over it
        assert_clean(page)
        # what the phone's screen shows (a full-page shot would move the sticky header)
        page.screenshot(path=str(screenshot(page, f"form-phone-card-{scheme}")), full_page=False)


@pytest.mark.parametrize(("viewport", "scheme"), [LOOKS[0], LOOKS[3]])
def test_more_like_this_shows_its_cost_and_lands_below_the_header(
    browser, server, viewport, scheme
):
    project = new_project(server)
    source = generated(server, project, count=3)
    with opened(browser, viewport, scheme) as (page, _):
        page.goto(f"{server.url}/avatars/{source['avatars'][0]['id']}")
        more = page.get_by_role("button", name=re.compile("More like this"))
        expect(more).to_have_text(re.compile(r"More like this · 3 credits$"))
        more.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(
            "Make 3 more like this for 3 credits? Your balance after: 994."
        )
        assert_clean(page)
        screenshot(page, f"form-more-confirm-{name_of(viewport, scheme)}")
        dialog.get_by_role("button", name="Cancel").click()
        assert server.get("/api/me")["creditBalance"] == 997  # nothing spent
        more.click()
        dialog.get_by_role("button", name="Make 3 for 3 credits").click()
        expect(page).to_have_url(re.compile(r"/projects/[^#]+#generation-[0-9a-f]+$"))
        generation_id = page.url.rsplit("#generation-", 1)[1]
        title = page.locator(f"#generation-{generation_id}-title")
        expect(title).to_be_visible()
        expect(page.locator(f"#generation-{generation_id}")).to_have_attribute(
            "data-status", "completed"
        )  # its images arrived: the card grew, its title stays below the header
        below_header(page, page.locator(f"#generation-{generation_id}"))
        assert server.get("/api/me")["creditBalance"] == 994


@pytest.mark.parametrize(("viewport", "scheme"), [LOOKS[1], LOOKS[2]])
def test_a_model_link_lands_below_the_header(browser, server, viewport, scheme):
    with opened(browser, viewport, scheme) as (page, _):
        page.goto(f"{server.url}/models#model-avatar-creator-sd-turbo")
        below_header(page, page.locator("#model-avatar-creator-sd-turbo"))


@pytest.mark.parametrize(("viewport", "scheme"), [LOOKS[1], LOOKS[2]])
def test_the_generations_column_shows_the_newest_and_older_on_request(
    browser, server, viewport, scheme
):
    project = new_project(server)
    for n in range(6):
        generated(server, project, prompt=f"portrait {n}", count=1)
    with opened(browser, viewport, scheme) as (page, _):
        page.goto(f"{server.url}/projects/{project}")
        cards = page.locator("#generations [data-generation]")
        expect(cards.locator("visible=true")).to_have_count(4)
        expect(page.locator("#generations [data-generation]:visible h3")).to_have_text(
            [f"portrait {n}" for n in (5, 4, 3, 2)]
        )
        older = page.get_by_role("button", name="Show 2 older generations")
        assert_clean(page)
        screenshot(page, f"form-generations-cap-{name_of(viewport, scheme)}")
        older.click()
        expect(cards.locator("visible=true")).to_have_count(6)
        expect(older).to_be_hidden()
        expect(
            page.locator("#generation-" + cards.nth(4).get_attribute("data-generation") + "-title")
        ).to_be_focused()
        assert_clean(page)


def test_renaming_retitles_the_tab_and_errors_use_the_forms_words(browser, server):
    project = new_project(server, "Draft")
    with opened(browser) as (page, watch):
        watch.allow("status of 422")
        page.goto(f"{server.url}/projects/{project}")
        expect(page).to_have_title("Draft · Lumiku Local")
        page.get_by_text("Rename").click()
        page.get_by_label("New name").fill("Team portraits")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Team portraits")
        expect(page).to_have_title("Team portraits · Lumiku Local")
        # past the field's own limit (a typed-in 9): the server's words name the same field
        page.get_by_label("Prompt", exact=True).fill("x")
        page.get_by_label("Images").evaluate(
            "input => { input.removeAttribute('max'); input.value = '9'; }"
        )
        page.get_by_role("button", name="Generate", exact=True).click()
        expect(page.locator("#generate [role=alert]")).to_have_text(
            "Images must be between 1 and 8."
        )
