"""A reference photo on the diffusers engine, offline through the real diffusers code.

img2img on the tiny pipeline of tiny_pipeline.py (`AutoPipelineForImage2Image.from_pipe` on the
warm pipeline), and IP-Adapter plus-face: a tiny CLIP vision encoder and a generated adapter
file in a repo laid out like h94/IP-Adapter, loaded by `load_ip_adapter`, with a generated
LoRA and the LCM scheduler like the SD 1.5 face entry. The downloads of such a model go through
the Hub emulator (hub_server.py).
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil

import pytest
from conftest import API, make_settings, wait_for
from hub_server import HubServer
from huggingface_hub import constants
from PIL import Image, ImageDraw
from tiny_pipeline import (
    IP_ADAPTER_WEIGHT,
    LORA_WEIGHT,
    NUMPY_COPY_WARNING,
    add_to_catalog,
    build_pipeline,
    force_hub_offline,
    ip_adapter_files,
    lora_files,
    save_to_hf_cache,
    tiny_model_files,
    write_hf_cache,
)

from lumiku_local import catalog, downloads, engines, hub_download, references
from lumiku_local.doctor import ledger_problems
from lumiku_local.engines.base import EngineJob, FaceBox, Reference, Variation
from lumiku_local.engines.diffusers import (
    DiffusersEngine,
    img2img_steps,
    img2img_strength,
    model_files,
)
from lumiku_local.models import AIModel
from lumiku_local.png_parameters import read_parameters

pytestmark = pytest.mark.filterwarnings(f"ignore:{NUMPY_COPY_WARNING}:DeprecationWarning")

SD_REPO = "lumiku-test/tiny-sd"
ADAPTER_REPO = "lumiku-test/tiny-ip-adapter"
LORA_REPO = "lumiku-test/tiny-lcm-lora"
ADAPTER = {
    "repo": ADAPTER_REPO,
    "subfolder": "models",
    "weightName": IP_ADAPTER_WEIGHT,
    "imageEncoderFolder": "models/image_encoder",
}
PLAIN = {"hfRepo": SD_REPO, "steps": 2, "guidance": 0.0}
FACE = {**PLAIN, "ipAdapter": ADAPTER}
# the SD 1.5 face entry's shape: LCM-LoRA, the LCM scheduler, guidance 1, and the adapter
LCM_FACE = {
    **FACE,
    "loraRepo": LORA_REPO,
    "loraWeightName": LORA_WEIGHT,
    "scheduler": "LCMScheduler",
    "steps": 4,
    "guidance": 1.0,
}
SEEDS = (1000, 1001, 1002, 1003)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf-cache")
    save_to_hf_cache(build_pipeline("tiny"), folder, repo_id=SD_REPO)
    write_hf_cache(ip_adapter_files(), folder, repo_id=ADAPTER_REPO)
    write_hf_cache(lora_files(), folder, repo_id=LORA_REPO)
    return folder


@pytest.fixture
def engine(cache, tmp_path, monkeypatch):
    force_hub_offline(monkeypatch)
    engine = DiffusersEngine(
        make_settings(tmp_path / "home", hf_cache_dir=str(cache), device="cpu")
    )
    yield engine
    engine.unload()


def photo(skin: tuple[int, int, int], background: tuple[int, int, int]) -> bytes:
    """A 96x128 portrait: a background, a face with eyes and a mouth off centre."""
    image = Image.new("RGB", (96, 128), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((30, 24, 78, 80), fill=skin)
    draw.ellipse((40, 40, 48, 48), fill=(30, 30, 30))
    draw.ellipse((60, 40, 68, 48), fill=(30, 30, 30))
    draw.rectangle((46, 62, 62, 66), fill=(150, 40, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def reference(png: bytes, mode: str, likeness: float = 0.6, box=(28, 22, 52)) -> Reference:
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    return Reference(
        png, hashlib.sha256(png).hexdigest(), width, height, FaceBox(*box), likeness, mode
    )


PHOTO_A = photo((230, 190, 160), (40, 90, 200))
PHOTO_B = photo((110, 70, 50), (220, 200, 60))


def generate(engine, caps, ref=None, seeds=SEEDS, keys=None, progress=None) -> dict[str, bytes]:
    """{variation key: PNG} of one engine call."""
    keys = keys or [f"v{n}" for n in range(len(seeds))]
    job = EngineJob(
        generation_id="g",
        model_key="avatar-creator:test",
        capabilities=caps,
        prompt="a portrait",
        width=64,
        height=64,
        variations=[Variation(key, seed) for key, seed in zip(keys, seeds, strict=True)],
        reference=ref,
    )
    images: dict[str, bytes] = {}
    engine.generate(
        job,
        lambda variation, prepared: images.__setitem__(variation.key, prepared.png),
        progress or (lambda fraction, step: None),
        lambda: False,
    )
    return images


def rgb(png: bytes) -> bytes:
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def max_level_difference(one: bytes, other: bytes) -> int:
    # a batch of 4 and a batch of 1 take different CPU kernels: a pixel may differ by a level
    return max(abs(a - b) for a, b in zip(rgb(one), rgb(other), strict=True))


# Another photo or likeness moves pixels by more than this (random weights pass little of the
# photo through: 10-80 levels measured), far above the 1 level of kernel rounding.
FOLLOWS = 4


def check_batch(engine, caps, mode: str) -> dict[str, bytes]:
    """4 distinct images; each variation alone gives its image; another photo other pixels."""
    batch = generate(engine, caps, reference(PHOTO_A, mode))
    assert len({rgb(png) for png in batch.values()}) == 4
    alone = generate(engine, caps, reference(PHOTO_A, mode), seeds=(1002,), keys=["v2"])
    assert max_level_difference(alone["v2"], batch["v2"]) <= 1
    assert max_level_difference(alone["v2"], batch["v0"]) > 16
    other = generate(engine, caps, reference(PHOTO_B, mode))
    assert all(max_level_difference(other[key], batch[key]) > FOLLOWS for key in batch)
    return batch


# ------------------------------------------------------------------ img2img


def test_img2img_starts_from_the_photo_on_the_warm_pipeline(engine):
    plain = generate(engine, PLAIN)
    loads = engine.load_count
    batch = check_batch(engine, PLAIN, "img2img")
    assert engine.load_count == loads  # from_pipe on the warm pipeline: no second load
    # the same seeds without the photo are other images: it started from the photo
    assert all(max_level_difference(plain[key], batch[key]) > 16 for key in batch)
    parameters = read_parameters(batch["v0"])
    ref = reference(PHOTO_A, "img2img")
    assert parameters["lumiku_reference_sha256"] == ref.sha256
    assert (
        parameters["lumiku_likeness"] == "0.60" and parameters["lumiku_reference_mode"] == "img2img"
    )
    assert parameters["strength"] == f"{img2img_strength(0.6):.2f}" == "0.52"
    assert "Denoising strength: 0.52" in parameters["parameters"]
    assert "lumiku_reference_sha256" not in read_parameters(plain["v0"])


def test_img2img_at_low_strength_runs_at_least_one_step(engine):
    steps: list[str] = []
    ref = reference(PHOTO_A, "img2img", likeness=1.0)  # strength 0.2: 2 steps would run none
    images = generate(engine, PLAIN, ref, progress=lambda fraction, step: steps.append(step))
    assert len(images) == 4
    parameters = read_parameters(images["v0"])
    assert parameters["strength"] == "0.20" and parameters["steps"] == "5"
    assert steps == ["step 1 of 1"]


def test_steps_are_raised_until_one_runs():
    for steps in range(1, 9):
        for likeness in (0.0, 0.3, 0.5, 0.77, 0.9, 1.0):
            strength = img2img_strength(likeness)
            raised = img2img_steps(steps, strength)
            assert 0 < strength <= 1 and raised >= steps and int(raised * strength) >= 1
            assert raised == steps or int((raised - 1) * strength) == 0  # no more than needed
    assert img2img_strength(0.0) == 1.0 and math.isclose(img2img_strength(1.0), 0.2)


def test_the_frame_is_cut_to_the_jobs_shape_around_the_face():
    from lumiku_local.engines.reference_image import frame

    box = FaceBox(28, 22, 52)
    assert frame(box, 96, 128, 64, 64) == (0, 0, 96, 96)  # 2 faces wide, held inside the photo
    left, top, right, bottom = frame(FaceBox(10, 60, 20), 96, 128, 64, 32)
    assert (right - left) == 2 * (bottom - top) and (left, top) == (0, 60)  # 40x20 on the face


# ------------------------------------------------------------------ IP-Adapter plus-face


def test_ip_adapter_keeps_the_face_with_embeddings_encoded_once(engine):
    runs = engine.image_encoder_runs
    batch = check_batch(engine, FACE, "ipAdapter")
    # 3 generations: the batch, the variation alone (same photo: reused), the other photo
    assert engine.image_encoder_runs == runs + 2
    assert engine.load_count == 1
    parameters = read_parameters(batch["v1"])
    assert parameters["lumiku_reference_mode"] == "ipAdapter"
    assert parameters["lumiku_ip_adapter_scale"] == "0.60"
    again = generate(engine, FACE, reference(PHOTO_A, "ipAdapter"))  # a retry, a resume
    assert engine.image_encoder_runs == runs + 2
    assert all(max_level_difference(again[key], batch[key]) == 0 for key in batch)
    moved = reference(PHOTO_A, "ipAdapter", box=(20, 30, 60))  # the user moved the square
    generate(engine, FACE, moved, seeds=(1,), keys=["v0"])
    assert engine.image_encoder_runs == runs + 3


def test_likeness_sets_the_adapter_scale(engine):
    weak = generate(engine, FACE, reference(PHOTO_A, "ipAdapter", likeness=0.1), seeds=(5,))
    strong = generate(engine, FACE, reference(PHOTO_A, "ipAdapter", likeness=1.0), seeds=(5,))
    assert read_parameters(weak["v0"])["lumiku_ip_adapter_scale"] == "0.10"
    assert max_level_difference(weak["v0"], strong["v0"]) > FOLLOWS


def test_without_a_photo_the_adapter_changes_nothing(engine, cache, tmp_path):
    """Scale 0 on empty embeddings: the same pixels as the model without an adapter."""
    runs = engine.image_encoder_runs
    with_adapter = generate(engine, FACE, seeds=(7, 8))
    assert engine.image_encoder_runs == runs
    assert read_parameters(with_adapter["v0"])["lumiku_ip_adapter_scale"] == "0.00"
    plain = generate(engine, PLAIN, seeds=(7, 8))
    assert engine.load_count == 2  # the plain model is another pipeline
    assert all(max_level_difference(with_adapter[k], plain[k]) <= 1 for k in plain)


def test_lcm_lora_with_the_adapter_like_the_sd15_face_entry(engine):
    batch = check_batch(engine, LCM_FACE, "ipAdapter")
    parameters = read_parameters(batch["v0"])
    assert parameters["sampler"] == "LCMScheduler" and parameters["steps"] == "4"
    assert parameters["guidance"] == "1.0"


def test_a_missing_image_encoder_is_not_installed(engine, cache, tmp_path):
    assert engine.is_installed(FACE) and engine.is_installed(LCM_FACE)
    partial = tmp_path / "hf-cache"
    shutil.copytree(cache, partial, symlinks=True)
    storage = partial / ("models--" + ADAPTER_REPO.replace("/", "--"))
    (snapshot,) = (storage / "snapshots").iterdir()
    (snapshot / "models" / "image_encoder" / "model.safetensors").unlink()
    other = DiffusersEngine(make_settings(tmp_path / "other", hf_cache_dir=str(partial)))
    assert not other.is_installed(FACE) and not other.is_installed(LCM_FACE)
    assert other.is_installed(PLAIN)


# ------------------------------------------------------------------ catalog and downloads

H94_FILES = [
    "README.md",
    "models/image_encoder/config.json",
    "models/image_encoder/model.safetensors",
    "models/image_encoder/pytorch_model.bin",
    "models/ip-adapter-plus-face_sd15.bin",
    "models/ip-adapter-plus-face_sd15.safetensors",
    "models/ip-adapter_sd15.safetensors",
    "sdxl_models/image_encoder/config.json",
    "sdxl_models/image_encoder/model.safetensors",
    "sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors",
    "sdxl_models/ip-adapter_sdxl.safetensors",
]


@pytest.mark.parametrize(
    ("key", "weight"),
    [
        ("avatar-creator:sd15-lcm-face", "models/ip-adapter-plus-face_sd15.safetensors"),
        (
            "avatar-creator:sdxl-turbo-face",
            "sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors",
        ),
    ],
)
def test_face_entries_download_their_adapter_and_the_vit_h_encoder(key, weight):
    entry = next(row for row in catalog.ai_models() if row["key"] == key)
    caps = entry["capabilities"]
    assert references.mode_for(AIModel(provider="diffusers", capabilities=caps)) == "ipAdapter"
    repo, patterns = model_files(caps)[-1]
    assert repo == "h94/IP-Adapter"
    assert sorted(patterns(H94_FILES)) == [
        "models/image_encoder/config.json",
        "models/image_encoder/model.safetensors",
        weight,
    ]
    assert "insightface" in entry["description"] and "commercial" in entry["description"]


DOWNLOAD_KEY = "avatar-creator:tiny-face-download"


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


def test_the_adapter_and_encoder_are_part_of_the_download_with_one_total(
    hub, app_client, tmp_path, monkeypatch
):
    monkeypatch.setattr(downloads, "PUBLISH_EVERY", 0.0)  # every progress report is an event
    pipeline, adapter, lora = tiny_model_files(), ip_adapter_files(), lora_files()
    hub.add_repo(SD_REPO, pipeline)
    hub.add_repo(ADAPTER_REPO, {**adapter, "models/ip-adapter_sd15.safetensors": b"0" * 5000})
    hub.add_repo(LORA_REPO, lora)
    # the encoder, the last part, is held mid-way: its bytes count in the same total
    held = "models/image_encoder/model.safetensors"
    hub.hold_after_bytes[held] = 1000
    client = app_client(
        make_settings(
            tmp_path / "home",
            hf_cache_dir=str(tmp_path / "hf-cache"),
            hf_endpoint=hub.url,
            device="cpu",
        )
    )
    add_to_catalog(DOWNLOAD_KEY, SD_REPO, **{k: v for k, v in LCM_FACE.items() if k != "hfRepo"})
    events: list[dict] = []
    runtime = client.app.state.runtime
    publish = runtime.publish_fn
    runtime.publish_fn = lambda event: (events.append(event), publish(event))

    def model() -> dict:
        models = client.get(f"{API}/models").json()["models"]
        return next(m for m in models if m["key"] == DOWNLOAD_KEY)

    expected = sum(len(data) for data in (*pipeline.values(), *adapter.values(), *lora.values()))
    assert client.post(f"{API}/models/{DOWNLOAD_KEY}/download").status_code == 202
    hub.holding.wait(30)
    seen = wait_for(lambda: (m := model())["downloading"] and m["progress"] > 50 and m)
    assert seen["installed"] is False  # everything but the encoder is there: not installed
    assert seen["download"]["bytesTotal"] == expected
    hub.release_holds()
    done = wait_for(lambda: (m := model())["installed"] and m, timeout=60)
    totals = {
        e["download"]["bytesTotal"]
        for e in list(events)
        if e["type"] == "download"
        and e["modelKey"] == DOWNLOAD_KEY
        and e["downloading"]
        and "errorMessage" not in e["download"]  # progress, not the row's first estimate
    }
    assert totals == {expected}  # one total, from the first progress event to the last
    assert done["download"]["bytesTotal"] == expected and done["progress"] == 100.0
    assert hub.count("GET", "ip-adapter_sd15.safetensors") == 0  # only the files it needs
    hub.stop()
    generation = client.generate(client.project(), modelKey=DOWNLOAD_KEY, count=2)["generation"]
    assert client.wait_generation(generation["id"], timeout=60)["status"] == "completed"


# ------------------------------------------------------------------ through the app

PLAIN_KEY = "avatar-creator:tiny-test"
FACE_KEY = "avatar-creator:tiny-face"


@pytest.mark.parametrize(("key", "mode"), [(PLAIN_KEY, "img2img"), (FACE_KEY, "ipAdapter")])
def test_a_generation_from_an_uploaded_photo(app_client, cache, tmp_path, monkeypatch, key, mode):
    force_hub_offline(monkeypatch)
    client = app_client(make_settings(tmp_path / "home", hf_cache_dir=str(cache), device="cpu"))
    add_to_catalog(PLAIN_KEY, SD_REPO, maxSize=128)
    add_to_catalog(FACE_KEY, SD_REPO, maxSize=128, ipAdapter=ADAPTER)
    models = {m["key"]: m for m in client.get(f"{API}/models").json()["models"]}
    assert models[key]["reference"]["mode"] == mode
    project = client.project()
    response = client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": ("me.png", PHOTO_A, "image/png")},
    )
    assert response.status_code == 201, response.text
    me = response.json()["avatar"]
    engine = engines.engine_for("diffusers")
    runs = engine.image_encoder_runs

    def generate_from(avatar_id: str) -> dict:
        body = client.generate(
            project, modelKey=key, count=4, seed=500, referenceAvatarId=avatar_id, likeness=0.7
        )
        done = client.wait_generation(body["generation"]["id"], timeout=120)
        assert done["status"] == "completed", done
        return done

    done = generate_from(me["id"])
    assert done["reference"]["mode"] == mode
    images = {a["variationKey"]: client.get(a["imageUrl"]).content for a in done["avatars"]}
    assert len({rgb(png) for png in images.values()}) == 4
    parameters = read_parameters(images["v0"])
    assert parameters["lumiku_reference_sha256"] == done["reference"]["sha256"]
    assert parameters["lumiku_likeness"] == "0.70"
    if mode == "img2img":
        assert parameters["strength"] == "0.44"
    else:
        assert parameters["lumiku_ip_adapter_scale"] == "0.70"
        assert engine.image_encoder_runs == runs + 1  # once for the 4 images
    retried = client.post(f"{API}/generations/{done['id']}/retry")
    assert retried.status_code == 202, retried.text
    again = client.wait_generation(retried.json()["generation"]["id"], timeout=120)
    assert again["status"] == "completed"
    assert engine.image_encoder_runs == runs + (1 if mode == "ipAdapter" else 0)  # reused
    response = client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": ("other.png", PHOTO_B, "image/png")},
    )
    other = generate_from(response.json()["avatar"]["id"])
    by_key = {a["variationKey"]: client.get(a["imageUrl"]).content for a in other["avatars"]}
    assert all(max_level_difference(by_key[k], images[k]) > FOLLOWS for k in images)
    assert ledger_problems() == []
