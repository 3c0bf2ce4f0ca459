"""The random-weight Stable Diffusion pipeline of tests/tiny_pipeline.py loads offline and behaves.

Offline mode: huggingface_hub reads HF_HUB_OFFLINE once, at import, into
``huggingface_hub.constants.HF_HUB_OFFLINE`` (``is_offline_mode()`` returns that constant), so
setting the environment variable in a running process changes nothing. The ``offline`` fixture
uses ``force_hub_offline``, which sets the variable and patches that constant (and diffusers'
copy); it also makes every socket connect and DNS lookup fail and records it, so a test can
assert that nothing tried the network. With the variable alone, even
``from_pretrained(..., local_files_only=True)`` makes huggingface_hub fetch
``/api/agent-harnesses`` from the Hub the first time it builds request headers.
"""

from __future__ import annotations

import json
import socket
import warnings

import huggingface_hub
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from tiny_pipeline import (
    NUMPY_COPY_WARNING,
    build_pipeline,
    commit_sha,
    file_etag,
    force_hub_offline,
    save_to_hf_cache,
    tiny_model_files,
)

REPO = "lumiku-test/tiny-sd"
PROMPTS = ["a red fox", "an old sailor", "a robot", "a cat in a hat"]

# numpy 2 warns whenever the scheduler converts a torch tensor with np.array (see tiny_pipeline).
runs_pipeline = pytest.mark.filterwarnings(f"ignore:{NUMPY_COPY_WARNING}:DeprecationWarning")


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """Hub offline mode in this process; returns the list of network attempts (should stay [])."""
    force_hub_offline(monkeypatch)
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args))
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert huggingface_hub.is_offline_mode()
    return attempts


def generators(seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def pixels(result) -> list[np.ndarray]:
    return [np.asarray(image) for image in result.images]


@pytest.fixture(scope="module")
def pipe():
    return build_pipeline("tiny", seed=0)


def test_saved_layout_is_a_hub_cache(tmp_path, pipe):
    snapshot = save_to_hf_cache(pipe, tmp_path)
    storage = tmp_path / "models--lumiku-test--tiny-sd"
    sha = snapshot.name
    assert snapshot == storage / "snapshots" / sha
    assert (storage / "refs" / "main").read_text() == sha
    files = tiny_model_files()
    assert sha == commit_sha(files)
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors"} <= set(files)
    for path, data in files.items():
        link = snapshot / path
        assert link.is_symlink() and link.read_bytes() == data
        assert link.resolve() == (storage / "blobs" / file_etag(path, data)).resolve()
    index = json.loads((snapshot / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]

    report = huggingface_hub.scan_cache_dir(tmp_path)
    assert report.warnings == []
    [repo] = report.repos
    assert repo.repo_id == REPO and [r.commit_hash for r in repo.revisions] == [sha]
    cached = huggingface_hub.get_cached_repo_tree(REPO, cache_dir=tmp_path)
    assert {f.path for f in cached} == set(files)


def test_loads_offline_from_the_cache(tmp_path, pipe, offline):
    save_to_hf_cache(pipe, tmp_path)

    loaded = DiffusionPipeline.from_pretrained(REPO, cache_dir=tmp_path, local_files_only=True)

    assert isinstance(loaded, StableDiffusionPipeline)
    assert loaded.safety_checker is None and loaded.feature_extractor is None
    for name in ("unet", "vae", "text_encoder"):
        saved = getattr(pipe, name).state_dict()
        restored = getattr(loaded, name).state_dict()
        assert saved.keys() == restored.keys()
        assert all(torch.equal(saved[key], restored[key]) for key in saved), name
    assert loaded.tokenizer("a cat").input_ids == pipe.tokenizer("a cat").input_ids
    assert offline == []


def test_missing_repo_fails_offline_without_network(tmp_path, offline):
    with pytest.raises(OSError):
        DiffusionPipeline.from_pretrained("lumiku-test/absent", cache_dir=tmp_path)
    assert offline == []


def test_weights_depend_only_on_the_seed():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = build_pipeline(seed=0), build_pipeline(seed=0), build_pipeline(seed=1)
    assert torch.equal(torch.rand(3), expected_next)  # the global RNG was left alone
    for name in ("unet", "vae", "text_encoder"):
        sa, sb, sc = (getattr(p, name).state_dict() for p in (a, b, c))
        assert all(torch.equal(sa[key], sb[key]) for key in sa), name
        assert not all(torch.equal(sa[key], sc[key]) for key in sa), name


@runs_pipeline
def test_batch_of_four_gives_four_distinct_reproducible_images(pipe):
    first = pixels(pipe(PROMPTS, num_inference_steps=2, generator=generators([1, 2, 3, 4])))
    again = pixels(pipe(PROMPTS, num_inference_steps=2, generator=generators([1, 2, 3, 4])))

    assert [image.shape for image in first] == [(64, 64, 3)] * 4
    for image in first:
        assert image.std() > 10 and len(np.unique(image.reshape(-1, 3), axis=0)) > 100
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(first[i].astype(int) - first[j].astype(int)).mean() > 5, (i, j)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))


@runs_pipeline
def test_sd_turbo_style_call_without_guidance(pipe):
    a = pixels(
        pipe(PROMPTS[:2], num_inference_steps=1, guidance_scale=0.0, generator=generators([7, 8]))
    )
    b = pixels(
        pipe(PROMPTS[:2], num_inference_steps=1, guidance_scale=0.0, generator=generators([7, 8]))
    )
    assert not np.array_equal(a[0], a[1])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@runs_pipeline
def test_step_callback_runs_each_step_and_interrupt_stops_early(pipe):
    calls: list[tuple[int, int, tuple[int, ...]]] = []

    def on_step(p, step, timestep, callback_kwargs):
        calls.append((step, int(timestep), tuple(callback_kwargs["latents"].shape)))
        if stop_after is not None and step == stop_after:
            p._interrupt = True
        return callback_kwargs

    stop_after = None
    pipe(
        PROMPTS, num_inference_steps=4, generator=generators(range(4)), callback_on_step_end=on_step
    )
    assert [step for step, _, _ in calls] == [0, 1, 2, 3]
    assert [timestep for _, timestep, _ in calls] == [999, 749, 499, 249]  # "trailing" spacing
    assert {shape for _, _, shape in calls} == {(4, 4, 8, 8)}

    calls.clear()
    stop_after = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", NUMPY_COPY_WARNING, DeprecationWarning)
        result = pipe(
            PROMPTS,
            num_inference_steps=4,
            generator=generators(range(4)),
            callback_on_step_end=on_step,
        )
    assert [step for step, _, _ in calls] == [0, 1]
    assert len(result.images) == 4  # the interrupted latents are still decoded

    calls.clear()
    stop_after = None
    pipe(PROMPTS[:1], num_inference_steps=2, callback_on_step_end=on_step)  # the flag is reset
    assert [step for step, _, _ in calls] == [0, 1]
