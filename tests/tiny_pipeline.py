"""Random-weight Stable Diffusion pipelines, saved in the Hugging Face cache layout, for tests.

Nothing here downloads anything: every component is built from a config with random weights
(deterministic from ``seed``), and the tokenizer is a byte-level BPE with no merges (the 256
GPT-2 byte characters, each also with ``</w>``, plus ``<|startoftext|>`` and ``<|endoftext|>``).

The pipeline has the shape of ``stabilityai/sd-turbo``: a ``StableDiffusionPipeline`` with a CLIP
text encoder, a ``UNet2DConditionModel``, an ``AutoencoderKL`` whose VAE scale factor is 8 like
the real one (four levels, so a 64x64 image has 8x8 latents) and an ``EulerDiscreteScheduler``
with ``timestep_spacing="trailing"``; no safety checker and no feature extractor.

Sizes (measured on a 2-core CPU, float32; loading from the cache takes ~0.3 s for either, once
diffusers is imported, which itself takes ~4-5 s):

* ``"tiny"``: 5.6 MB on disk; a batch of 4 images at 64x64 with 2 steps takes ~0.1 s.
* ``"bench"``: 42 MB on disk; a batch of 4 images at 256x256 with 4 steps takes ~5.5 s with
  ``guidance_scale=0.0`` (sd-turbo style: ~1.2 s per UNet step, ~1.7 s for the VAE decode) and
  ~10 s with classifier-free guidance (``guidance_scale > 1``, the default 7.5).

``save_to_hf_cache`` writes what ``huggingface_hub.snapshot_download`` leaves in a cache::

    cache_dir/models--{org}--{name}/
        blobs/<etag>                      file contents (etag: sha256 for LFS-type files such
                                          as *.safetensors, the git blob sha1 otherwise)
        refs/main                         the commit sha, no newline
        snapshots/<sha>/<path>            relative symlinks to ../../blobs/<etag> (real copies
                                          where the file system refuses symlinks)
        trees/<sha>.json                  huggingface_hub 2.4's tree-listing cache, which diffusers
                                          reads to check that a cached pipeline is complete;
                                          ``tree_listing=False`` leaves it out, as huggingface_hub
                                          releases before 2026 did

so ``DiffusionPipeline.from_pretrained(repo_id, cache_dir=..., local_files_only=True)`` loads it
offline. ``tiny_model_files`` / ``pipeline_files`` give the same files as ``{path: bytes}`` and
``file_etag`` / ``commit_sha`` the headers a Hub emulator should send.

Add-ons, as ``{path: bytes}`` for ``write_hf_cache`` or a Hub emulator: ``ip_adapter_files``
is an IP-Adapter *plus* repo laid out like h94/IP-Adapter (``models/<weight>.safetensors`` and
``models/image_encoder/``, a tiny ``CLIPVisionModelWithProjection``) that diffusers'
``load_ip_adapter`` loads into the tiny pipeline; ``lora_files`` a LoRA repo
(``pytorch_lora_weights.safetensors``, as latent-consistency/lcm-lora-sdv1-5), loaded by
``load_lora_weights`` (needs peft); ``controlnet_files`` an OpenPose ControlNet repo laid out
like lllyasviel/control_v11p_sd15_openpose (``config.json`` and
``diffusion_pytorch_model.safetensors``): ``ControlNetModel.from_unet`` on the tiny UNet, with
weights drawn so that the control image changes the pixels (``build_controlnet``).

Running a pipeline under ``-W error`` needs one filter: torch's ``Tensor.__array__`` takes no
``copy`` argument, so numpy 2 warns (``DeprecationWarning: __array__ implementation doesn't accept
a copy keyword``) when the Euler scheduler calls ``np.array(tensor)`` in ``set_timesteps``. The
message is in ``NUMPY_COPY_WARNING``, for ``warnings.filterwarnings`` or
``pytest.mark.filterwarnings``.

Offline mode inside a running process: huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import,
into ``huggingface_hub.constants.HF_HUB_OFFLINE``, so setting the variable later changes nothing;
``force_hub_offline(monkeypatch)`` patches the constant too. It matters even with
``local_files_only=True``: huggingface_hub 2.x builds request headers, and on first use fetches
``{HF_ENDPOINT}/api/agent-harnesses`` (3 s timeout), unless that constant is true.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

__all__ = [
    "IP_ADAPTER_WEIGHT",
    "LORA_WEIGHT",
    "NUMPY_COPY_WARNING",
    "SIZES",
    "add_to_catalog",
    "CONTROLNET_WEIGHT",
    "build_controlnet",
    "build_image_encoder",
    "build_pipeline",
    "commit_sha",
    "controlnet_files",
    "file_etag",
    "force_hub_offline",
    "ip_adapter_files",
    "ip_adapter_plus_state_dict",
    "is_lfs_file",
    "lora_files",
    "pipeline_files",
    "save_to_hf_cache",
    "tiny_model_files",
    "write_hf_cache",
]

#: Regex for ``warnings.filterwarnings(message=...)``: numpy 2 warns when it converts a torch
#: tensor (``Tensor.__array__`` has no ``copy`` argument); diffusers' schedulers do this.
NUMPY_COPY_WARNING = r"__array__ implementation doesn't accept a copy keyword"

# The Hub stores these with Git LFS (its default .gitattributes); their ETag is the sha256.
_LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".msgpack", ".h5")


@dataclass(frozen=True)
class Size:
    """Dimensions of one pipeline size."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_intermediate: int
    unet_channels: tuple[int, ...]
    unet_layers_per_block: int
    unet_head_dim: int
    unet_down: tuple[str, ...]
    unet_up: tuple[str, ...]
    vae_channels: tuple[int, int, int, int]
    vae_layers_per_block: int
    image_size: int  # the pipeline's default height and width

    @property
    def unet_sample_size(self) -> int:
        return self.image_size // 8  # VAE scale factor 8, as 2 ** (len(vae_channels) - 1)


SIZES: dict[str, Size] = {
    "tiny": Size(
        text_hidden=32,
        text_layers=2,
        text_heads=4,
        text_intermediate=37,
        unet_channels=(32, 64),
        unet_layers_per_block=1,
        unet_head_dim=8,
        unet_down=("DownBlock2D", "CrossAttnDownBlock2D"),
        unet_up=("CrossAttnUpBlock2D", "UpBlock2D"),
        vae_channels=(32, 32, 32, 32),
        vae_layers_per_block=1,
        image_size=64,
    ),
    "bench": Size(
        text_hidden=128,
        text_layers=2,
        text_heads=4,
        text_intermediate=256,
        unet_channels=(64, 128),
        unet_layers_per_block=2,
        unet_head_dim=32,
        unet_down=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        unet_up=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        vae_channels=(32, 64, 128, 128),
        vae_layers_per_block=1,
        image_size=256,
    ),
}

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _vocab() -> dict[str, int]:
    chars = list(_bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), BOS, EOS]
    return {token: index for index, token in enumerate(tokens)}


def build_pipeline(size: str = "tiny", seed: int = 0) -> StableDiffusionPipeline:
    """Return an in-memory ``StableDiffusionPipeline`` with random weights.

    ``size`` is a key of ``SIZES``: ``"tiny"`` (64x64 default images, ~2.6 MB) or ``"bench"``
    (256x256 default images, ~43 MB, several seconds for a batch of 4 with 4 steps on a 2-core
    CPU). The weights depend only on ``size`` and ``seed``; the global torch RNG is left as it was.
    The progress bar is disabled.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    try:
        spec = SIZES[size]
    except KeyError:
        raise ValueError(f"unknown size {size!r}; expected one of {sorted(SIZES)}") from None

    vocab = _vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocab),
                hidden_size=spec.text_hidden,
                num_hidden_layers=spec.text_layers,
                num_attention_heads=spec.text_heads,
                intermediate_size=spec.text_intermediate,
                projection_dim=spec.text_hidden,
                max_position_embeddings=77,
                bos_token_id=vocab[BOS],
                eos_token_id=vocab[EOS],
                pad_token_id=vocab[EOS],
            )
        )
        unet = UNet2DConditionModel(
            sample_size=spec.unet_sample_size,
            in_channels=4,
            out_channels=4,
            down_block_types=spec.unet_down,
            up_block_types=spec.unet_up,
            block_out_channels=spec.unet_channels,
            layers_per_block=spec.unet_layers_per_block,
            cross_attention_dim=spec.text_hidden,
            attention_head_dim=spec.unet_head_dim,
            norm_num_groups=32,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
            up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
            block_out_channels=spec.vae_channels,
            layers_per_block=spec.vae_layers_per_block,
            latent_channels=4,
            norm_num_groups=32,
            sample_size=spec.image_size,
        )
    # sd-turbo's scheduler config (steps_offset=1: diffusers warns about 0 as outdated).
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def force_hub_offline(monkeypatch) -> None:
    """Put huggingface_hub (and diffusers) in offline mode for one test, via pytest's monkeypatch.

    Sets ``HF_HUB_OFFLINE=1`` for code that reads the environment later, and patches the values
    that were read from it at import: ``huggingface_hub.constants.HF_HUB_OFFLINE`` (behind
    ``huggingface_hub.is_offline_mode()``) and diffusers' own copy (its telemetry switch).
    """
    import diffusers.utils.hub_utils
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(diffusers.utils.hub_utils, "HF_HUB_OFFLINE", True, raising=False)


def pipeline_files(pipeline) -> dict[str, bytes]:
    """``save_pretrained`` the pipeline (safetensors); return ``{relative posix path: bytes}``."""
    with tempfile.TemporaryDirectory(prefix="tiny-pipeline-") as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        root = Path(tmp)
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }


@functools.cache
def _model_files(size: str, seed: int) -> tuple[tuple[str, bytes], ...]:
    return tuple(pipeline_files(build_pipeline(size, seed)).items())


def tiny_model_files(size: str = "tiny", seed: int = 0) -> dict[str, bytes]:
    """The files of ``build_pipeline(size, seed)`` as ``{path: bytes}`` (built once per process).

    For a local HTTP server that emulates the Hub: serve each file at
    ``/{repo_id}/resolve/{revision}/{path}`` with ``ETag: file_etag(path, data)`` and
    ``X-Repo-Commit: commit_sha(files)``.
    """
    return dict(_model_files(size, seed))


def is_lfs_file(path: str) -> bool:
    """Whether the Hub would store ``path`` with Git LFS (weights) rather than plain git."""
    return path.endswith(_LFS_SUFFIXES)


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_etag(path: str, data: bytes) -> str:
    """The Hub's ETag for a file, which is also its blob name in the cache.

    The sha256 of the content for LFS files, the git blob sha1 for the others.
    """
    return hashlib.sha256(data).hexdigest() if is_lfs_file(path) else _git_blob_sha1(data)


def commit_sha(files: Mapping[str, bytes]) -> str:
    """A deterministic 40-hex "commit" sha for a set of files (a hash of paths and contents)."""
    digest = hashlib.sha1()
    for path in sorted(files):
        digest.update(f"{path}\0{_git_blob_sha1(files[path])}\n".encode())
    return digest.hexdigest()


def write_hf_cache(
    files: Mapping[str, bytes],
    cache_dir: str | os.PathLike[str],
    repo_id: str = "lumiku-test/tiny-sd",
    revision_sha: str | None = None,
    tree_listing: bool = True,
) -> Path:
    """Write ``{path: bytes}`` as model repo ``repo_id`` in the HF cache; return the snapshot path.

    ``revision_sha`` defaults to ``commit_sha(files)``; ``refs/main`` points at it. Writing a
    second revision of the same repo keeps the first snapshot and moves ``refs/main``.
    ``tree_listing=False``: no ``trees/<sha>.json``, a cache as older huggingface_hub left it.
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    sha = revision_sha or commit_sha(files)
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"revision_sha must be 40 lowercase hex digits, got {sha!r}")

    storage = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    blobs = storage / "blobs"
    snapshot = storage / "snapshots" / sha
    if snapshot.exists():
        shutil.rmtree(snapshot)
    blobs.mkdir(parents=True, exist_ok=True)

    tree: dict[str, dict[str, object]] = {}
    for path, data in sorted(files.items()):
        etag = file_etag(path, data)
        blob = blobs / etag
        if not blob.exists():
            tmp = blob.with_name(etag + ".incomplete")
            tmp.write_bytes(data)
            tmp.replace(blob)
        target = snapshot / path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(os.path.relpath(blob, target.parent))
        except OSError:  # e.g. Windows without developer mode: huggingface_hub copies too
            shutil.copyfile(blob, target)
        entry: dict[str, object] = {"size": len(data), "blob_id": _git_blob_sha1(data)}
        if is_lfs_file(path):
            entry.update(lfs_sha256=etag, lfs_size=len(data))
        tree[path] = entry

    refs = storage / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(sha)
    if not tree_listing:
        return snapshot
    trees = storage / "trees"
    trees.mkdir(exist_ok=True)
    listing = {"format_version": 1, "files": tree}
    (trees / f"{sha}.json").write_text(json.dumps(listing, indent=1), encoding="utf-8")
    return snapshot


def save_to_hf_cache(
    pipeline,
    cache_dir: str | os.PathLike[str],
    repo_id: str = "lumiku-test/tiny-sd",
    revision_sha: str | None = None,
    tree_listing: bool = True,
) -> Path:
    """Save ``pipeline`` in the HF cache layout under ``cache_dir``; return the snapshot path.

    See ``write_hf_cache`` for the layout, the revision and the listing.
    """
    return write_hf_cache(pipeline_files(pipeline), cache_dir, repo_id, revision_sha, tree_listing)


def add_to_catalog(
    key: str,
    repo_id: str,
    *,
    database: str | os.PathLike[str] | None = None,
    cost: int = 3,
    deadline: float = 120.0,
    **capabilities: object,
) -> None:
    """Put a diffusers model for `repo_id` in Lumiku's catalog (replacing a row with that key).

    Without `database`, through the app's Peewee models (the app must be started); with a path to
    a lumiku.db, through sqlite3 directly, for a server running in another process.
    """
    caps = {
        "hfRepo": repo_id,
        "width": 64,
        "height": 64,
        "minSize": 64,
        "maxSize": 1024,
        "steps": 2,
        "guidance": 0.0,
        **capabilities,
    }
    row = {
        "key": key,
        "app_id": "avatar-creator",
        "name": "Tiny test model",
        "description": "",
        "provider": "diffusers",
        "tier": "free",
        "credit_cost": cost,
        "enabled": 1,
        "deadline_seconds": deadline,
        "sort_order": 99,
    }
    if database is None:
        from lumiku_local.models import AIModel

        AIModel.insert(capabilities=caps, **row).on_conflict_replace().execute()
        return
    import sqlite3

    row.update(
        capabilities=json.dumps(caps),
        created_at="2026-01-01 00:00:00",
        updated_at="2026-01-01 00:00:00",
    )
    with sqlite3.connect(database) as db:
        db.execute(
            f"insert or replace into ai_model ({', '.join(row)}) "
            f"values ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )


# ---------------------------------------------------------------------------------------------
# IP-Adapter plus-face: a tiny CLIP vision encoder and adapter weights for the tiny pipeline

IP_ADAPTER_WEIGHT = "ip-adapter-plus-face_sd15.safetensors"


def build_image_encoder(seed: int = 0):
    """A random-weight ``CLIPVisionModelWithProjection`` small enough for tests: 32x32 images in
    8x8 patches, so its penultimate hidden states (what plus adapters read) are 17 tokens of 32."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=32,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPVisionModelWithProjection(config).eval()


def ip_adapter_plus_state_dict(unet, image_hidden_size: int, seed: int = 0) -> dict:
    """An IP-Adapter *plus* checkpoint for `unet`, keyed as h94/IP-Adapter's files are.

    Built the way diffusers' own tests build one (``create_ip_adapter_plus_state_dict``): the
    ``to_k_ip`` / ``to_v_ip`` weights of an ``IPAdapterAttnProcessor`` per cross-attention layer
    (``ip_adapter.{1,3,5...}``), and an ``IPAdapterPlusImageProjection`` (the Resampler) written
    back in the original Resampler's names (``image_proj.layers.N.0.to_kv`` and so on), which
    diffusers' loader converts again. Depth 4 and 64-wide heads: what the loader assumes."""
    import torch
    from diffusers.models.attention_processor import IPAdapterAttnProcessor
    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    config = unet.config
    cross = config.cross_attention_dim
    ip_adapter: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        key_id = 1
        for name in unet.attn_processors:
            if name.endswith("attn1.processor"):
                continue
            if name.startswith("mid_block"):
                hidden = config.block_out_channels[-1]
            elif name.startswith("up_blocks"):
                hidden = list(reversed(config.block_out_channels))[int(name[len("up_blocks.")])]
            else:
                hidden = config.block_out_channels[int(name[len("down_blocks.")])]
            weights = IPAdapterAttnProcessor(hidden, cross, scale=1.0).state_dict()
            ip_adapter[f"{key_id}.to_k_ip.weight"] = weights["to_k_ip.0.weight"]
            ip_adapter[f"{key_id}.to_v_ip.weight"] = weights["to_v_ip.0.weight"]
            key_id += 2
        resampler = IPAdapterPlusImageProjection(
            embed_dims=image_hidden_size,
            output_dims=cross,
            hidden_dims=64,
            depth=4,
            dim_head=64,
            heads=1,
            num_queries=4,
        ).state_dict()
    image_proj: dict[str, torch.Tensor] = {}
    for key, value in resampler.items():
        parts = key.split(".")
        if parts[0] != "layers":
            image_proj[key] = value
            continue
        layer, rest = parts[1], ".".join(parts[2:])
        original = {
            "ln0.weight": "0.norm1.weight",
            "ln0.bias": "0.norm1.bias",
            "ln1.weight": "0.norm2.weight",
            "ln1.bias": "0.norm2.bias",
            "attn.to_q.weight": "0.to_q.weight",
            "attn.to_out.0.weight": "0.to_out.weight",
            "ff.0.weight": "1.0.weight",
            "ff.0.bias": "1.0.bias",
            "ff.1.net.0.proj.weight": "1.1.weight",
            "ff.1.net.2.weight": "1.3.weight",
        }
        if rest == "attn.to_k.weight":
            value = torch.cat([value, resampler[key.replace("to_k", "to_v")]], dim=0)
            image_proj[f"layers.{layer}.0.to_kv.weight"] = value
        elif rest != "attn.to_v.weight":
            image_proj[f"layers.{layer}.{original[rest]}"] = value
    return {
        **{f"image_proj.{k}": v.contiguous() for k, v in image_proj.items()},
        **{f"ip_adapter.{k}": v.contiguous() for k, v in ip_adapter.items()},
    }


@functools.cache
def _ip_adapter_files(
    size: str, seed: int, subfolder: str, weight_name: str, encoder_folder: str
) -> tuple[tuple[str, bytes], ...]:
    from safetensors.torch import save as save_safetensors

    encoder = build_image_encoder(seed)
    state = ip_adapter_plus_state_dict(build_pipeline(size).unet, encoder.config.hidden_size, seed)
    files = {f"{subfolder}/{weight_name}": save_safetensors(state)}
    with tempfile.TemporaryDirectory(prefix="tiny-image-encoder-") as tmp:
        encoder.save_pretrained(tmp, safe_serialization=True)
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                files[f"{encoder_folder}/{path.relative_to(tmp).as_posix()}"] = path.read_bytes()
    return tuple(sorted(files.items()))


def ip_adapter_files(
    size: str = "tiny",
    seed: int = 0,
    *,
    subfolder: str = "models",
    weight_name: str = IP_ADAPTER_WEIGHT,
    encoder_folder: str = "models/image_encoder",
) -> dict[str, bytes]:
    """An IP-Adapter repo for ``build_pipeline(size)`` laid out like h94/IP-Adapter:
    ``{subfolder}/{weight_name}`` (the plus adapter) and the image encoder in `encoder_folder`
    (``config.json`` + ``model.safetensors``), as ``{path: bytes}`` (built once per process)."""
    return dict(_ip_adapter_files(size, seed, subfolder, weight_name, encoder_folder))


LORA_WEIGHT = "pytorch_lora_weights.safetensors"


@functools.cache
def _lora_files(size: str, seed: int) -> tuple[tuple[str, bytes], ...]:
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = build_pipeline(size).unet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(
            LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
        )
        with torch.no_grad():
            for name, parameter in unet.named_parameters():
                if "lora_B" in name:  # peft starts B at zero: a LoRA that changes nothing
                    parameter.normal_(std=0.05)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    with tempfile.TemporaryDirectory(prefix="tiny-lora-") as tmp:
        StableDiffusionPipeline.save_lora_weights(
            tmp, unet_lora_layers=layers, weight_name=LORA_WEIGHT, safe_serialization=True
        )
        return ((LORA_WEIGHT, (Path(tmp) / LORA_WEIGHT).read_bytes()),)


def lora_files(size: str = "tiny", seed: int = 0) -> dict[str, bytes]:
    """A LoRA repo for ``build_pipeline(size)`` (as latent-consistency/lcm-lora-sdv1-5 is laid
    out: ``pytorch_lora_weights.safetensors`` at the root), with random non-zero weights."""
    return dict(_lora_files(size, seed))


CONTROLNET_WEIGHT = "diffusion_pytorch_model.safetensors"


def build_controlnet(size: str = "tiny", seed: int = 0):
    """A ``ControlNetModel`` for ``build_pipeline(size)``: ``from_unet`` on its UNet, with a
    conditioning embedding of three downsamplings (the tiny VAE's scale factor 8). Its weights
    are made to follow the control image: the embedding's convolutions drawn anew at std 0.3
    (at their default scale a thin skeleton moves the output by a hundredth of a level) and
    the zero convolutions (each block's output, the middle block's) at std 0.02 (more drowns
    the face adapter's effect), biases zero; a trained ControlNet's are not zero either."""
    import torch
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(
        build_pipeline(size).unet, conditioning_embedding_out_channels=(8, 8, 16, 16)
    )
    embedding = [
        module
        for module in controlnet.controlnet_cond_embedding.modules()
        if isinstance(module, torch.nn.Conv2d)
    ]
    outputs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for layers, std in ((embedding, 0.3), (outputs, 0.02)):
            for layer in layers:
                layer.weight.normal_(std=std)
                layer.bias.zero_()
    return controlnet.eval()


@functools.cache
def _controlnet_files(size: str, seed: int) -> tuple[tuple[str, bytes], ...]:
    with tempfile.TemporaryDirectory(prefix="tiny-controlnet-") as tmp:
        build_controlnet(size, seed).save_pretrained(tmp, safe_serialization=True)
        return tuple(
            (path.relative_to(tmp).as_posix(), path.read_bytes())
            for path in sorted(Path(tmp).rglob("*"))
            if path.is_file()
        )


def controlnet_files(size: str = "tiny", seed: int = 0) -> dict[str, bytes]:
    """A ControlNet repo for ``build_pipeline(size)`` (``config.json`` and
    ``diffusion_pytorch_model.safetensors`` at the root, as lllyasviel's are), as
    ``{path: bytes}`` (built once per process)."""
    return dict(_controlnet_files(size, seed))
