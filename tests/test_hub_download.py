"""The model download core against a local Hugging Face Hub emulator (tests/hub_server.py)."""

from __future__ import annotations

import _thread
import errno
import functools
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import HubServer
from huggingface_hub import constants

from lumiku_local import hub_download
from lumiku_local.hub_download import (
    DiskFullError,
    DownloadCancelled,
    DownloadFailed,
    DownloadProgress,
    GatedModelError,
    diffusers_allow_patterns,
    download_snapshot,
    is_cached,
    remove_from_cache,
    repo_size,
)

REPO = "acme/tiny-diffusion"
WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
FILES = {
    "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
    "README.md": b"# tiny\n",
    "scheduler/scheduler_config.json": b'{"num_train_timesteps": 1000}',
    "unet/config.json": b'{"sample_size": 8}',
    WEIGHTS: os.urandom(2_000_000),
    "text_encoder/model.safetensors": os.urandom(300_000),
    "text_encoder/pytorch_model.bin": os.urandom(300_000),
}
PATTERNS = ["*.json", "*.safetensors"]
WANTED = [p for p in FILES if p.endswith((".json", ".safetensors"))]


@pytest.fixture(autouse=True)
def _isolated_hf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No saved login, HF_TOKEN or offline flag of the machine leaks into the tests."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # huggingface_hub 2.4's first request headers of a process fetch an "agent harness" list
    # from huggingface.co (3 s timeout): an empty list keeps the tests off the network.
    from huggingface_hub.utils import _detect_agent

    empty: dict[str, object] = {"standardEnvVars": [], "harnesses": {}}
    monkeypatch.setattr(_detect_agent, "_registry", empty, raising=False)
    monkeypatch.setattr(hub_download, "RETRY_BASE_DELAY", 0.01)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo(REPO, FILES)
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


def storage(cache: Path, repo: str = REPO) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def partial_file(cache: Path, data: bytes) -> Path:
    return storage(cache) / "blobs" / f"{sha256(data)}.incomplete"


def fetch(hub: HubServer, cache: Path, **kwargs) -> Path:
    kwargs.setdefault("allow_patterns", PATTERNS)
    return download_snapshot(REPO, cache_dir=cache, endpoint=hub.url, **kwargs)


def byte_requests(hub: HubServer) -> int:
    """GETs that carried file bytes (the CDN for LFS files, /resolve for the others)."""
    return hub.count("GET", server="cdn") + hub.count("GET", "/resolve/", server="hub")


# ------------------------------------------------------------------------- plain downloads


def test_download_reports_progress_and_builds_the_hf_cache_layout(hub, cache):
    events: list[DownloadProgress] = []
    path = fetch(hub, cache, on_progress=events.append)

    sha = hub.repos[REPO].refs["main"]
    assert path == storage(cache).resolve() / "snapshots" / sha
    for name in WANTED:
        assert (path / name).read_bytes() == FILES[name]
        if os.name != "nt":  # -> ../../blobs/<etag>, as huggingface_hub does
            assert (path / name).is_symlink()
            assert Path(os.path.realpath(path / name)).parent.name == "blobs"
    assert not (path / "README.md").exists()
    assert not (path / "text_encoder/pytorch_model.bin").exists()
    assert (storage(cache) / "refs" / "main").read_text() == sha
    tree = json.loads((storage(cache) / "trees" / f"{sha}.json").read_text())
    assert set(tree["files"]) == set(FILES)  # the whole listing, as huggingface_hub writes it
    assert not list(storage(cache).glob("blobs/*.incomplete"))

    total = sum(len(FILES[n]) for n in WANTED)
    assert events[0].bytes_done == 0 and events[0].files_done == 0
    assert [e.bytes_done for e in events] == sorted(e.bytes_done for e in events)
    assert all(e.bytes_total == total and e.files_total == len(WANTED) for e in events)
    assert (events[-1].bytes_done, events[-1].files_done) == (total, len(WANTED))


def test_the_cache_is_huggingface_hubs_own(hub, cache):
    """huggingface_hub and diffusers find the files offline, and a second call fetches nothing."""
    from huggingface_hub import get_cached_repo_tree, hf_hub_download, snapshot_download

    path = fetch(hub, cache)
    hub.clear_requests()
    assert fetch(hub, cache) == path
    assert byte_requests(hub) == 0 and hub.count("HEAD") == 0

    kwargs = {"cache_dir": cache, "local_files_only": True}
    assert Path(snapshot_download(REPO, allow_patterns=PATTERNS, **kwargs)) == path
    weights = hf_hub_download(REPO, WEIGHTS, **kwargs)
    assert Path(weights).read_bytes() == FILES[WEIGHTS]
    assert {f.path for f in get_cached_repo_tree(REPO, cache_dir=cache)} == set(FILES)
    # and online, huggingface_hub's own snapshot_download sees everything as cached
    snapshot_download(REPO, allow_patterns=PATTERNS, cache_dir=cache, endpoint=hub.url)
    assert byte_requests(hub) == 0


def test_allow_patterns_and_repo_size(hub, cache):
    patterns = ["scheduler/", "unet/*.json"]
    expected = len(FILES["scheduler/scheduler_config.json"]) + len(FILES["unet/config.json"])
    assert repo_size(REPO, allow_patterns=patterns, endpoint=hub.url) == expected
    assert repo_size(REPO, allow_patterns=None, endpoint=hub.url) == sum(map(len, FILES.values()))

    path = fetch(hub, cache, allow_patterns=patterns)
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert present == {"scheduler/scheduler_config.json", "unet/config.json"}

    with pytest.raises(DownloadFailed, match="No file of acme/tiny-diffusion matches"):
        fetch(hub, cache, allow_patterns=["*.gguf"])


def test_the_token_goes_to_the_hub_but_never_to_the_cdn(hub, cache):
    fetch(hub, cache, token="hf_test")
    assert all(r.header("authorization") is None for r in hub.requests if r.server == "cdn")
    heads = [r for r in hub.requests if r.method == "HEAD"]
    assert heads and all(r.header("authorization") == "Bearer hf_test" for r in heads)


# ------------------------------------------------------------------------- stop and resume


def test_cancel_mid_file_keeps_the_partial_file_and_the_next_call_resumes(hub, cache):
    hub.bytes_per_second = 2_000_000
    cancel = threading.Event()
    events: list[DownloadProgress] = []

    def on_progress(progress: DownloadProgress) -> None:
        events.append(progress)
        if progress.bytes_done >= 200_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        fetch(hub, cache, allow_patterns=[WEIGHTS], on_progress=on_progress, cancel=cancel)
    partial = partial_file(cache, FILES[WEIGHTS])
    kept = partial.stat().st_size
    assert 200_000 <= kept < len(FILES[WEIGHTS])
    assert any(e.bytes_per_second > 0 for e in events)
    assert not is_cached(REPO, cache_dir=cache, allow_patterns=[WEIGHTS])

    hub.bytes_per_second = None
    hub.clear_requests()
    events.clear()
    path = fetch(hub, cache, allow_patterns=[WEIGHTS], on_progress=events.append)
    assert hub.range_headers(WEIGHTS) == [f"bytes={kept}-"]
    assert (path / WEIGHTS).read_bytes() == FILES[WEIGHTS]
    assert events[0].bytes_done == kept  # progress starts where the last call stopped
    assert events[-1].bytes_done == len(FILES[WEIGHTS])
    assert not partial.exists()


def test_a_set_cancel_event_stops_before_any_request(hub, cache):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        fetch(hub, cache, cancel=cancel)
    assert hub.requests == []


def test_raising_download_cancelled_from_the_callback_cancels(hub, cache):
    def on_progress(progress: DownloadProgress) -> None:
        if progress.bytes_done > 100_000:
            raise DownloadCancelled

    hub.bytes_per_second = 4_000_000
    with pytest.raises(DownloadCancelled):
        fetch(hub, cache, allow_patterns=[WEIGHTS], on_progress=on_progress)
    assert partial_file(cache, FILES[WEIGHTS]).stat().st_size > 100_000


def test_other_errors_of_the_callback_reach_the_caller_unchanged(hub, cache):
    class DatabaseLocked(Exception):
        pass

    def on_progress(progress: DownloadProgress) -> None:
        if progress.bytes_done:
            raise DatabaseLocked("database is locked")

    with pytest.raises(DatabaseLocked, match="database is locked"):
        fetch(hub, cache, on_progress=on_progress)


def test_ctrl_c_in_the_callers_thread_stops_the_transfer(hub, cache):
    """model_cli catches KeyboardInterrupt: the worker threads must not go on downloading."""
    hub.bytes_per_second = 1_000_000
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fetch(hub, cache, allow_patterns=[WEIGHTS])
    finally:
        timer.cancel()
    assert not [t for t in threading.enumerate() if t.name.startswith("hf-download")]
    partial = partial_file(cache, FILES[WEIGHTS])
    kept = partial.stat().st_size
    assert 0 < kept < len(FILES[WEIGHTS])
    time.sleep(0.2)
    assert partial.stat().st_size == kept


def test_an_interrupted_update_keeps_the_complete_revision_in_use(hub, cache):
    old = fetch(hub, cache)
    new_weights = os.urandom(1_000_000)
    hub.add_repo(REPO, {**FILES, WEIGHTS: new_weights})
    hub.bytes_per_second = 2_000_000
    cancel = threading.Event()

    def on_progress(progress: DownloadProgress) -> None:
        if progress.bytes_per_second > 0:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        fetch(hub, cache, cancel=cancel, on_progress=on_progress)
    assert (storage(cache) / "refs" / "main").read_text() == old.name
    assert is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS)
    hub.bytes_per_second = None
    new = fetch(hub, cache)
    assert new != old and (new / WEIGHTS).read_bytes() == new_weights
    assert (storage(cache) / "refs" / "main").read_text() == new.name


def test_a_dropped_connection_is_resumed_with_a_range_request(hub, cache):
    hub.drop_after_bytes[WEIGHTS] = 300_000
    path = fetch(hub, cache)
    assert hub.range_headers(WEIGHTS) == ["", "bytes=300000-"]
    assert (path / WEIGHTS).read_bytes() == FILES[WEIGHTS]


def test_after_a_failed_call_the_next_one_resumes(hub, cache):
    """The connection drops and the Hub stays down: the call fails, the next one continues."""
    hub.drop_after_bytes[WEIGHTS] = 300_000
    hub.fail_when = lambda r: 503 if r.method == "HEAD" and not hub.drop_after_bytes else None
    with pytest.raises(DownloadFailed, match="kept failing") as failure:
        fetch(hub, cache, max_retries=1)
    assert "HTTP 503" in str(failure.value)
    assert partial_file(cache, FILES[WEIGHTS]).stat().st_size == 300_000

    hub.fail_when = None
    hub.clear_requests()
    path = fetch(hub, cache)
    assert hub.range_headers(WEIGHTS) == ["bytes=300000-"]
    assert (path / WEIGHTS).read_bytes() == FILES[WEIGHTS]
    assert is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS)


def test_a_damaged_partial_file_is_detected_and_fetched_again(hub, cache):
    partial = partial_file(cache, FILES[WEIGHTS])
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 1000)  # not the file's first bytes
    path = fetch(hub, cache, allow_patterns=[WEIGHTS])
    assert hub.range_headers(WEIGHTS) == ["bytes=1000-", ""]
    assert (path / WEIGHTS).read_bytes() == FILES[WEIGHTS]


# ------------------------------------------------------------------------- gated models


@pytest.fixture
def gated(hub) -> str:
    hub.add_repo(
        "acme/gated", {"model_index.json": b"{}", "w.safetensors": b"x" * 5000}, gated=True
    )
    return "acme/gated"


def test_a_gated_model_without_a_token_says_how_to_get_one(hub, cache, gated):
    with pytest.raises(GatedModelError) as error:
        download_snapshot(gated, cache_dir=cache, allow_patterns=None, endpoint=hub.url)
    message = str(error.value)
    assert "gated" in message and f"{hub.url}/acme/gated" in message
    assert "settings/tokens" in message and "settings" in message
    assert not list(cache.glob("**/*.incomplete"))


def test_a_gated_model_with_a_token_without_access(hub, cache, gated):
    with pytest.raises(GatedModelError, match="no access") as error:
        download_snapshot(
            gated, cache_dir=cache, allow_patterns=None, endpoint=hub.url, token="hf_other"
        )
    assert "hf_other" not in str(error.value)


def test_a_gated_model_with_the_right_token_downloads(hub, cache, gated, monkeypatch):
    path = download_snapshot(
        gated, cache_dir=cache, allow_patterns=None, endpoint=hub.url, token="hf_test"
    )
    assert (path / "w.safetensors").read_bytes() == b"x" * 5000
    # token=None uses the saved login / HF_TOKEN, like huggingface_hub
    remove_from_cache(gated, cache_dir=cache)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    path = download_snapshot(gated, cache_dir=cache, allow_patterns=None, endpoint=hub.url)
    assert (path / "w.safetensors").read_bytes() == b"x" * 5000


# ------------------------------------------------------------------------- disk space


def fake_free(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    real = shutil.disk_usage

    def disk_usage(path):
        usage = real(path)
        return type(usage)(usage.total, usage.total - free, free)

    monkeypatch.setattr(hub_download.shutil, "disk_usage", disk_usage)


def test_not_enough_free_space_fails_before_the_first_byte(hub, cache, monkeypatch):
    needed = sum(len(FILES[n]) for n in WANTED)
    fake_free(monkeypatch, needed - 1)
    with pytest.raises(DiskFullError, match="Not enough disk space") as error:
        fetch(hub, cache)
    assert error.value.needed == needed and error.value.free == needed - 1
    assert byte_requests(hub) == 0

    fake_free(monkeypatch, needed + 10)  # enough, but not with the margin asked for
    with pytest.raises(DiskFullError, match="kept free"):
        fetch(hub, cache, min_free_bytes=100)
    fetch(hub, cache, min_free_bytes=10)


def test_only_the_missing_bytes_need_free_space(hub, cache, monkeypatch):
    cancel = threading.Event()
    hub.bytes_per_second = 4_000_000

    def on_progress(progress: DownloadProgress) -> None:
        if progress.bytes_done >= 500_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        fetch(hub, cache, allow_patterns=[WEIGHTS], on_progress=on_progress, cancel=cancel)
    hub.bytes_per_second = None
    missing = len(FILES[WEIGHTS]) - partial_file(cache, FILES[WEIGHTS]).stat().st_size
    fake_free(monkeypatch, missing)
    fetch(hub, cache, allow_patterns=[WEIGHTS])


def test_a_disk_that_fills_up_during_the_transfer(hub, cache, monkeypatch):
    real_write = hub_download._write_chunk
    written = 0

    def write_until_full(out, chunk):
        nonlocal written
        if written + len(chunk) > 250_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(out, chunk)
        written += len(chunk)

    monkeypatch.setattr(hub_download, "_write_chunk", write_until_full)
    with pytest.raises(DiskFullError, match="disk filled up"):
        fetch(hub, cache, allow_patterns=[WEIGHTS])
    kept = partial_file(cache, FILES[WEIGHTS]).stat().st_size
    assert 0 < kept <= 250_000

    monkeypatch.setattr(hub_download, "_write_chunk", real_write)
    hub.clear_requests()
    path = fetch(hub, cache, allow_patterns=[WEIGHTS])
    assert hub.range_headers(WEIGHTS) == [f"bytes={kept}-"]
    assert (path / WEIGHTS).read_bytes() == FILES[WEIGHTS]


# ------------------------------------------------------------------------- the local cache


def test_is_cached_and_remove_from_cache(hub, cache):
    assert not is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS)
    path = fetch(hub, cache)
    hub.clear_requests()
    assert is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS)
    assert is_cached(REPO, cache_dir=cache, allow_patterns=["unet/"])
    assert not is_cached(REPO, cache_dir=cache, allow_patterns=[*PATTERNS, "*.md"])
    assert not is_cached(REPO, cache_dir=cache, allow_patterns=["*.gguf"])  # matches nothing
    assert hub.requests == []  # never the network

    (path / "unet" / "config.json").unlink()
    assert not is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS)
    fetch(hub, cache)  # puts the missing link back
    assert is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS)

    freed = remove_from_cache(REPO, cache_dir=cache)
    assert freed >= sum(len(FILES[n]) for n in WANTED)
    assert not storage(cache).exists()
    assert not is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS)
    assert remove_from_cache(REPO, cache_dir=cache) == 0


# A cache another tool filled: huggingface_hub before 2026 wrote no trees/<sha>.json listing.
PIPELINE_REPO = "acme/foreign-pipeline"
PIPELINE = {
    "model_index.json": json.dumps(
        {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.30.0",
            "unet": ["diffusers", "UNet2DConditionModel"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "safety_checker": [None, None],
            "requires_safety_checker": False,
        }
    ).encode(),
    "unet/config.json": b"{}",
    "unet/diffusion_pytorch_model.safetensors": b"u" * 1000,  # fp32 only: no .fp16 copy
    "text_encoder/config.json": b"{}",
    "text_encoder/model.safetensors.index.json": b"{}",
    "text_encoder/model-00001-of-00002.safetensors": b"t" * 500,
    "text_encoder/model-00002-of-00002.safetensors": b"e" * 500,
    "tokenizer/tokenizer.json": b"{}",
    "scheduler/scheduler_config.json": b"{}",
}
FP16 = functools.partial(diffusers_allow_patterns, variant="fp16")


def foreign_cache(cache: Path, files: dict[str, bytes] = PIPELINE) -> Path:
    from tiny_pipeline import write_hf_cache

    snapshot = write_hf_cache(files, cache, PIPELINE_REPO, tree_listing=False)
    assert not (storage(cache, PIPELINE_REPO) / "trees").exists()
    return snapshot


def foreign_is_cached(cache: Path, patterns=FP16) -> bool:
    return is_cached(PIPELINE_REPO, cache_dir=cache, allow_patterns=patterns)


def test_a_complete_snapshot_without_a_listing_is_cached(cache):
    foreign_cache(cache)
    assert foreign_is_cached(cache)  # fp32 weights where fp16 would have been picked
    assert foreign_is_cached(cache, patterns=PATTERNS)
    assert not foreign_is_cached(cache, patterns=["*.gguf"])  # matches nothing


@pytest.mark.parametrize(
    "missing",
    [
        "unet/diffusion_pytorch_model.safetensors",  # a model without its weights
        "text_encoder/model-00002-of-00002.safetensors",  # a shard without its sibling
        "tokenizer/tokenizer.json",  # a component of model_index.json without any file
    ],
)
def test_a_snapshot_without_a_listing_missing_a_components_file_is_partial(cache, missing):
    foreign_cache(cache, {path: data for path, data in PIPELINE.items() if path != missing})
    assert not foreign_is_cached(cache)


def test_a_link_to_a_missing_blob_is_partial(cache):
    snapshot = foreign_cache(cache)
    os.unlink((snapshot / "unet" / "diffusion_pytorch_model.safetensors").resolve())
    assert not foreign_is_cached(cache)


def test_an_unfinished_blob_makes_a_snapshot_without_a_listing_partial(cache):
    foreign_cache(cache)
    blobs = storage(cache, PIPELINE_REPO) / "blobs"
    partial = blobs / f"{sha256(b'more weights')}.a1b2c3d4.incomplete"  # huggingface_hub's name
    partial.write_bytes(b"more")
    assert not foreign_is_cached(cache)
    # one that a listing of another revision accounts for is that revision's business
    other = "f" * 40
    (storage(cache, PIPELINE_REPO) / "trees").mkdir()
    listing = {"format_version": 1, "files": {"x.safetensors": {"size": 12, "blob_id": "b",
               "lfs_sha256": sha256(b"more weights"), "lfs_size": 12}}}  # fmt: skip
    (storage(cache, PIPELINE_REPO) / "trees" / f"{other}.json").write_text(json.dumps(listing))
    assert foreign_is_cached(cache)


def test_a_listing_that_names_missing_files_is_partial(cache):
    snapshot = foreign_cache(cache)
    sha = snapshot.name
    files = {
        path: {"size": len(data), "blob_id": "0" * 40}
        for path, data in {**PIPELINE, "vae/config.json": b"{}"}.items()
    }
    (storage(cache, PIPELINE_REPO) / "trees").mkdir()
    (storage(cache, PIPELINE_REPO) / "trees" / f"{sha}.json").write_text(
        json.dumps({"format_version": 1, "files": files})
    )
    assert not foreign_is_cached(cache)


def test_the_variant_is_told_from_the_file_names():
    assert hub_download.has_variant(["unet/diffusion_pytorch_model.fp16.safetensors"], "fp16")
    assert hub_download.has_variant(["te/model.fp16-00001-of-00002.safetensors"], "fp16")
    assert not hub_download.has_variant(PIPELINE, "fp16")
    assert not hub_download.has_variant(["unet/config.fp16.json"], "fp16")


def test_offline_mode_uses_the_cache_and_never_the_network(hub, cache, monkeypatch):
    path = fetch(hub, cache)
    hub.clear_requests()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert fetch(hub, cache) == path
    with pytest.raises(DownloadFailed, match="offline mode"):
        fetch(hub, cache, allow_patterns=["*.md"])
    with pytest.raises(DownloadFailed, match="offline mode"):
        repo_size(REPO, allow_patterns=PATTERNS, endpoint=hub.url)
    assert hub.requests == []


def test_an_unreachable_hub_falls_back_to_the_cache(hub, cache):
    path = fetch(hub, cache)
    with HubServer() as gone:
        dead = gone.url
    kwargs = {"cache_dir": cache, "endpoint": dead}
    assert download_snapshot(REPO, allow_patterns=PATTERNS, **kwargs) == path
    with pytest.raises(DownloadFailed, match="cannot reach Hugging Face at "):
        download_snapshot(REPO, allow_patterns=["*.md"], **kwargs)


def test_a_hub_hiccup_is_retried(hub, cache):
    hub.fail_next[WEIGHTS] = 503  # once, on the file
    failures = iter([429])
    hub.fail_when = lambda r: next(failures, None) if "/api/models/" in r.path else None
    path = fetch(hub, cache)
    assert (path / WEIGHTS).read_bytes() == FILES[WEIGHTS]
    assert hub.count("GET", "/api/models/") == 2


def test_unknown_repo_and_revision(hub, cache):
    with pytest.raises(DownloadFailed, match="was not found"):
        download_snapshot("acme/nope", cache_dir=cache, allow_patterns=None, endpoint=hub.url)
    with pytest.raises(DownloadFailed, match="no revision 'v9'"):
        fetch(hub, cache, revision="v9")


def test_a_pinned_commit_and_a_new_commit_on_main(hub, cache):
    old = hub.repos[REPO].refs["main"]
    new = hub.add_repo(REPO, {**FILES, "unet/config.json": b'{"sample_size": 16}'})
    latest = fetch(hub, cache)
    pinned = fetch(hub, cache, revision=old)
    assert latest.name == new and pinned.name == old
    assert (latest / "unet/config.json").read_bytes() == b'{"sample_size": 16}'
    assert (pinned / "unet/config.json").read_bytes() == FILES["unet/config.json"]
    # the weights are shared: one blob for both snapshots
    assert os.path.realpath(latest / WEIGHTS) == os.path.realpath(pinned / WEIGHTS)
    assert is_cached(REPO, cache_dir=cache, allow_patterns=PATTERNS, revision=old)


# ------------------------------------------------------------------------- diffusers files


SD_LISTING = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "v1-5-pruned-emaonly.safetensors",
    "v1-5-pruned.ckpt",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.safetensors",
    "safety_checker/pytorch_model.bin",
    "safety_checker/model.fp16.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/flax_model.msgpack",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",  # no fp16 copy: the plain one is used
    "vae/diffusion_pytorch_model.bin",
    "onnx/unet/model.onnx",
    "text_encoder_2/config.json",
    "text_encoder_2/model.fp16-00001-of-00002.safetensors",
    "text_encoder_2/model.fp16-00002-of-00002.safetensors",
    "text_encoder_2/model-00001-of-00002.safetensors",
    "text_encoder_2/model-00002-of-00002.safetensors",
    "text_encoder_2/model.safetensors.index.fp16.json",
    "legacy/pytorch_model.bin",
]
CONFIGS = [
    "feature_extractor/preprocessor_config.json",
    "model_index.json",
    "safety_checker/config.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "text_encoder_2/model.safetensors.index.fp16.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "vae/config.json",
]


def test_diffusers_allow_patterns_picks_one_copy_of_the_weights():
    fp16 = diffusers_allow_patterns(SD_LISTING, variant="fp16")
    assert fp16 == sorted(
        [
            *CONFIGS,
            "legacy/pytorch_model.bin",
            "safety_checker/model.fp16.safetensors",
            "text_encoder/model.fp16.safetensors",
            "text_encoder_2/model.fp16-00001-of-00002.safetensors",
            "text_encoder_2/model.fp16-00002-of-00002.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    )
    full = diffusers_allow_patterns(SD_LISTING)
    assert full == sorted(
        [
            *CONFIGS,
            "legacy/pytorch_model.bin",
            "safety_checker/model.safetensors",
            "text_encoder/model.safetensors",
            "text_encoder_2/model-00001-of-00002.safetensors",
            "text_encoder_2/model-00002-of-00002.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    )
    lora = diffusers_allow_patterns(["README.md", "pytorch_lora_weights.safetensors"])
    assert lora == ["pytorch_lora_weights.safetensors"]


def test_a_file_filter_function_as_allow_patterns(hub, cache):
    select = functools.partial(diffusers_allow_patterns, variant="fp16")
    path = download_snapshot(REPO, cache_dir=cache, allow_patterns=select, endpoint=hub.url)
    assert not (path / "text_encoder/pytorch_model.bin").exists()
    assert (path / "text_encoder/model.safetensors").is_file()
    assert is_cached(REPO, cache_dir=cache, allow_patterns=select)
    assert repo_size(REPO, allow_patterns=select, endpoint=hub.url) == sum(
        len(FILES[n]) for n in WANTED
    )


# ------------------------------------------------------------------------- the emulator itself


def test_the_emulator_serves_huggingface_hub_itself(hub, cache):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import GatedRepoError

    path = snapshot_download(REPO, cache_dir=cache, endpoint=hub.url, allow_patterns=PATTERNS)
    assert (Path(path) / WEIGHTS).read_bytes() == FILES[WEIGHTS]
    assert not any(r.header("x-xet-hash") for r in hub.requests)

    hub.add_repo("acme/gated", {"a.json": b"{}"}, gated=True)
    for token, status in ((False, 401), ("hf_other", 403)):
        with pytest.raises(GatedRepoError) as error:
            hf_hub_download("acme/gated", "a.json", cache_dir=cache, endpoint=hub.url, token=token)
        assert error.value.response.status_code == status
    assert hf_hub_download(
        "acme/gated", "a.json", cache_dir=cache, endpoint=hub.url, token="hf_test"
    )

    api = HfApi(endpoint=hub.url)
    assert api.whoami(token="hf_test")["name"] == "test-user"
    tree = {f.path for f in api.list_repo_tree(REPO)}
    assert tree == {"README.md", "model_index.json", "scheduler", "text_encoder", "unet"}
