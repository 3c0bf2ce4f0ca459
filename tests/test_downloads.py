"""Model downloads through the app, against a local Hugging Face Hub emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from conftest import API, make_settings, wait_for
from hub_server import HubServer
from huggingface_hub import constants
from tiny_pipeline import NUMPY_COPY_WARNING, add_to_catalog, tiny_model_files

from lumiku_local import downloads, hub_download
from lumiku_local.models import AIModel

pytestmark = pytest.mark.filterwarnings(f"ignore:{NUMPY_COPY_WARNING}:DeprecationWarning")

KEY = "avatar-creator:tiny-download"
REPO = "lumiku-test/tiny-download"
TOKEN = "hf_TestToken12345"


@pytest.fixture(autouse=True)
def _isolated_hf(monkeypatch, tmp_path):
    """No token, login or offline flag of this machine leaks in; tokens go to a temp store."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_download, "RETRY_BASE_DELAY", 0.01)


@pytest.fixture
def hub():
    with HubServer() as server:
        yield server


@pytest.fixture
def studio(hub, app_client, tmp_path):  # hub first: it outlives the app
    """The app pointed at the emulator, with a downloadable tiny model in its catalog."""

    def start(gated: bool = False, **overrides):
        hub.add_repo(REPO, tiny_model_files(), gated=gated)
        client = app_client(
            make_settings(
                tmp_path / "home",
                hf_cache_dir=str(tmp_path / "hf-cache"),
                hf_endpoint=hub.url,
                device="cpu",
                **overrides,
            )
        )
        add_to_catalog(KEY, REPO, cost=2, gated=gated, sizeBytes=5_000_000)
        return client

    return start


def model(client, key=KEY):
    return next(m for m in client.get(f"{API}/models").json()["models"] if m["key"] == key)


# The largest file of the tiny model; the emulator holds it mid-way (see HubServer.hold_after_bytes)
# so a test sees a running download for as long as it needs, on a quiet or a busy machine.
HELD = "unet/diffusion_pytorch_model.safetensors"
HOLD_AT = 1_000_000  # of its 4 MB: the download is then about half done


def capture_events(client) -> list[dict]:
    """The download events of KEY, in the order they were published."""
    events: list[dict] = []
    runtime = client.app.state.runtime
    publish = runtime.publish_fn
    runtime.publish_fn = lambda event: (events.append(event), publish(event))
    return events


def mine(events: list[dict]) -> list[dict]:
    return [e for e in list(events) if e["type"] == "download" and e["modelKey"] == KEY]


def final_event(events: list[dict]) -> dict:
    """Wait for the event that ends the download (downloading: false); check nothing followed."""
    final = wait_for(lambda: next((e for e in mine(events) if not e["downloading"]), None))
    assert mine(events)[-1] is final, "no event of a download may follow its final one"
    return final


def test_download_shows_progress_then_generates_offline(studio, hub, tmp_path):
    client = studio()
    hub.hold_after_bytes[HELD] = HOLD_AT
    events = capture_events(client)
    before = model(client)
    assert before["installed"] is False and before["downloading"] is False
    assert (
        client.post(
            f"{API}/projects/{client.project()}/avatars/generate",
            json={"prompt": "x", "modelKey": KEY},
        ).status_code
        == 409
    )
    response = client.post(f"{API}/models/{KEY}/download")
    assert response.status_code == 202
    seen = wait_for(
        lambda: (
            (m := model(client))["downloading"]
            and 0 < m["progress"] < 100
            and m["download"]["bytesPerSecond"] > 0
            and m
        ),
        timeout=30,
    )
    assert seen["download"]["bytesTotal"] > seen["download"]["bytesDone"] > 0
    # the same progress went out on /api/events
    wait_for(lambda: any(0 < e["progress"] < 100 for e in mine(events)))
    hub.release_holds()
    done = wait_for(lambda: (m := model(client))["installed"] and m, timeout=30)
    assert done["progress"] == 100.0 and done["download"]["status"] == "completed"
    final = final_event(events)
    assert final["installed"] is True and final["download"]["status"] == "completed"
    snapshots = list((tmp_path / "hf-cache").glob("models--lumiku-test--tiny-download/snapshots/*"))
    assert len(snapshots) == 1  # the standard Hugging Face cache layout
    hub.stop()  # the Hub is gone: generating needs nothing from it
    generation = client.generate(client.project(), modelKey=KEY, count=2)["generation"]
    assert client.wait_generation(generation["id"], timeout=60)["status"] == "completed"


def test_the_final_event_is_installed_though_a_check_raced_the_end(studio, hub, monkeypatch):
    """A model-list request that checked the files just before the download ended, and answered
    just after, must not make the final event (or the list) say "not installed"."""
    client = studio()
    engine = client.app.state.downloads.engine
    hub.hold_after_bytes[HELD] = HOLD_AT
    events = capture_events(client)
    client.post(f"{API}/models/{KEY}/download")
    wait_for(hub.holding.is_set, timeout=30)

    checked, forgotten = threading.Event(), threading.Event()
    real_is_cached = hub_download.is_cached

    def slow_check(*args, **kwargs):
        answer = real_is_cached(*args, **kwargs)  # False: the download is still running
        if threading.current_thread() is racer:
            checked.set()
            assert forgotten.wait(30)  # ... and the answer comes back after the download ended
        return answer

    caps = AIModel.get_by_id(KEY).capabilities
    racer = threading.Thread(target=engine.is_installed, args=(caps,))
    engine.forget_install_state()  # the racer checks the files itself, not a remembered answer
    monkeypatch.setattr(hub_download, "is_cached", slow_check)
    racer.start()
    assert checked.wait(30)

    real_forget = engine.forget_install_state

    def forget_then_let_the_racer_answer() -> None:
        real_forget()
        forgotten.set()
        racer.join(30)

    monkeypatch.setattr(engine, "forget_install_state", forget_then_let_the_racer_answer)
    hub.release_holds()
    final = final_event(events)
    assert final["installed"] is True and final["progress"] == 100.0
    assert model(client)["installed"] is True


def test_a_late_progress_report_never_follows_the_final_event(studio, hub, monkeypatch):
    """A transfer thread's progress that reaches the manager after the download ended (say one
    that outlived a join) is dropped: the page keeps the final, installed state."""
    monkeypatch.setattr(downloads, "PUBLISH_EVERY", 0.0)  # every report would be published
    callbacks = []
    real_download = hub_download.download_snapshots

    def keep_callback(*args, **kwargs):
        callbacks.append(kwargs["on_progress"])
        return real_download(*args, **kwargs)

    monkeypatch.setattr(hub_download, "download_snapshots", keep_callback)
    client = studio()
    events = capture_events(client)
    client.post(f"{API}/models/{KEY}/download")
    final = final_event(events)
    assert final["installed"] is True
    callbacks[0](hub_download.DownloadProgress(1, 2, 10.0, 0, 1))  # the late report
    assert mine(events)[-1] is final
    assert model(client)["installed"] is True


def test_download_errors_are_4xx(studio):
    client = studio()
    assert client.post(f"{API}/models/nope/download").status_code == 404
    builtin = client.post(f"{API}/models/avatar-creator:instant/download")
    assert builtin.status_code == 422 and "built in" in builtin.json()["error"]["message"]
    assert client.post(f"{API}/models/{KEY}/download/cancel").status_code == 409


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes(studio, hub):
    client = studio()
    hub.hold_after_bytes[HELD] = HOLD_AT
    client.post(f"{API}/models/{KEY}/download")
    wait_for(lambda: model(client)["progress"] > 10, timeout=30)
    canceled = client.post(f"{API}/models/{KEY}/download/cancel")
    assert canceled.status_code == 200
    state = canceled.json()["model"]
    assert state["downloading"] is False and state["download"]["status"] == "canceled"
    assert 0 < state["progress"] < 100
    hub.release_holds()
    hub.clear_requests()
    client.post(f"{API}/models/{KEY}/download")
    wait_for(lambda: model(client)["installed"], timeout=30)
    ranges = [r.header("range") or "" for r in hub.requests if r.method == "GET"]
    resumed = [r for r in ranges if r.startswith("bytes=") and not r.startswith("bytes=0-")]
    assert resumed, "the second download continued the partial file with a Range request"


def test_interrupted_download_resumes_after_a_restart(studio, hub, app_client):
    client = studio()
    hub.hold_after_bytes[HELD] = HOLD_AT
    client.post(f"{API}/models/{KEY}/download")
    wait_for(lambda: model(client)["progress"] > 10, timeout=30)
    settings = client.app.state.runtime.settings
    client.__exit__(None, None, None)  # the app stops mid-download
    hub.release_holds()
    restarted = app_client(settings)
    assert model(restarted)["downloading"] is True  # picked up again at start
    done = wait_for(lambda: (m := model(restarted))["installed"] and m, timeout=30)
    assert done["download"]["status"] == "completed"


def test_gated_model_needs_a_token_kept_in_huggingface_store_only(studio, hub, tmp_path):
    client = studio(gated=True)
    hub.token = TOKEN
    client.post(f"{API}/models/{KEY}/download")
    failed = wait_for(lambda: (m := model(client))["download"]["status"] == "failed" and m)
    assert "token" in failed["download"]["errorMessage"].lower()
    assert client.get("/api/settings/hf-token").json()["configured"] is False
    bad = client.post("/api/settings/hf-token", json={"token": "not-a-token"})
    assert bad.status_code == 422
    wrong = client.post("/api/settings/hf-token", json={"token": "hf_WrongToken999"})
    assert wrong.status_code == 422 and "did not accept" in wrong.json()["error"]["message"]
    saved = client.post("/api/settings/hf-token", json={"token": TOKEN})
    assert saved.status_code == 200 and saved.json()["configured"] is True
    assert TOKEN not in saved.text
    assert (tmp_path / "hf-home" / "token").read_text() == TOKEN
    client.post(f"{API}/models/{KEY}/download")
    wait_for(lambda: model(client)["installed"], timeout=30)
    home = client.app.state.runtime.settings.home
    for path in home.rglob("*"):  # never in our database, logs or files
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert client.delete("/api/settings/hf-token").status_code == 204
    assert client.get("/api/settings/hf-token").json()["configured"] is False


def test_full_disk_fails_before_downloading_with_the_space_needed(studio, monkeypatch):
    client = studio()
    monkeypatch.setattr(
        hub_download.shutil,
        "disk_usage",
        lambda path: type("U", (), {"total": 10**9, "used": 10**9, "free": 1000})(),
    )
    client.post(f"{API}/models/{KEY}/download")
    failed = wait_for(lambda: (m := model(client))["download"]["status"] == "failed" and m)
    assert "space" in failed["download"]["errorMessage"].lower()
    assert failed["installed"] is False


def test_delete_model_files_frees_the_space(studio, tmp_path):
    client = studio()
    client.post(f"{API}/models/{KEY}/download")
    wait_for(lambda: model(client)["installed"], timeout=30)
    assert client.post(f"{API}/models/{KEY}/download").status_code == 409  # already there
    assert client.delete(f"{API}/models/{KEY}/files").status_code == 204
    assert model(client)["installed"] is False
    assert not (tmp_path / "hf-cache" / "models--lumiku-test--tiny-download").exists()


def test_cli_pull_draws_a_progress_bar_and_rm_removes(hub, tmp_path):
    hub.add_repo(REPO, tiny_model_files())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMIKU_", "HF_"))}
    env.update(
        LUMIKU_HOME=str(tmp_path / "home"),
        LUMIKU_HF_CACHE_DIR=str(tmp_path / "cache"),
        LUMIKU_HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf-home"),
    )
    lumiku = [sys.executable, "-m", "lumiku_local"]
    listing = subprocess.run(
        [*lumiku, "models", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "avatar-creator:sd-turbo" in listing.stdout and "not downloaded" in listing.stdout
    # the CLI works on the catalog in the data folder: add the test model there
    add_to_catalog(KEY, REPO, database=tmp_path / "home" / "lumiku.db", sizeBytes=5_000_000)
    pulled = subprocess.run(
        [*lumiku, "models", "pull", KEY], env=env, capture_output=True, text=True, timeout=120
    )
    assert pulled.returncode == 0, pulled.stderr
    assert "100.0%" in pulled.stdout and "Tiny test model is installed." in pulled.stdout
    again = subprocess.run(
        [*lumiku, "models", "pull", KEY], env=env, capture_output=True, text=True, timeout=120
    )
    assert "already installed" in again.stdout
    removed = subprocess.run(
        [*lumiku, "models", "rm", KEY], env=env, capture_output=True, text=True, timeout=120
    )
    assert removed.returncode == 0 and "freed" in removed.stdout
    assert not (tmp_path / "cache" / "models--lumiku-test--tiny-download").exists()


def test_token_check_with_the_hub_unreachable_is_503(app_client, tmp_path):
    client = app_client(make_settings(tmp_path / "home", hf_endpoint="http://127.0.0.1:9"))
    response = client.post("/api/settings/hf-token", json={"token": TOKEN})
    assert response.status_code == 503
    assert "try again" in response.json()["error"]["message"]


def test_deleting_a_model_keeps_files_another_installed_model_needs(studio, tmp_path):
    """Two entries built on the same files (the face models share their adapter and encoder):
    deleting one must not uninstall the other; it says which to delete first."""
    client = studio()
    add_to_catalog("avatar-creator:tiny-twin", REPO, cost=2, sizeBytes=5_000_000)
    client.post(f"{API}/models/{KEY}/download")
    wait_for(lambda: model(client)["installed"], timeout=30)
    assert model(client, "avatar-creator:tiny-twin")["installed"] is True
    response = client.delete(f"{API}/models/{KEY}/files")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "files_shared"
    assert "Tiny test model" in response.json()["error"]["message"]
    assert model(client)["installed"] and model(client, "avatar-creator:tiny-twin")["installed"]
    assert (tmp_path / "hf-cache" / "models--lumiku-test--tiny-download").is_dir()
