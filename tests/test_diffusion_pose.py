"""The Pose Generator on the diffusers engine: an OpenPose ControlNet, offline through the real
diffusers code.

A tiny ControlNet (`ControlNetModel.from_unet` on the tiny pipeline's UNet, tiny_pipeline.py)
and the tiny IP-Adapter plus-face of issue 10, saved in Hugging Face cache layout: each
variation's skeleton is the ControlNet's `image=`, the source avatar's face goes in as
`ip_adapter_image_embeds=` encoded once per generation. Text mode runs the warm base pipeline.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from conftest import API, make_settings, wait_for
from hub_server import HubServer
from huggingface_hub import constants
from PIL import Image, ImageDraw
from tiny_pipeline import (
    IP_ADAPTER_WEIGHT,
    NUMPY_COPY_WARNING,
    add_to_catalog,
    build_pipeline,
    controlnet_files,
    force_hub_offline,
    ip_adapter_files,
    save_to_hf_cache,
    tiny_model_files,
    write_hf_cache,
)

from lumiku_local import catalog, downloads, engines, hub_download, pose_library, skeleton
from lumiku_local.doctor import ledger_problems
from lumiku_local.engines.base import EngineJob, FaceBox, PermanentEngineError, Reference, Variation
from lumiku_local.engines.diffusers import DiffusersEngine, control_images, model_files
from lumiku_local.png_parameters import read_parameters

pytestmark = pytest.mark.filterwarnings(f"ignore:{NUMPY_COPY_WARNING}:DeprecationWarning")

SD_REPO = "lumiku-test/tiny-sd"
ADAPTER_REPO = "lumiku-test/tiny-ip-adapter"
CONTROLNET_REPO = "lumiku-test/tiny-controlnet-openpose"
ADAPTER = {
    "repo": ADAPTER_REPO,
    "subfolder": "models",
    "weightName": IP_ADAPTER_WEIGHT,
    "imageEncoderFolder": "models/image_encoder",
}
CONTROL = {"repo": CONTROLNET_REPO}
FACE = {"hfRepo": SD_REPO, "steps": 2, "guidance": 0.0, "ipAdapter": ADAPTER}
POSED = {**FACE, "controlNet": CONTROL}
# three poses whose skeletons differ a lot: standing, sitting, an action
POSE_IDS = [pose.id for pose in pose_library.poses()[:: len(pose_library.poses()) // 3][:3]]
# a pixel moves by one level between a batch of 6 and a batch of 1 (other CPU kernels);
# another pose, seed or photo moves pixels by far more
ROUNDING = 1
DIFFERS = 4


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf-cache")
    save_to_hf_cache(build_pipeline("tiny"), folder, repo_id=SD_REPO)
    write_hf_cache(ip_adapter_files(), folder, repo_id=ADAPTER_REPO)
    write_hf_cache(controlnet_files(), folder, repo_id=CONTROLNET_REPO)
    return folder


@pytest.fixture
def engine(cache, tmp_path, monkeypatch):
    force_hub_offline(monkeypatch)
    engine = DiffusersEngine(
        make_settings(tmp_path / "home", hf_cache_dir=str(cache), device="cpu")
    )
    yield engine
    engine.unload()


def portrait(skin: tuple[int, int, int], background: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (96, 128), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((30, 24, 78, 80), fill=skin)
    draw.ellipse((40, 40, 48, 48), fill=(30, 30, 30))
    draw.ellipse((60, 40, 68, 48), fill=(30, 30, 30))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


AVATAR_A = portrait((230, 190, 160), (40, 90, 200))
AVATAR_B = portrait((110, 70, 50), (220, 200, 60))


def source(png: bytes = AVATAR_A, likeness: float = 0.8) -> Reference:
    """The source avatar as the worker hands it over (mode "pose")."""
    return Reference(
        png, hashlib.sha256(png).hexdigest(), 96, 128, FaceBox(28, 22, 52), likeness, "pose"
    )


def gallery(pose_ids, variations: int, seed: int = 300) -> list[Variation]:
    """The plan of pose_generations: "{poseId}-v{n}", seed + index * variations + n."""
    return [
        Variation(f"{pose_id}-v{n}", seed + index * variations + n, pose_id)
        for index, pose_id in enumerate(pose_ids)
        for n in range(variations)
    ]


def generate(
    engine,
    plan: list[Variation],
    caps=POSED,
    reference: Reference | None = None,
    mode: str = "gallery",
    prompt: str = "an avatar",
    progress=None,
    cancelled=None,
) -> dict[str, bytes]:
    """{variation key: PNG} of one engine call, as the worker makes a pose job."""
    ids = {v.pose_id for v in plan if v.pose_id}
    job = EngineJob(
        generation_id="g",
        model_key="avatar-creator:test-pose",
        capabilities=caps,
        prompt=prompt,
        width=64,
        height=64,
        variations=plan,
        options={"mode": mode, "posePrompt": "waving" if mode == "text" else None},
        reference=reference if reference is not None else source(),
        poses={pose_id: pose_library.find(pose_id).keypoints for pose_id in ids},
    )
    images: dict[str, bytes] = {}
    engine.generate(
        job,
        lambda variation, prepared: images.__setitem__(variation.key, prepared.png),
        progress or (lambda fraction, step: None),
        cancelled or (lambda: False),
    )
    return images


def rgb(png: bytes) -> bytes:
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def difference(one: bytes, other: bytes) -> int:
    return max(abs(a - b) for a, b in zip(rgb(one), rgb(other), strict=True))


# ------------------------------------------------------------------ gallery mode


def test_a_gallery_batch_of_3_poses_by_2_variations(engine):
    plan = gallery(POSE_IDS, 2)
    steps: list[str] = []
    batch = generate(engine, plan, progress=lambda fraction, step: steps.append(step))
    assert sorted(batch) == sorted(v.key for v in plan)
    assert len({rgb(png) for png in batch.values()}) == 6
    assert steps == ["step 1 of 2", "step 2 of 2"]  # one call for the 6 images
    # each variation alone (a resume that makes only the missing one) gives its pixels
    for variation in (plan[0], plan[3], plan[5]):
        alone = generate(engine, [variation])
        assert difference(alone[variation.key], batch[variation.key]) <= ROUNDING
    # one pipeline, one ControlNet and one face encoding for all four generations
    assert (engine.load_count, engine.controlnet_loads, engine.image_encoder_runs) == (1, 1, 1)
    parameters = read_parameters(batch[plan[2].key])
    assert parameters["lumiku_pose_id"] == POSE_IDS[1]
    assert parameters["lumiku_variation"] == plan[2].key
    assert parameters["lumiku_control_model"] == CONTROLNET_REPO
    assert parameters["lumiku_reference_sha256"] == source().sha256
    assert parameters["lumiku_reference_mode"] == "pose"
    assert parameters["lumiku_ip_adapter_scale"] == "0.80"


def test_the_pose_and_the_source_avatar_change_the_image(engine):
    first, second = (Variation("v", 42, POSE_IDS[0]), Variation("v", 42, POSE_IDS[2]))
    one = generate(engine, [first])["v"]
    assert difference(generate(engine, [second])["v"], one) > DIFFERS  # another skeleton
    assert difference(generate(engine, [first], reference=source(AVATAR_B))["v"], one) > DIFFERS
    weak = generate(engine, [first], reference=source(likeness=0.1))["v"]
    assert difference(weak, one) > DIFFERS  # likeness is the adapter's scale
    without = generate(engine, [first], caps=FACE, mode="text")["v"]
    assert difference(without, one) > DIFFERS  # the ControlNet is in the picture


def test_a_face_model_and_its_pose_model_share_one_warm_pipeline(engine):
    generate(engine, [Variation("v0", 1)], caps=FACE, mode="text")
    generate(engine, gallery(POSE_IDS[:1], 1), caps=POSED)
    generate(engine, [Variation("v0", 1)], caps=FACE, mode="text")
    generate(engine, gallery(POSE_IDS[1:2], 1), caps=POSED)
    assert (engine.load_count, engine.controlnet_loads) == (1, 1)


def test_cancel_stops_at_the_next_step(engine):
    steps: list[str] = []
    images = generate(
        engine,
        gallery(POSE_IDS[:2], 1),
        caps={**POSED, "steps": 4},
        progress=lambda fraction, step: steps.append(step),
        cancelled=lambda: bool(steps),  # cancelled once the first step is reported
    )
    assert images == {} and steps == ["step 1 of 4"]


def test_a_gallery_job_on_a_model_without_a_controlnet_fails_clearly(engine):
    with pytest.raises(PermanentEngineError, match="cannot follow a pose"):
        generate(engine, gallery(POSE_IDS[:1], 1), caps=FACE)


def test_without_its_controlnet_files_the_model_is_not_installed(engine, cache, tmp_path):
    assert engine.is_installed(POSED)
    other = DiffusersEngine(
        make_settings(tmp_path / "other", hf_cache_dir=str(cache), device="cpu")
    )
    assert not other.is_installed({**POSED, "controlNet": {"repo": "lumiku-test/not-there"}})
    assert other.is_installed(FACE)


# ------------------------------------------------------------------ text mode


def test_text_mode_runs_the_warm_base_pipeline_with_the_words(engine):
    plan = [Variation(f"text-v{n}", 70 + n, POSE_IDS[0]) for n in range(2)]
    words = "an avatar, waving"
    text = generate(engine, plan, mode="text", prompt=words)
    assert engine.controlnet_loads == 0 and engine.load_count == 1
    # the same images as the face model without any pose: the base pipeline, the words' prompt
    base = generate(engine, [Variation(v.key, v.seed) for v in plan], caps=FACE, prompt=words)
    assert all(difference(text[key], base[key]) == 0 for key in text)
    parameters = read_parameters(text["text-v1"])
    assert parameters["lumiku_pose_prompt"] == "waving"
    assert "lumiku_control_model" not in parameters and "lumiku_pose_id" not in parameters


# ------------------------------------------------------------------ skeletons


def test_control_images_are_the_skeletons_at_the_jobs_size():
    keypoints = pose_library.find(POSE_IDS[0]).keypoints
    plan = gallery(POSE_IDS[:2], 2)
    poses = {pose_id: pose_library.find(pose_id).keypoints for pose_id in POSE_IDS[:2]}
    images = control_images(plan, poses, 64, 64)
    assert [image.size for image in images] == [(64, 64)] * 4
    assert images[0] is images[1] and images[1] is not images[2]  # each pose drawn once
    assert images[0].tobytes() == skeleton.draw(keypoints, 64).tobytes()
    # not square: the pose's square, as large as fits, centred on black
    wide = control_images(plan[:1], poses, 96, 64)[0]
    assert wide.size == (96, 64)
    assert wide.crop((16, 0, 80, 64)).tobytes() == skeleton.draw(keypoints, 64).tobytes()
    assert wide.crop((0, 0, 16, 64)).getextrema() == ((0, 0),) * 3
    with pytest.raises(PermanentEngineError, match="missing"):
        control_images([Variation("x-v0", 1, "x")], poses, 64, 64)


# ------------------------------------------------------------------ catalog and download

LLLYASVIEL_FILES = [
    "README.md",
    "config.json",
    "control_net_open_pose.py",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.safetensors",
    "images/control.png",
]
XINSIR_FILES = [
    "README.md",
    "config.json",
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model_twins.safetensors",
    "masonry.webp",
]


@pytest.mark.parametrize(
    ("key", "base", "repo", "listing", "weight"),
    [
        (
            "avatar-creator:sd15-lcm-face-pose",
            "avatar-creator:sd15-lcm-face",
            "lllyasviel/control_v11p_sd15_openpose",
            LLLYASVIEL_FILES,
            "diffusion_pytorch_model.fp16.safetensors",
        ),
        (
            "avatar-creator:sdxl-turbo-face-pose",
            "avatar-creator:sdxl-turbo-face",
            "xinsir/controlnet-openpose-sdxl-1.0",
            XINSIR_FILES,
            "diffusion_pytorch_model.safetensors",
        ),
    ],
)
def test_pose_entries_download_their_controlnet_with_the_face_model(
    key, base, repo, listing, weight
):
    rows = {row["key"]: row for row in catalog.ai_models()}
    caps, face = rows[key]["capabilities"], rows[base]["capabilities"]
    files = model_files(caps)
    assert [r for r, _ in files[:-1]] == [r for r, _ in model_files(face)]  # shared, in the cache
    control_repo, patterns = files[-1]
    assert control_repo == repo
    assert sorted(patterns(listing)) == ["config.json", weight]
    assert caps["sizeBytes"] > face["sizeBytes"] and caps["sizeEstimated"] is True
    assert caps["ipAdapter"] == face["ipAdapter"]


DOWNLOAD_KEY = "avatar-creator:tiny-pose-download"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_download, "RETRY_BASE_DELAY", 0.01)
    with HubServer() as server:
        yield server


def test_the_controlnet_is_part_of_the_download_with_one_total(
    hub, app_client, tmp_path, monkeypatch
):
    monkeypatch.setattr(downloads, "PUBLISH_EVERY", 0.0)
    pipeline, adapter, control = tiny_model_files(), ip_adapter_files(), controlnet_files()
    hub.add_repo(SD_REPO, pipeline)
    hub.add_repo(ADAPTER_REPO, adapter)
    hub.add_repo(CONTROLNET_REPO, {**control, "diffusion_pytorch_model.bin": b"0" * 5000})
    held = "diffusion_pytorch_model.safetensors"  # the ControlNet's weights, held mid-way
    hub.hold_after_bytes[held] = 1000
    client = app_client(
        make_settings(
            tmp_path / "home",
            hf_cache_dir=str(tmp_path / "hf-cache"),
            hf_endpoint=hub.url,
            device="cpu",
        )
    )
    add_to_catalog(DOWNLOAD_KEY, SD_REPO, ipAdapter=ADAPTER, controlNet=CONTROL)

    def model() -> dict:
        models = client.get(f"{API}/models").json()["models"]
        return next(m for m in models if m["key"] == DOWNLOAD_KEY)

    expected = sum(len(data) for data in (*pipeline.values(), *adapter.values(), *control.values()))
    assert client.post(f"{API}/models/{DOWNLOAD_KEY}/download").status_code == 202
    hub.holding.wait(30)
    seen = wait_for(lambda: (m := model())["downloading"] and m["progress"] > 50 and m)
    assert seen["installed"] is False and seen["download"]["bytesTotal"] == expected
    hub.release_holds()
    done = wait_for(lambda: (m := model())["installed"] and m, timeout=60)
    assert done["download"]["bytesTotal"] == expected and done["progress"] == 100.0
    assert hub.count("GET", "diffusion_pytorch_model.bin") == 0  # only what it loads


# ------------------------------------------------------------------ through the app

POSES_API = "/api/apps/pose-generator"
APP_KEY = "avatar-creator:tiny-pose"


def test_a_gallery_generation_through_the_app(app_client, cache, tmp_path, monkeypatch):
    force_hub_offline(monkeypatch)
    client = app_client(make_settings(tmp_path / "home", hf_cache_dir=str(cache), device="cpu"))
    add_to_catalog(APP_KEY, SD_REPO, ipAdapter=ADAPTER, controlNet=CONTROL)
    project = client.project()
    response = client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": ("me.png", AVATAR_A, "image/png")},
    )
    assert response.status_code == 201, response.text
    avatar = response.json()["avatar"]
    engine = engines.engine_for("diffusers")
    body = {"avatarId": avatar["id"], "poseIds": POSE_IDS, "variations": 2, "seed": 900}
    response = client.post(f"{POSES_API}/generate", json={**body, "modelKey": APP_KEY})
    assert response.status_code == 202, response.text
    generation_id = response.json()["generation"]["id"]

    def finished() -> dict | None:
        generation = client.get(f"{POSES_API}/generations/{generation_id}").json()["generation"]
        return generation if generation["status"] in ("completed", "failed") else None

    done = wait_for(finished, timeout=120)
    assert done["status"] == "completed", done
    images = {a["variationKey"]: client.get(a["imageUrl"]).content for a in done["avatars"]}
    assert sorted(images) == sorted(f"{pose}-v{n}" for pose in POSE_IDS for n in range(2))
    assert len({rgb(png) for png in images.values()}) == 6
    for a in done["avatars"]:
        parameters = read_parameters(images[a["variationKey"]])
        assert parameters["lumiku_pose_id"] == a["poseId"]
        assert parameters["lumiku_control_model"] == CONTROLNET_REPO
        assert parameters["lumiku_reference_sha256"] == done["reference"]["sha256"]
    assert engine.controlnet_loads == 1 and engine.image_encoder_runs == 1
    assert ledger_problems() == []
