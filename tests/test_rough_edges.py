"""Issue 12's rough edges, below the browser: names cut at a word, readable download names,
badges that match the cost, credits rows that say what they were for, plain-words errors when
Hugging Face cannot be reached, and the runtime warning before a download."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from conftest import API, make_settings, wait_for
from hub_server import HubServer

from lumiku_local import catalog, hub_download, names
from lumiku_local.engines import diffusers as diffusers_engine

# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a studio portrait of a smiling woman", 60, "a studio portrait of a smiling woman"),
        ("corporate headshot, studio portrait with soft light", 30, "corporate headshot, studio…"),
        ("a wizard with a tall hat", 12, "a wizard…"),
        ("a wizard with", 9, "a wizard…"),  # the cut falls right after a word
        ("supercalifragilistic", 8, "superca…"),  # one long word: cut inside it
        ("  many   spaces\there  ", 60, "many spaces here"),
        ("", 10, ""),
    ],
)
def test_shorten_cuts_after_a_whole_word(text, limit, expected):
    short = names.shorten(text, limit)
    assert short == expected
    assert len(short) <= limit


def test_variation_numbers_are_the_ones_people_see():
    assert names.variation_number("v7") == 8
    assert names.variation_label("v0") == "#1"
    assert names.variation_label("pose-wave-v2") == "#3"
    assert names.variation_label(None) == "" and names.variation_label("upload") == ""


def test_avatar_file_names_are_readable_and_safe_on_windows():
    assert (
        names.avatar_file_name("Team", "Smiling portrait #8", "v7", 1234)
        == "Team - Smiling portrait #8 - seed 1234.png"
    )
    assert (  # the variation is added when the name does not end with it (renamed)
        names.avatar_file_name("Team", "Ann", "v2", 5) == "Team - Ann - #3 - seed 5.png"
    )
    assert names.avatar_file_name("Team", "photo", None, None) == "Team - photo.png"
    risky = names.avatar_file_name('A/B: "C"?', "x<y>|z*. ", "v0", 1)
    assert not re.search(r'[<>:"/\\|?*\x00-\x1f]', risky)
    assert risky == "A B C - x y z - #1 - seed 1.png"
    assert names.avatar_file_name("CON", "", None, None) == "CON - Avatar.png"  # allowed
    assert names.avatar_file_name(None, "nul", None, None) == "Avatar nul.png"  # a device
    long = names.avatar_file_name("P" * 80, "word " * 40, "v1", 99)
    assert len(long) <= names.FILE_NAME_CHARACTERS + len(".png") and long.endswith(".png")
    assert names.ascii_file_name("Ann’s été 🎉 #2.png") == "Anns ete #2.png"
    header = names.content_disposition("Ann’s été.png")
    assert header.startswith("attachment; filename=\"Anns ete.png\"; filename*=UTF-8''")
    assert unquote(header.split("UTF-8''", 1)[1]) == "Ann’s été.png"


def _finished(client, project_id: str, **body) -> dict:
    generation = client.generate(project_id, **body)["generation"]
    return client.wait_generation(generation["id"])


def test_generated_names_are_cut_at_a_word_and_downloads_named_for_people(client):
    project_id = client.project("Ann’s team")
    prompt = "a corporate headshot, studio portrait of a smiling engineer with round glasses"
    done = _finished(client, project_id, prompt=prompt, count=2, seed=40, style="bottts")
    avatar = done["avatars"][1]
    assert avatar["name"] == "a corporate headshot, studio portrait of a smiling engineer… #2"
    response = client.get(f"{API}/avatars/{avatar['id']}/image?download=true")
    disposition = response.headers["content-disposition"]
    stem = "Ann’s team - a corporate headshot, studio portrait of a smiling engineer… #2 - seed"
    assert unquote(disposition.split("UTF-8''", 1)[1]) == f"{stem} {avatar['seed']}.png"
    assert disposition.startswith('attachment; filename="Anns team - a corporate headshot')
    disposition.encode("latin-1")  # a header value: no character outside latin-1
    inline = client.get(f"{API}/avatars/{avatar['id']}/image").headers["content-disposition"]
    assert inline.startswith("inline; filename=")

    page = client.get(f"/avatars/{avatar['id']}").text
    assert "<dt>Variation</dt><dd>#2 of 2</dd>" in page
    assert f'download="{stem} {avatar["seed"]}.png"' in page.replace("&#39;", "'")


# ---------------------------------------------------------------- badges


def test_badges_follow_the_credit_cost_not_the_tier():
    assert catalog.price_band(1) == ("low", "Low cost")
    assert catalog.price_band(2) == ("low", "Low cost")
    assert catalog.price_band(6) == ("standard", "Standard")
    assert catalog.price_band(8) == ("premium", "Premium")


def test_no_model_that_costs_credits_is_badged_free(client):
    models = client.get(f"{API}/models").json()["models"]
    costly = {m["key"]: m for m in models}
    assert costly["avatar-creator:flux-dev-base"]["priceLabel"] == "Premium"  # tier "free", 8
    assert costly["avatar-creator:sd-turbo"]["priceLabel"] == "Low cost"  # tier "free", 2
    page = client.get("/models").text
    badges = re.findall(r'<span class="badge price-\w+">([^<]+)</span>', page)
    assert len(badges) == len(models) and "free" not in {b.lower() for b in badges}
    project = client.get(f"/projects/{client.project()}").text
    assert '<span class="badge price-low">Low cost</span>' in project
    assert "tier-free" not in project


# ---------------------------------------------------------------- credits


@pytest.mark.backends  # the ledger's rows as the credits page shows them, on both engines
def test_credit_rows_name_the_project_and_prompt_and_say_refund_once(client):
    from lumiku_local import failpoints

    project_id = client.project("Launch posters")
    failpoints.configure("engine.generate=error")
    prompt = "a retro poster of a rocket over a quiet harbour town at dawn with seagulls"
    _finished(client, project_id, prompt=prompt, count=2)
    failpoints.configure("")
    page = client.get("/credits").text
    assert "Refund: " not in page and "Refund Refund" not in page
    assert re.search(r">Refund</span>\s*<a href=\"/projects/" + project_id, page)
    assert page.count(f'<a href="/projects/{project_id}">Launch posters</a>') == 2
    assert "“a retro poster of a rocket over a quiet harbour town at dawn with…”" in page
    assert "2 of 2 images not delivered (failed)" in page
    assert ">Grant</span>" in page and "Welcome grant" in page

    client.delete(f"{API}/projects/{project_id}")
    assert (
        'Launch posters <span class="muted">(deleted project)</span>' in client.get("/credits").text
    )


# ---------------------------------------------------------------- generation page labels


def test_the_generation_page_uses_labels_not_keys(client):
    project_id = client.project()
    done = _finished(client, project_id, count=2, seed=7, style="bottts", width=256, height=256)
    page = client.get(f"/generations/{done['id']}").text
    assert "<dt>Model</dt><dd>Instant (DiceBear)</dd>" in page
    assert "<dt>Size</dt><dd>256 × 256</dd>" in page
    assert "<dt>Seed</dt><dd>7 to 8 (one per image)</dd>" in page
    assert "<dt>Style</dt><dd>bottts</dd>" in page
    assert "avatar-creator:instant" not in page
    assert not re.search(r"<dt>(width|height|seed|style)</dt>", page)
    assert "Attempts" not in page  # none failed


# ---------------------------------------------------------------- Hugging Face unreachable


def test_an_unreachable_hub_is_one_message_without_an_errno(tmp_path):
    with HubServer() as gone:
        dead = gone.url
    with pytest.raises(hub_download.HubUnreachable) as failure:
        hub_download.download_snapshot(
            "lumiku-test/none", allow_patterns=["*"], cache_dir=tmp_path, endpoint=dead
        )
    message = str(failure.value)
    assert message.startswith(f"Lumiku cannot reach Hugging Face at {dead}: check your internet")
    assert "Errno" not in message and "[" not in message
    assert "huggingface.co" not in hub_download.unreachable_message("https://huggingface.co/")
    assert hub_download.unreachable_message(None).startswith("Lumiku cannot reach Hugging Face:")


def _model(client, key: str) -> dict:
    return next(m for m in client.get(f"{API}/models").json()["models"] if m["key"] == key)


def test_offline_the_download_button_answers_with_the_error_alone(app_client, tmp_path):
    with HubServer() as gone:
        dead = gone.url
    client = app_client(make_settings(tmp_path / "offline", hf_endpoint=dead))
    key = "avatar-creator:sd-turbo"
    for _ in range(2):  # the failure may come before the answer or after it
        response = client.post(f"/ui/models/{key}/download")
        assert response.status_code == 200
        toast = "Download started" in response.headers.get("hx-trigger", "")
        # "started" only beside a running download; once failed, the row's error is the message
        assert toast == ("data-download-progress" in response.text)
        assert toast != ("The last download failed" in response.text)
        wait_for(lambda: _model(client, key)["download"]["status"] == "failed")
    message = _model(client, key)["download"]["errorMessage"]
    assert message.startswith("Lumiku cannot reach Hugging Face at ") and "Errno" not in message
    assert "failed:" not in message  # not "Downloading SD Turbo failed: Lumiku cannot..."
    assert message in client.get(f"/ui/models/{key}/row").text


def test_a_missing_diffusion_runtime_is_said_before_the_download(client, monkeypatch):
    page = client.get("/models").text
    assert "data-cannot-run" not in page  # this venv has torch and diffusers
    monkeypatch.setattr(diffusers_engine, "torch_available", lambda: False)
    page = client.get("/models").text
    assert page.index("data-runtime-missing") < page.index('class="model-list"')  # said first
    assert page.count("data-runtime-missing") == 1
    row = page.split('id="model-avatar-creator-sd-turbo"', 1)[1].split("</li>", 1)[0]
    assert "<code>pip install 'lumiku-local[diffusion]'</code>" in row
    warning = row.index("data-cannot-run")
    assert warning < row.index("Download</button>")
    assert 'data-confirm-ok="Download anyway"' in row
    models = {m["key"]: m for m in client.get(f"{API}/models").json()["models"]}
    assert models["avatar-creator:sd-turbo"]["cannotRun"] == diffusers_engine.INSTALL_HINT
    assert models["avatar-creator:instant"].get("cannotRun") is None
