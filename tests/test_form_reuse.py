"""Generating again: "Use these settings" read from the rows, recent prompts, the negative prompt
(stored, carried, and through the tiny diffusion pipeline into the images), and the form's and
the server's words for the same mistakes."""

from __future__ import annotations

import html
import io
import re

import pytest
from conftest import API, make_settings
from PIL import Image
from test_references import look_alike_style, upload
from tiny_pipeline import (
    NUMPY_COPY_WARNING,
    add_to_catalog,
    build_pipeline,
    force_hub_offline,
    save_to_hf_cache,
)

from lumiku_local import generations, reuse
from lumiku_local.models import AvatarGeneration
from lumiku_local.png_parameters import read_parameters

TINY_KEY = "avatar-creator:tiny-reuse"
TINY_REPO = "lumiku-test/tiny-sd-reuse"


def settings_of(client, path: str, expect: int = 200) -> dict:
    response = client.get(f"{API}/{path}/settings")
    assert response.status_code == expect, response.text
    return response.json()["settings"] if expect == 200 else response.json()["error"]


def form_of(client, project: str, reuse_link: str) -> str:
    response = client.get(f"/projects/{project}", params={"reuse": reuse_link})
    assert response.status_code == 200, response.text
    return response.text


def field(page: str, pattern: str) -> str:
    found = re.search(pattern, page, re.S)
    assert found, pattern
    return html.unescape(found.group(1))


# ---------------------------------------------------------------- use these settings


def test_a_generations_settings_are_its_request(client):
    project = client.project()
    body = client.generate(
        project, prompt="a calm owl", style="pixel-art", count=3, seed=4242, width=384, height=384
    )
    generation = client.wait_generation(body["generation"]["id"])
    settings = settings_of(client, f"generations/{generation['id']}")
    assert settings == {
        "projectId": project,
        "prompt": "a calm owl",
        "modelKey": "avatar-creator:instant",
        "count": 3,
        "seed": 4242,
        "size": 384,
        "style": "pixel-art",
        "presetId": None,
        "negativePrompt": "",
        "referenceAvatarId": None,
        "likeness": None,
        "photoGone": False,
    }
    # an avatar's start at its own seed: the form's first image is that avatar again
    third = next(a for a in generation["avatars"] if a["variationKey"] == "v2")
    of_avatar = settings_of(client, f"avatars/{third['id']}")
    assert of_avatar == {**settings, "seed": 4244}


def test_the_page_fills_the_form_from_the_rows(client):
    project = client.project()
    presets = client.get(f"{API}/presets").json()["presets"]
    pixel = next(p for p in presets if p["slug"] == "pixel-retro")
    body = client.generate(
        project, prompt="robot", presetId=pixel["id"], count=2, seed=77, width=256, height=256
    )
    generation = client.wait_generation(body["generation"]["id"])
    page = form_of(client, project, generation["id"])
    assert field(page, r'<textarea id="prompt"[^>]*>(.*?)</textarea>') == generation["prompt"]
    assert field(page, r'<input id="count"[^>]*value="(\d+)"') == "2"
    assert field(page, r'<input id="seed"[^>]*value="(\d+)"') == "77"
    assert field(page, r'<option value="(\d+)" selected>') == "256"
    assert field(page, r'value="([a-z-]+)" checked>\s*<img') == "pixel-art"
    assert field(page, r'value="(preset-\d+)"[^>]*selected') == f"preset-{pixel['id']}"
    assert "Filled in with the settings of an earlier generation" in page
    assert "Pixel Art" in page  # the style picker's readable names
    avatar = generation["avatars"][1]
    page = form_of(client, project, f"avatar:{avatar['id']}")
    assert field(page, r'<input id="seed"[^>]*value="(\d+)"') == str(avatar["seed"])
    # without ?reuse= the form starts as always
    plain = client.get(f"/projects/{project}").text
    assert field(plain, r'<input id="count"[^>]*value="(\d+)"') == "4"
    assert 'data-reuse-note role="status" data-words' in plain and "Filled in with" not in re.sub(
        r'data-words="[^"]*"', "", plain
    )


def test_a_photo_is_offered_again_only_while_it_is_live(client):
    project = client.project()
    me = upload(client, project)
    style = look_alike_style(client)
    body = client.generate(project, style=style, referenceAvatarId=me["id"], likeness=0.35)
    generation = client.wait_generation(body["generation"]["id"])
    settings = settings_of(client, f"generations/{generation['id']}")
    assert settings["referenceAvatarId"] == me["id"] and settings["likeness"] == 0.35
    page = form_of(client, project, generation["id"])
    assert field(page, rf'value="{me["id"]}"[^>]*?(checked)') == "checked"
    assert field(page, r'id="likeness"[^>]*value="(\d+)"') == "35"
    assert client.delete(f"{API}/avatars/{me['id']}").status_code == 204
    settings = settings_of(client, f"generations/{generation['id']}")
    assert settings["referenceAvatarId"] is None and settings["likeness"] is None
    assert settings["photoGone"] is True
    assert "Its photo was deleted since" in form_of(client, project, generation["id"])


def test_what_has_no_settings_says_so(client):
    project = client.project()
    me = upload(client, project)
    error = settings_of(client, f"avatars/{me['id']}", expect=422)
    assert "uploaded photo has no settings" in error["message"]
    assert settings_of(client, "avatars/nope", expect=404)["code"] == "not_found"
    assert settings_of(client, "generations/nope", expect=404)["code"] == "not_found"
    page = form_of(client, project, "avatar:nope")  # a stale link: the page, with a word
    assert "Those settings could not be used: No avatar has that id." in page


def test_the_settings_routes_are_documented(client):
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert f"{API}/generations/{{generation_id}}/settings" in paths
    assert f"{API}/avatars/{{avatar_id}}/settings" in paths
    assert f"{API}/prompts/recent" in paths
    body = paths[f"{API}/projects/{{project_id}}/avatars/generate"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    ref = schema["$ref"].rsplit("/", 1)[-1]
    components = client.get("/schema/openapi.json").json()["components"]["schemas"]
    assert "negativePrompt" in components[ref]["properties"]


# ---------------------------------------------------------------- recent prompts


def test_recent_prompts_are_the_last_ten_distinct(client):
    project = client.project()
    for n in range(12):
        client.generate(project, prompt=f"prompt {n}", count=1)
    client.generate(project, prompt="prompt 3", count=1)  # again: now the newest
    gone = client.project("Trash me")
    client.generate(gone, prompt="in a deleted project", count=1)
    assert client.delete(f"{API}/projects/{gone}").status_code == 204
    expected = ["prompt 3"] + [f"prompt {n}" for n in (11, 10, 9, 8, 7, 6, 5, 4, 2)]
    assert client.get(f"{API}/prompts/recent").json() == {"prompts": expected}
    page = client.get(f"/projects/{project}").text
    menu = field(page, r"<select data-recent-prompts[^>]*>(.*?)</select>")
    assert re.findall(r'<option value="([^"]+)"', menu) == expected


def test_no_recent_prompts_no_menu(client):
    assert reuse.recent_prompts(1) == []
    assert "data-recent-prompts" not in client.get(f"/projects/{client.project()}").text


# ---------------------------------------------------------------- the same words as the form


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"count": 9}, "Images must be between 1 and 8."),
        ({"count": 0}, "Images must be between 1 and 8."),
        ({"seed": -1}, f"Seed must be between 0 and {generations.MAX_SEED - 8}."),
        ({"width": 5000}, "Size must be between 64 and 1024 pixels (the width was 5000)."),
    ],
)
def test_the_server_names_the_forms_fields(client, body, message):
    project = client.project()
    response = client.post(
        f"{API}/projects/{project}/avatars/generate", json={"prompt": "x", **body}
    )
    assert response.status_code == 422 and response.json()["error"]["message"] == message
    form = {"prompt": "x", "count": str(body.get("count", 1))}
    if "seed" in body:
        form["seed"] = str(body["seed"])
    if "width" in body:
        form["size"] = str(body["width"])
    page = client.post(
        f"/ui/projects/{project}/generate", data=form, headers={"HX-Request": "true"}
    )
    assert page.status_code == 422 and message in html.unescape(page.text)
    assert client.balance() == 1000


def test_one_wording_for_a_refused_upload(app_client, tmp_path):
    client = app_client(make_settings(tmp_path / "home", max_upload_bytes=2 * 2**20))
    project = client.project()
    big = b"\x89PNG\r\n\x1a\n" + bytes(int(2.5 * 2**20))
    for path, headers in (
        (f"{API}/projects/{project}/avatars/upload", {}),
        (f"/ui/projects/{project}/upload", {"HX-Request": "true"}),
    ):
        too_big = client.post(path, files={"file": ("big.png", big, "image/png")}, headers=headers)
        assert too_big.status_code == 413
        assert "The file is 2.5 MB; the limit is 2 MB." in html.unescape(too_big.text)
        fake = client.post(path, files={"file": ("a.png", b"hello", "image/png")}, headers=headers)
        assert fake.status_code == 415
        assert "That file is not a PNG, JPEG or WebP image." in html.unescape(fake.text)
    huge = b"\x89PNG\r\n\x1a\n" + bytes(4 * 2**20)  # past the request limit itself
    for path, headers in (
        (f"{API}/projects/{project}/avatars/upload", {}),
        (f"/ui/projects/{project}/upload", {"HX-Request": "true"}),
    ):
        response = client.post(path, files={"file": ("h.png", huge, "image/png")}, headers=headers)
        assert response.status_code == 413
        assert "The file is larger than the limit of 2 MB." in html.unescape(response.text)


def test_more_like_this_says_its_cost_before_spending(client):
    project = client.project()
    generation = client.wait_generation(client.generate(project, count=3)["generation"]["id"])
    avatar = generation["avatars"][0]
    assert generations.more_like_cost(avatar["id"]) == (3, 3)
    page = client.get(f"/avatars/{avatar['id']}").text
    assert 'data-confirm="Make 3 more like this for 3 credits? Your balance after: 994."' in page
    assert 'More like this <span class="button-note">· 3 credits</span>' in page
    assert client.balance() == 997  # looking at it spent nothing


def test_renaming_a_project_retitles_the_tab(client):
    project = client.project("Draft")
    response = client.post(
        f"/ui/projects/{project}/rename", data={"name": "Team"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith("<title>Team · Lumiku Local</title>")


# ---------------------------------------------------------------- the negative prompt

pytestmark_diffusion = pytest.mark.filterwarnings(f"ignore:{NUMPY_COPY_WARNING}:DeprecationWarning")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf-cache-reuse")
    save_to_hf_cache(build_pipeline("tiny"), cache, repo_id=TINY_REPO)
    return cache


@pytest.fixture
def diffusion(app_client, tmp_path, tiny_cache, monkeypatch):
    """The app with the tiny pipeline in its catalog; `guidance` above 1 turns on CFG."""
    force_hub_offline(monkeypatch)

    def start(guidance: float):
        client = app_client(
            make_settings(tmp_path / "home", hf_cache_dir=str(tiny_cache), device="cpu")
        )
        add_to_catalog(TINY_KEY, TINY_REPO, guidance=guidance, maxSize=128)
        return client

    return start


def pixels(client, avatar) -> bytes:
    return Image.open(io.BytesIO(client.get(avatar["imageUrl"]).content)).convert("RGB").tobytes()


@pytestmark_diffusion
def test_the_negative_prompt_reaches_the_pipeline_and_is_carried(diffusion):
    client = diffusion(guidance=7.5)
    project = client.project()

    def make(**body) -> dict:
        started = client.generate(project, modelKey=TINY_KEY, prompt="a knight", seed=9, **body)
        done = client.wait_generation(started["generation"]["id"], timeout=60)
        assert done["status"] == "completed", done
        return done

    plain = make(count=1)
    avoided = make(count=1, negativePrompt="  red armour, blurry  ")
    assert avoided["options"]["negativePrompt"] == "red armour, blurry"
    assert pixels(client, plain["avatars"][0]) != pixels(client, avoided["avatars"][0])
    text = read_parameters(client.get(avoided["avatars"][0]["imageUrl"]).content)
    assert text["negative_prompt"] == "red armour, blurry"
    assert text["parameters"].startswith("a knight\nNegative prompt: red armour, blurry\n")
    assert "negative_prompt" not in read_parameters(
        client.get(plain["avatars"][0]["imageUrl"]).content
    )
    # carried by a retry, by "more like this", and by "use these settings"
    retried = client.post(f"{API}/generations/{avoided['id']}/retry").json()["generation"]
    assert retried["options"]["negativePrompt"] == "red armour, blurry"
    more = client.post(f"/ui/avatars/{avoided['avatars'][0]['id']}/more")
    assert more.status_code == 200
    newest = AvatarGeneration.select().order_by(AvatarGeneration.created_at.desc()).first()
    assert newest.options["negativePrompt"] == "red armour, blurry"
    settings = settings_of(client, f"generations/{avoided['id']}")
    assert settings["negativePrompt"] == "red armour, blurry"
    page = client.get(f"/avatars/{avoided['avatars'][0]['id']}").text
    assert "<dt>Negative prompt</dt><dd>red armour, blurry</dd>" in page
    form = form_of(client, project, avoided["id"])
    assert field(form, r'<textarea id="negative-prompt"[^>]*>(.*?)</textarea>') == (
        "red armour, blurry"
    )
    assert 'value="avatar-creator:tiny-reuse" checked' in form
    assert 'data-negative="follows"' in form


@pytestmark_diffusion
def test_a_model_without_guidance_keeps_it_but_the_png_does_not_claim_it(diffusion):
    client = diffusion(guidance=0.0)
    project = client.project()
    started = client.generate(project, modelKey=TINY_KEY, count=1, negativePrompt="blurry")
    done = client.wait_generation(started["generation"]["id"], timeout=60)
    assert done["status"] == "completed" and done["options"]["negativePrompt"] == "blurry"
    text = read_parameters(client.get(done["avatars"][0]["imageUrl"]).content)
    assert "negative_prompt" not in text and "Negative prompt" not in text["parameters"]
    assert 'data-negative="ignores"' in client.get(f"/projects/{project}").text


def test_bad_negative_prompts_are_refused_and_charge_nothing(client):
    project = client.project()
    instant = client.post(
        f"{API}/projects/{project}/avatars/generate",
        json={"prompt": "x", "negativePrompt": "blurry"},
    )
    assert instant.status_code == 422
    assert "takes no negative prompt" in instant.json()["error"]["message"]
    wrong_type = client.post(
        f"{API}/projects/{project}/avatars/generate", json={"prompt": "x", "negativePrompt": 5}
    )
    assert wrong_type.status_code == 400
    # the form sends no negative prompt for the Instant model, whatever the field held
    page = client.post(
        f"/ui/projects/{project}/generate",
        data={"prompt": "x", "count": "1", "negativePrompt": "blurry"},
        headers={"HX-Request": "true"},
    )
    assert page.status_code == 200
    assert client.balance() == 999


@pytestmark_diffusion
def test_a_negative_prompt_over_2000_characters_is_refused(diffusion):
    client = diffusion(guidance=7.5)
    project = client.project()
    response = client.post(
        f"{API}/projects/{project}/avatars/generate",
        json={"prompt": "x", "modelKey": TINY_KEY, "negativePrompt": "n" * 2001},
    )
    assert response.status_code == 422
    assert "negative prompt is too long" in response.json()["error"]["message"]
    assert client.balance() == 1000
