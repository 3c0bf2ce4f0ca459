"""Remote generation on Hugging Face Inference Providers: the real app, the real InferenceClient,
against the emulated Hub and router (tests/hub_server.py)."""

from __future__ import annotations

import io
import logging

import pytest
from conftest import API, make_settings, wait_for
from hub_server import HubServer, InferenceFailure
from huggingface_hub import constants
from huggingface_hub.inference._providers._common import _fetch_inference_provider_mapping
from PIL import Image

from lumiku_local.catalog import REMOTE_PROVIDER
from lumiku_local.doctor import ledger_problems
from lumiku_local.engines.inference_access import scrub
from lumiku_local.models import AIModel
from lumiku_local.png_parameters import read_parameters

TOKEN = "hf_RemoteTestToken123"
KEY = "avatar-creator:hf-flux-schnell"
REPO = "black-forest-labs/FLUX.1-schnell"
I2I_KEY = "avatar-creator:hf-test-photo"
I2I_REPO = "lumiku-test/remote-photo"
COST = 6  # the catalog's FLUX.1-schnell


@pytest.fixture(autouse=True)
def _isolated_hf(monkeypatch, tmp_path):
    """No token or login of this machine leaks in; what the app points huggingface_hub at (its
    module constants, see engines/remote.py) is put back after the test."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", constants.ENDPOINT)
    monkeypatch.setattr(constants, "INFERENCE_PROXY_TEMPLATE", constants.INFERENCE_PROXY_TEMPLATE)
    _fetch_inference_provider_mapping.cache_clear()  # the client's own, per process
    yield
    _fetch_inference_provider_mapping.cache_clear()


@pytest.fixture
def hub():
    with HubServer(token=TOKEN) as server:
        text = "text-to-image"
        server.add_inference_model(REPO, {"hf-inference": text, "together": text})
        # one task per provider, as the Hub maps them: text by one, photos by another
        server.add_inference_model(I2I_REPO, {"together": text, "hf-inference": "image-to-image"})
        yield server


@pytest.fixture
def studio(hub, app_client, tmp_path, monkeypatch):  # hub first: it outlives the app
    """The app pointed at the emulator, with a token (unless token=None) and consent given."""

    def start(token: str | None = TOKEN, consent: bool = True, **overrides):
        if token:
            monkeypatch.setenv("HF_TOKEN", token)
        client = app_client(
            make_settings(
                tmp_path / "home", hf_endpoint=hub.url, hf_inference_endpoint=hub.url, **overrides
            )
        )
        add_photo_model()
        if consent:
            for key in (KEY, I2I_KEY):
                assert client.post(f"{API}/models/{key}/remote-consent").status_code == 200
        return client

    return start


def add_photo_model() -> None:
    """A remote model whose provider serves image-to-image (the catalog's are text only)."""
    AIModel.insert(
        key=I2I_KEY,
        app_id="avatar-creator",
        name="Remote photo test model",
        provider=REMOTE_PROVIDER,
        tier="basic",
        credit_cost=5,
        deadline_seconds=120.0,
        sort_order=99,
        capabilities={
            "hfRepo": I2I_REPO,
            "remote": True,
            "imageToImage": True,
            "width": 256,
            "height": 256,
            "minSize": 64,
            "maxSize": 1024,
            "steps": 8,
            "guidance": 2.0,
        },
    ).on_conflict_replace().execute()


def model(client, key: str = KEY) -> dict:
    return next(m for m in client.get(f"{API}/models").json()["models"] if m["key"] == key)


def generate(client, expect: int = 202, **body) -> dict:
    body = {"modelKey": KEY, "count": 1, "width": 256, "height": 256, **body}
    return client.generate(client.project(), expect=expect, **body)


def png_of(client, avatar: dict) -> bytes:
    return client.get(avatar["imageUrl"]).content


# ---------------------------------------------------------------- installed, consent, token


def test_a_remote_model_is_available_once_a_token_is_set(studio, hub):
    client = studio(token=None)
    listed = model(client)
    assert listed["installed"] is False and listed["provider"] == REMOTE_PROVIDER
    assert listed["remote"]["needsToken"] is True and listed["remote"]["needsNetwork"] is True
    refused = generate(client, expect=409)
    assert refused["error"]["code"] == "model_not_installed"
    assert "access token" in refused["error"]["message"]
    assert "Models page" in refused["error"]["message"]
    assert client.balance() == 1000  # refused before charging

    saved = client.post("/api/settings/hf-token", json={"token": TOKEN})
    assert saved.status_code == 200, saved.text
    listed = model(client)
    assert listed["installed"] is True
    assert listed["remote"]["provider"] == "hf-inference"  # auto: the mapping's first
    assert "bills" in listed["remote"]["billing"]


def test_the_first_remote_generation_needs_consent_and_it_is_remembered(studio):
    client = studio(consent=False)
    refused = generate(client, expect=409)
    assert refused["error"]["code"] == "remote_consent_required"
    assert "prompt" in refused["error"]["message"] and "Hugging Face" in refused["error"]["message"]
    assert client.balance() == 1000
    assert model(client)["remote"]["consented"] is False
    assert client.post(f"{API}/models/{KEY}/remote-consent").status_code == 200
    assert model(client)["remote"]["consented"] is True
    done = client.wait_generation(generate(client)["generation"]["id"])
    assert done["status"] == "completed", done
    assert client.delete(f"{API}/models/{KEY}/remote-consent").status_code == 204
    assert generate(client, expect=409)["error"]["code"] == "remote_consent_required"
    local = client.post(f"{API}/models/avatar-creator:instant/remote-consent")
    assert local.status_code == 409 and local.json()["error"]["code"] == "not_remote"


def test_a_token_without_inference_permission_is_a_409_before_charging(studio, hub):
    hub.inference_permission = False
    client = studio()
    refused = generate(client, expect=409)
    assert "Make calls to Inference Providers" in refused["error"]["message"]
    assert client.balance() == 1000
    assert hub.inference_calls == []


def test_offline_a_remote_model_says_the_internet_is_needed(app_client, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    closed = "http://127.0.0.1:9"  # nothing listens: refused at once, as offline
    client = app_client(
        make_settings(tmp_path / "home", hf_endpoint=closed, hf_inference_endpoint=closed)
    )
    listed = model(client)
    assert listed["installed"] is False and listed["remote"]["needsToken"] is False
    assert "internet" in listed["remote"]["problem"]
    refused = generate(client, expect=409)
    assert "internet" in refused["error"]["message"] and client.balance() == 1000
    page = client.get("/models")
    assert page.status_code == 200 and "remote models need the internet" in page.text


def test_a_token_that_cannot_be_sent_is_named_and_never_logged(studio, hub, caplog):
    """httpx refuses a header with a vertical tab and quotes it whole in its error: that error
    went into the debug log with its traceback, and the page said the Hub was unreachable."""
    caplog.set_level(logging.DEBUG)
    broken = TOKEN[:8] + "\x0b" + TOKEN[8:]
    client = studio(token=broken)
    listed = model(client)
    assert listed["installed"] is False and listed["remote"]["needsToken"] is True
    assert "copy it again" in listed["remote"]["problem"]
    refused = generate(client, expect=409)
    assert "copy it again" in refused["error"]["message"] and client.balance() == 1000
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert TOKEN[8:] not in logged and repr(broken)[1:-1] not in logged


def test_scrub_hides_the_token_as_a_repr_quotes_it_too():
    token = TOKEN[:8] + "\x0b" + TOKEN[8:]
    quoted = f"Illegal header value {('Bearer ' + token).encode()!r}"  # httpx's words
    assert TOKEN[8:] in quoted
    assert TOKEN[8:] not in scrub(quoted, token) and "hf_***" in scrub(quoted, token)
    assert scrub(f"echo: Bearer {TOKEN}", TOKEN) == "echo: Bearer hf_***"


# ---------------------------------------------------------------- batches


def test_a_batch_of_four_sends_four_requests_with_four_seeds(studio, hub, settings):
    client = studio()
    started = generate(client, count=4, seed=500)
    assert started["creditUsed"] == 4 * COST
    done = client.wait_generation(started["generation"]["id"])
    assert done["status"] == "completed", done
    assert sorted(hub.inference_seeds()) == [500, 501, 502, 503]
    assert {call.provider for call in hub.inference_calls} == {"hf-inference"}
    assert all(call.authorization == f"Bearer {TOKEN}" for call in hub.inference_calls)
    assert {(c.parameters["width"], c.parameters["height"]) for c in hub.inference_calls} == {
        (256, 256)
    }
    pngs = [png_of(client, avatar) for avatar in done["avatars"]]
    assert len(set(pngs)) == 4
    by_key = {a["variationKey"]: read_parameters(png_of(client, a)) for a in done["avatars"]}
    assert by_key["v2"]["seed"] == "502"
    assert by_key["v2"]["lumiku_provider"] == "hf-inference"
    assert by_key["v2"]["model"] == REPO and by_key["v2"]["lumiku_engine"] == REMOTE_PROVIDER
    assert done["creditCharged"] == 4 * COST and done["creditRefunded"] == 0
    assert ledger_problems() == []
    # the token went to Hugging Face only: not in Lumiku's data or its log
    home = settings.home
    for path in [*home.rglob("*.db"), *home.rglob("*.log"), *home.rglob("*.toml")]:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_a_third_party_provider_gets_the_same_seeds(studio, hub):
    client = studio(hf_inference_provider="together")
    assert model(client)["remote"]["provider"] == "together"
    done = client.wait_generation(generate(client, count=2, seed=70)["generation"]["id"])
    assert done["status"] == "completed", done
    assert [c.provider for c in hub.inference_calls] == ["together", "together"]
    assert sorted(hub.inference_seeds()) == [70, 71]
    assert {c.model for c in hub.inference_calls} == {f"together/{REPO}"}
    assert read_parameters(png_of(client, done["avatars"][0]))["lumiku_provider"] == "together"


def test_a_provider_that_does_not_serve_the_model_is_not_installed(studio, hub):
    client = studio(hf_inference_provider="fal-ai")
    listed = model(client)
    assert listed["installed"] is False and "fal-ai" in listed["remote"]["problem"]
    assert "hf_inference_provider" in generate(client, expect=409)["error"]["message"]


def test_image_to_image_sends_the_photo_frame(studio, hub):
    client = studio()
    project = client.project()
    photo = io.BytesIO()
    Image.new("RGB", (300, 200), "teal").save(photo, "PNG")
    uploaded = client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": ("me.png", photo.getvalue(), "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    avatar_id = uploaded.json()["avatar"]["id"]
    started = client.generate(
        project, modelKey=I2I_KEY, count=2, seed=9, referenceAvatarId=avatar_id
    )
    done = client.wait_generation(started["generation"]["id"])
    assert done["status"] == "completed", done
    assert [c.task for c in hub.inference_calls] == ["image-to-image"] * 2
    sent = Image.open(io.BytesIO(hub.inference_calls[0].image))
    assert sent.size == (256, 256)  # the photo's frame at the asked size, nothing more
    parameters = read_parameters(png_of(client, done["avatars"][0]))
    assert parameters["lumiku_reference_sha256"] == done["reference"]["sha256"]
    # text-only models say they cannot start from a photo, before charging
    refused = client.generate(
        project, expect=422, modelKey=KEY, referenceAvatarId=avatar_id, width=256, height=256
    )
    assert refused["error"]["code"] == "reference_unsupported"
    assert ledger_problems() == []


# ---------------------------------------------------------------- errors a person can act on


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (
            InferenceFailure(402, b'{"error": "You have exceeded your monthly included credits"}'),
            ["used up", "billing", "exceeded your monthly included credits"],
        ),
        (
            InferenceFailure(200, b"Model too busy, try another one", content_type="text/plain"),
            ["not an image", "Model too busy, try another one"],
        ),
        (
            InferenceFailure(400, b'{"error": "width must be a multiple of 64"}'),
            ["refused the request (400)", "width must be a multiple of 64"],
        ),
    ],
    ids=["402", "not-an-image", "400"],
)
def test_a_permanent_error_fails_at_once_with_its_message_and_a_refund(studio, hub, failure, words):
    client = studio()
    hub.inference_failures.append(failure)
    done = client.wait_generation(generate(client, count=1)["generation"]["id"])
    assert done["status"] == "failed", done
    for word in words:
        assert word in done["errorMessage"], done["errorMessage"]
    assert TOKEN not in done["errorMessage"]
    assert len(hub.inference_calls) == 1  # never asked again
    assert done["creditRefunded"] == COST and client.balance() == 1000
    assert ledger_problems() == []


def test_a_gated_model_fails_with_the_page_to_accept(studio, hub):
    served = hub.inference_models[REPO]
    served.gated, served.accepted = True, False
    client = studio()
    done = client.wait_generation(generate(client, count=2)["generation"]["id"])
    assert done["status"] == "failed", done
    assert f"https://huggingface.co/{REPO}" in done["errorMessage"]
    assert "accept" in done["errorMessage"]
    assert done["creditRefunded"] == 2 * COST and client.balance() == 1000
    assert ledger_problems() == []


@pytest.mark.parametrize("status", [429, 503])
def test_a_rate_limit_or_a_loading_model_is_asked_again_after_its_retry_after(studio, hub, status):
    client = studio(retry_backoff_seconds=0.05)
    hub.inference_failures.append(InferenceFailure(status, headers={"Retry-After": "1"}))
    done = client.wait_generation(generate(client, count=1, seed=42)["generation"]["id"])
    assert done["status"] == "completed", done
    first, second = hub.inference_calls
    assert (first.status, second.status) == (status, 200)
    assert first.seed == second.seed == 42
    assert second.received_at - first.received_at >= 1.0  # Retry-After, not the 0.05 s backoff
    assert done["creditRefunded"] == 0 and ledger_problems() == []


def test_a_retry_after_beyond_the_deadline_fails_now_with_a_refund(studio, hub):
    client = studio()
    hub.inference_failures.append(InferenceFailure(429, headers={"Retry-After": "3600"}))
    done = client.wait_generation(generate(client, count=1)["generation"]["id"])
    assert done["status"] == "failed", done
    assert "3600 s" in done["errorMessage"] and "deadline" in done["errorMessage"]
    assert len(hub.inference_calls) == 1
    assert client.balance() == 1000 and ledger_problems() == []


def test_a_dropped_connection_and_a_timeout_are_asked_again(studio, hub):
    # the held request times out; the others must not, even on a busy machine (hence 3 s)
    client = studio(hf_inference_timeout_seconds=3.0, retry_backoff_seconds=0.05)
    hub.inference_failures.append(InferenceFailure(0, drop=True))
    first = {"held": False}

    def hold_once(call) -> bool:  # the second request hangs past the client's timeout
        if call.seed == 11 and not first["held"]:
            first["held"] = True
            return True
        return False

    hub.hold_inference = hold_once
    done = client.wait_generation(generate(client, count=2, seed=10)["generation"]["id"])
    assert done["status"] == "completed", done
    assert sorted(s for s in hub.inference_seeds(answered_only=True)) == [10, 11]
    assert len(hub.inference_calls) == 4  # a drop and a timeout, each asked once more
    assert done["creditRefunded"] == 0 and ledger_problems() == []


def test_transient_failures_past_every_attempt_fail_with_a_refund(studio, hub):
    client = studio(max_attempts=2, retry_backoff_seconds=0.05)
    hub.inference_failures.extend(InferenceFailure(503) for _ in range(4))
    done = client.wait_generation(generate(client, count=1)["generation"]["id"])
    assert done["status"] == "failed", done
    assert "503" in done["errorMessage"] and "2 attempts" in done["errorMessage"]
    assert len(hub.inference_calls) == 4  # 2 tries per attempt, 2 attempts
    assert client.balance() == 1000 and ledger_problems() == []


def test_requests_run_two_at_a_time_and_deliver_as_they_land(studio, hub):
    client = studio()
    hub.hold_inference = lambda call: True
    generation_id = generate(client, count=4, seed=0)["generation"]["id"]
    hub.wait_held(2)
    assert hub.max_in_flight == 2
    hub.release_inference()
    done = client.wait_generation(generation_id)
    assert done["status"] == "completed", done
    assert hub.max_in_flight == 2 and len(hub.inference_calls) == 4


def test_cancel_while_requests_wait_refunds_the_rest(studio, hub):
    client = studio()
    hub.hold_inference = lambda call: call.seed != 0
    generation_id = generate(client, count=4, seed=0)["generation"]["id"]
    wait_for(lambda: client.generation(generation_id)["countCompleted"] == 1)
    hub.wait_held(1)
    canceled = client.post(f"{API}/generations/{generation_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    hub.release_inference()
    done = client.wait_generation(generation_id)
    assert done["status"] == "canceled" and len(done["avatars"]) == 1
    assert done["creditRefunded"] == 3 * COST
    assert ledger_problems() == []


# ---------------------------------------------------------------- a crash mid-batch


def test_sigkill_mid_batch_then_restart_asks_only_for_the_missing_variations(
    hub, tmp_path, monkeypatch
):
    from conftest import Server, doctor

    monkeypatch.delenv("HF_TOKEN", raising=False)
    home = tmp_path / "home"
    env = {
        "LUMIKU_HF_ENDPOINT": hub.url,
        "LUMIKU_HF_INFERENCE_ENDPOINT": hub.url,
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    hub.hold_inference = lambda call: (call.seed or 0) >= 802  # v2 and v3 never answer
    server = Server(home, **env)
    try:
        status, _ = server.request("POST", f"{API}/models/{KEY}/remote-consent")
        assert status == 200
        _, project = server.request("POST", f"{API}/projects", {"name": "crash"})
        status, body = server.request(
            "POST",
            f"{API}/projects/{project['id']}/avatars/generate",
            {"prompt": "crash", "modelKey": KEY, "count": 4, "seed": 800, "width": 256},
        )
        assert status == 202, body
        generation_id = body["generation"]["id"]
        wait_for(
            lambda: (
                server.get(f"{API}/generations/{generation_id}")["generation"]["countCompleted"]
                == 2
            ),
            timeout=30,
        )
        hub.wait_held(2)  # v2 and v3 are on their way when the process dies
        server.kill()
    finally:
        server.kill()
    asked_before = len(hub.inference_calls)
    assert sorted(hub.inference_seeds()) == [800, 801, 802, 803]
    hub.release_inference()  # the held answers go to a dead process
    restarted = Server(home, **env)
    try:
        done = restarted.wait_generation(generation_id, timeout=60)
    finally:
        restarted.kill()
    assert done["status"] == "completed", done
    asked_after = [call.seed for call in hub.inference_calls[asked_before:]]
    assert sorted(asked_after) == [802, 803]  # only the missing keys, with their own seeds
    assert sorted(a["variationKey"] for a in done["avatars"]) == ["v0", "v1", "v2", "v3"]
    assert done["creditRefunded"] == 0
    result = doctor(home)
    assert result.returncode == 0, result.stdout


def test_the_cli_lists_remote_models_and_downloads_nothing_for_them(tmp_path, capsys):
    from lumiku_local.model_cli import models_command

    settings = make_settings(tmp_path / "home")
    assert models_command(settings, "list", None) == 0
    listing = capsys.readouterr().out
    line = next(row for row in listing.splitlines() if row.startswith(KEY))
    assert "remote" in line and "on Hugging Face" in line
    assert models_command(settings, "pull", KEY) == 2
    assert "nothing to download" in capsys.readouterr().err
    assert not (tmp_path / "home" / "hf-cache").exists()


def test_a_remote_generation_never_waits_for_the_local_gpu(studio, hub):
    from lumiku_local.engines import engine_for

    client = studio()
    gpu = engine_for("diffusers")._lock  # held as by a long local diffusion job
    assert gpu.acquire(timeout=5)
    try:
        done = client.wait_generation(generate(client, count=2)["generation"]["id"])
    finally:
        gpu.release()
    assert done["status"] == "completed", done
