"""Remote models in a real browser: the Models page once a token is set, then a generation on
Hugging Face Inference Providers (the emulated router) with its live card.

The server is a `lumiku serve` subprocess pointed at tests/hub_server.py's Hub and router; the
token goes into a temp HF_HOME, never this machine's.
"""

from __future__ import annotations

import re

from browser import axe_violations, screenshot
from conftest import API, Server
from hub_server import HubServer
from playwright.sync_api import expect

TOKEN = "hf_BrowserRemoteToken1"
REPO = "black-forest-labs/FLUX.1-schnell"
ROW = "#model-avatar-creator-hf-flux-schnell"


def test_a_remote_model_is_available_once_a_token_is_set_and_makes_live_cards(
    ui, tmp_path, monkeypatch
):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    page, _ = ui
    with HubServer(token=TOKEN) as hub:
        hub.add_inference_model(REPO, {"hf-inference": "text-to-image"})
        server = Server(
            tmp_path / "home",
            LUMIKU_HF_ENDPOINT=hub.url,
            LUMIKU_HF_INFERENCE_ENDPOINT=hub.url,
            HF_HOME=str(tmp_path / "hf-home"),
        )
        try:
            page.goto(f"{server.url}/models")
            row = page.locator(ROW)
            expect(row).to_contain_text("Runs on Hugging Face")
            expect(row).to_contain_text("needs the internet")
            expect(row).to_contain_text("bills your token's account")
            expect(row.locator("[data-remote-problem]")).to_contain_text("access token")
            screenshot(page, "models-remote-without-token", ROW)

            page.get_by_role("textbox", name="Access token").fill(TOKEN)
            page.get_by_role("button", name="Save token").click()
            expect(page.locator("#toasts")).to_contain_text("Token saved")
            expect(row).to_contain_text("Available")  # the row came with the token's answer
            expect(row.locator("[data-remote-provider]")).to_have_text("hf-inference")
            assert axe_violations(page) == []
            screenshot(page, "models-remote-available")

            status, project = server.request("POST", f"{API}/projects", {"name": "Remote"})
            assert status == 201, project
            hub.hold_inference = lambda call: True  # the card shows them on their way
            page.goto(f"{server.url}/projects/{project['id']}")
            choice = page.get_by_label(re.compile("FLUX.1-schnell on Hugging Face"))
            choice.check()
            page.get_by_label("Prompt", exact=True).fill("a lighthouse keeper, oil painting")
            page.get_by_label("Images").fill("2")
            page.get_by_label("Size", exact=True).select_option("256")
            expect(page.locator("#cost")).to_contain_text("Costs 12 credits")
            page.get_by_role("button", name="Generate", exact=True).click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_role("heading")).to_have_text("Send your prompt to Hugging Face?")
            expect(dialog).to_contain_text("your prompt")
            expect(dialog).to_contain_text("Nothing else leaves this computer")
            screenshot(page, "project-remote-consent")
            assert hub.inference_calls == []  # nothing sent before the yes
            dialog.get_by_role("button", name="Send to Hugging Face").click()

            card = page.locator("[data-generation]").first
            expect(card).to_have_attribute("data-status", re.compile("pending|processing"))
            hub.wait_held(2)
            screenshot(page, "project-remote-live-card")
            hub.release_inference()
            expect(card).to_have_attribute("data-status", "completed")
            expect(card.locator(".gen-results img")).to_have_count(2)
            expect(page.locator("#gallery li.tile")).to_have_count(2)
            expect(page.locator("#balance")).to_contain_text("988")
            screenshot(page, "project-remote-done")
            assert sorted(hub.inference_seeds()) == sorted({s for s in hub.inference_seeds()})

            # the yes is remembered: the next generation asks nothing
            page.get_by_role("button", name="Generate", exact=True).click()
            expect(page.locator("[data-generation]")).to_have_count(2)
            expect(page.locator("[data-generation]").first).to_have_attribute(
                "data-status", "completed"
            )
            assert len(hub.inference_calls) == 4
        finally:
            page.close()  # before the server goes: its open event stream would be cut
            server.kill()
