"""Local Hugging Face diffusion: one warm pipeline, a batch per call, progress and cancel per step.

torch and diffusers live in the optional `diffusion` extra and are imported on first use only.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import failpoints, storage
from ..config import Settings
from ..png_parameters import png_with_parameters
from . import reference_image
from .base import (
    Cancelled,
    EngineJob,
    OnImage,
    OnProgress,
    PermanentEngineError,
    Reference,
    TransientEngineError,
    Variation,
)

log = logging.getLogger("lumiku.engines.diffusers")

INSTALL_STATE_TTL = 5.0  # seconds: `lumiku models pull/rm` in a terminal shows up soon after
INSTALL_HINT = (
    "Local AI models need Lumiku's diffusion components: "
    "pip install 'lumiku-local[diffusion]' (the packaged app includes them)."
)


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda", "cuda:1", "mps" or "cpu"
    dtype_name: str  # "float16", "bfloat16" or "float32"


def follows_negative_prompt(capabilities: dict[str, Any]) -> bool:
    """Classifier-free guidance (guidance above 1) is what reads a negative prompt: one-step
    models run without it, and FLUX's guidance is distilled into the model, not CFG."""
    distilled = str(capabilities.get("hfRepo") or "").startswith("black-forest-labs/FLUX")
    return float(capabilities.get("guidance", 0.0)) > 1.0 and not distilled


def torch_available() -> bool:
    """Whether the diffusion extra is installed (found, not imported: that takes seconds)."""
    import importlib.util

    return all(
        importlib.util.find_spec(name) is not None
        for name in ("torch", "diffusers", "transformers")
    )


def choose_device(preference: str, prefers_bf16: bool = False) -> DeviceChoice:
    """cuda -> mps -> cpu unless a device is named; half precision on GPUs, fp32 on the CPU."""
    import torch

    device = preference
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise PermanentEngineError(
            f"The device setting is {preference!r} but this PyTorch has no CUDA support or no "
            "NVIDIA GPU is visible. Set device to auto, or install a CUDA build of PyTorch."
        )
    if preference == "mps" and not torch.backends.mps.is_available():
        raise PermanentEngineError("The device setting is 'mps' but Apple MPS is not available.")
    if preference == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device.startswith("cuda"):
        bf16 = prefers_bf16 and torch.cuda.is_bf16_supported()
        return DeviceChoice(device, "bfloat16" if bf16 else "float16")
    if device == "mps":
        return DeviceChoice(device, "float16")
    return DeviceChoice("cpu", "float32")


def _vram_gb(device: str) -> float:
    import torch

    return torch.cuda.get_device_properties(torch.device(device)).total_memory / 1024**3


# img2img: likeness 0 ignores the photo (strength 1), likeness 1 keeps most of it (0.2)
STRENGTH_AT_FULL_LIKENESS = 0.2
FACE_EMBEDS_KEPT = 8  # face embeddings kept in memory (a few references, retried or resumed)


def img2img_strength(likeness: float) -> float:
    """How much of the photo is noised away: 1 - 0.8 * likeness, within (0, 1]."""
    strength = 1.0 - (1.0 - STRENGTH_AT_FULL_LIKENESS) * min(max(likeness, 0.0), 1.0)
    # rounded as the PNG records it (and 1 - 0.8 is 0.19999...: 5 steps would run none)
    return min(max(round(strength, 2), 0.01), 1.0)


def img2img_steps(steps: int, strength: float) -> int:
    """`steps`, raised until int(steps * strength) >= 1: diffusers runs that many denoising
    steps, and with none it fails ("cannot reshape tensor of 0 elements")."""
    steps = max(steps, 1)
    while int(steps * strength) < 1:
        steps += 1
    return steps


OOM_ADVICE = (
    "Out of memory even at the lowest memory setting. Choose fewer images, a smaller size or a "
    "smaller model, or close other programs using the GPU."
)


class _OutOfMemory(Exception):
    pass


class _LoadedPipeline:
    def __init__(
        self, key: tuple[str, ...], pipeline: Any, choice: DeviceChoice, repos: list[str]
    ) -> None:
        self.key = key
        self.pipeline = pipeline
        self.choice = choice
        self.repos = set(repos)  # what it reads from: release() before deleting files
        self.offloaded = bool(getattr(pipeline, "_lumiku_offloaded", False))
        self.loads = 1
        self._img2img: Any = None
        # the ControlNet pipeline on the same components, and which ControlNet it has
        self._controlnet: tuple[tuple[str, ...], Any] | None = None

    def controlnet(self, key: tuple[str, ...], load: Callable[[], Any]) -> Any:
        """The ControlNet pipeline on this pipeline's components, with the ControlNet `load`
        reads: made once (another ControlNet replaces it), the base model never read again."""
        if self._controlnet is not None and self._controlnet[0] == key:
            return self._controlnet[1]
        from diffusers import AutoPipelineForText2Image

        self._controlnet = None
        controlnet = load()
        try:
            # AutoPipeline's from_pipe keeps the components' dtype (DiffusionPipeline.from_pipe
            # would cast the shared UNet to float32); the UNet's IP-Adapter comes along
            pipeline = AutoPipelineForText2Image.from_pipe(self.pipeline, controlnet=controlnet)
        except ValueError as exc:  # no ControlNet form of this pipeline class
            raise PermanentEngineError(
                f"This model cannot follow a pose ({type(self.pipeline).__name__})."
            ) from exc
        pipeline.set_progress_bar_config(disable=True)
        if self.offloaded:
            pipeline.enable_model_cpu_offload(device=self.choice.device)
        else:
            controlnet.to(self.choice.device)
        self.repos.add(key[0])
        self._controlnet = (key, pipeline)
        return pipeline

    def img2img(self) -> Any:
        """The image-to-image pipeline on the same components: made once, never loaded."""
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            try:
                self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipeline)
            except ValueError as exc:  # no image-to-image form of this pipeline class
                raise PermanentEngineError(
                    f"This model cannot start from a photo ({type(self.pipeline).__name__})."
                ) from exc
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img


@dataclass
class _Call:
    """One pipeline call: which pipeline, its arguments beyond the prompt, what the PNGs say."""

    pipeline: Any
    steps: int  # num_inference_steps
    denoising_steps: int  # what runs (img2img runs int(steps * strength))
    arguments: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    posed: bool = False  # each image follows its variation's pose (the PNG names it)


class DiffusersEngine:
    """Runs Hugging Face diffusion pipelines from the local cache; keeps one warm."""

    name = "diffusers"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device_preference = settings.device
        self.idle_minutes = settings.pipeline_idle_minutes
        self._lock = threading.RLock()  # one pipeline call at a time: it owns the GPU
        self._loaded: _LoadedPipeline | None = None
        self._idle_timer: threading.Timer | None = None
        self._installed: dict[tuple[str, ...], tuple[float, bool]] = {}
        self._install_lock = threading.Lock()
        self._install_epoch = 0  # bumped by forget_install_state: checks begun before are stale
        self.load_count = 0  # how many times a pipeline was read from disk (tests, bench)
        self.image_encoder_runs = 0  # face embeddings computed, not reused (tests, bench)
        self.controlnet_loads = 0  # ControlNets read from disk (tests, bench)
        self._face_embeds: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    @property
    def cache_dir(self) -> Path:
        return self.settings.hf_cache  # resolved on first use: huggingface_hub loads lazily

    # ------------------------------------------------------------ install state

    def is_installed(self, capabilities: dict[str, Any]) -> bool:
        repo = capabilities.get("hfRepo")
        if not repo:
            return False
        key = (
            repo,
            capabilities.get("variant") or "",
            capabilities.get("loraRepo") or "",
            capabilities.get("loraWeightName") or "",
            *_ip_adapter_key(capabilities),
            *_controlnet_key(capabilities),
        )
        with self._install_lock:
            checked_at, cached = self._installed.get(key, (0.0, False))
            epoch = self._install_epoch
        if time.monotonic() - checked_at <= INSTALL_STATE_TTL:
            return cached
        installed = self._check_installed(capabilities)
        with self._install_lock:
            # a download that finished (or files removed) while we looked makes this answer
            # stale: it is returned to this caller only, never kept for the next one
            if self._install_epoch == epoch:
                self._installed[key] = (time.monotonic(), installed)
        return installed

    def _check_installed(self, capabilities: dict[str, Any]) -> bool:
        from .. import hub_download

        repo = capabilities["hfRepo"]
        # the weights we would download, or the plain (fp32) ones another tool may have fetched
        candidates = [allow_patterns(capabilities)]
        if capabilities.get("variant"):
            candidates.append(allow_patterns({**capabilities, "variant": None}))
        if not any(
            hub_download.is_cached(repo, cache_dir=self.cache_dir, allow_patterns=patterns)
            for patterns in candidates
        ):
            return False
        # the add-ons (LoRA, IP-Adapter and its image encoder, ControlNet): all or not installed
        return all(
            hub_download.is_cached(repo, cache_dir=self.cache_dir, allow_patterns=patterns)
            for repo, patterns in model_files(capabilities)[1:]
        )

    def _cached_variant(self, capabilities: dict[str, Any]) -> str | None:
        """The catalog's variant (fp16) if the cache has it complete; None loads the plain
        weights another tool may have fetched instead (diffusers refuses a variant it lacks)."""
        from .. import hub_download

        variant, repo = capabilities.get("variant"), capabilities["hfRepo"]
        if not variant:
            return None
        files = hub_download.cached_files(repo, cache_dir=self.cache_dir)
        complete = hub_download.is_cached(
            repo, cache_dir=self.cache_dir, allow_patterns=allow_patterns(capabilities)
        )
        return variant if complete and hub_download.has_variant(files, variant) else None

    def unavailable_reason(self) -> str | None:
        """Why installed models cannot run here, or None."""
        return None if torch_available() else INSTALL_HINT

    def forget_install_state(self) -> None:
        """Call after a download finishes or files are removed."""
        with self._install_lock:
            self._install_epoch += 1
            self._installed.clear()

    # ------------------------------------------------------------ pipeline cache

    def _pipeline(self, capabilities: dict[str, Any]) -> _LoadedPipeline:
        if not torch_available():
            raise PermanentEngineError(INSTALL_HINT)
        choice = choose_device(self.device_preference, capabilities.get("prefersBf16", False))
        key = (
            capabilities["hfRepo"],
            capabilities.get("variant") or "",
            capabilities.get("loraRepo") or "",
            *_ip_adapter_key(capabilities),
            capabilities.get("scheduler") or "",
            choice.device,
            choice.dtype_name,
        )
        loaded = self._loaded
        if loaded is not None and loaded.key == key:
            return loaded
        self.unload()  # a different model replaces the warm one
        pipeline = self._load(capabilities, choice)
        repos = [repo for repo, _ in model_files({**capabilities, "controlNet": None})]
        self._loaded = _LoadedPipeline(key, pipeline, choice, repos)
        return self._loaded

    def _load(self, capabilities: dict[str, Any], choice: DeviceChoice) -> Any:
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()  # our progress goes to the app, not stderr
        transformers_logging.disable_progress_bar()
        warnings.filterwarnings(  # torch + numpy 2 in the Euler scheduler: noise in the log
            "ignore",
            message="__array__ implementation doesn't accept a copy keyword",
            category=DeprecationWarning,
        )
        started = time.perf_counter()
        kwargs: dict[str, Any] = {
            "cache_dir": str(self.cache_dir),
            "local_files_only": True,  # installed means on disk: no network at generation time
            "dtype": getattr(torch, choice.dtype_name),
        }
        if variant := self._cached_variant(capabilities):
            kwargs["variant"] = variant
        try:
            pipeline = DiffusionPipeline.from_pretrained(capabilities["hfRepo"], **kwargs)
        except (OSError, ValueError) as exc:
            raise PermanentEngineError(
                f"The model files of {capabilities['hfRepo']} are missing or incomplete "
                f"({type(exc).__name__}). Download the model again from the Models page."
            ) from exc
        if capabilities.get("loraRepo"):
            try:
                pipeline.load_lora_weights(
                    capabilities["loraRepo"],
                    weight_name=capabilities.get("loraWeightName"),
                    cache_dir=str(self.cache_dir),
                    local_files_only=True,
                )
            except (OSError, ValueError) as exc:
                raise PermanentEngineError(
                    f"The LoRA {capabilities['loraRepo']} is missing or incomplete "
                    f"({exc}). Download the model again from the Models page."
                ) from exc
        if scheduler := capabilities.get("scheduler"):  # LCM-LoRA needs the LCM scheduler
            import diffusers

            pipeline.scheduler = getattr(diffusers, scheduler).from_config(
                pipeline.scheduler.config
            )
        if adapter := capabilities.get("ipAdapter"):
            try:
                pipeline.load_ip_adapter(
                    adapter["repo"],
                    subfolder=adapter.get("subfolder", ""),
                    weight_name=adapter["weightName"],
                    image_encoder_folder=adapter.get("imageEncoderFolder", "image_encoder"),
                    cache_dir=str(self.cache_dir),
                    local_files_only=True,
                )
            except (OSError, ValueError) as exc:
                raise PermanentEngineError(
                    f"The IP-Adapter {adapter['repo']} ({adapter['weightName']}) or its image "
                    f"encoder is missing or incomplete ({type(exc).__name__}). Download the "
                    "model again from the Models page."
                ) from exc
        if hasattr(pipeline, "set_progress_bar_config"):
            pipeline.set_progress_bar_config(disable=True)
        if hasattr(pipeline, "safety_checker") and getattr(pipeline, "safety_checker", None):
            pipeline.safety_checker = None  # avatars of the user's own prompts; no NSFW model
        if choice.device.startswith("cuda") and _vram_gb(choice.device) < capabilities.get(
            "vramGb", 0
        ):
            # too little VRAM for the whole model: keep each part on the GPU only while it runs
            pipeline.enable_model_cpu_offload(device=choice.device)
            pipeline._lumiku_offloaded = True
            log.info("%s: model CPU offload (low VRAM)", capabilities["hfRepo"])
        else:
            pipeline.to(choice.device)
        self.load_count += 1
        log.info(
            "loaded %s on %s (%s) in %.1f s",
            capabilities["hfRepo"],
            choice.device,
            choice.dtype_name,
            time.perf_counter() - started,
        )
        return pipeline

    def unload(self) -> None:
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            self._face_embeds.clear()
            if self._loaded is None:
                return
            self._loaded = None
            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass

    def release(self, repos: list[str]) -> bool:
        """Unload the warm pipeline if it uses one of `repos` (before deleting their files);
        False when it is generating right now."""
        loaded = self._loaded
        if loaded is None or not loaded.repos & set(repos):
            return True
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self.unload()
        finally:
            self._lock.release()
        return True

    def _arm_idle_timer(self) -> None:
        if self.idle_minutes <= 0:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        timer = threading.Timer(self.idle_minutes * 60, lambda: self._unload_if_idle(timer))
        timer.daemon = True
        self._idle_timer = timer
        timer.start()

    def _unload_if_idle(self, timer: threading.Timer) -> None:
        with self._lock:
            if self._idle_timer is timer:  # not re-armed by a job that ran meanwhile
                self.unload()

    # ------------------------------------------------------------ generation

    def generate(
        self, job: EngineJob, on_image: OnImage, on_progress: OnProgress, cancelled: Cancelled
    ) -> None:
        caps = job.capabilities
        steps = int(job.options.get("steps") or caps.get("steps", 4))
        guidance = float(caps.get("guidance", 0.0))
        # recorded in the PNG only where the pipeline used it
        negative = (
            (job.options.get("negativePrompt") or None) if follows_negative_prompt(caps) else None
        )
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            try:
                loaded = self._pipeline(caps)
                call = self._plan(loaded, job, steps, guidance)
                images = self._run(loaded, call, job, guidance, negative, on_progress, cancelled)
            finally:
                self._arm_idle_timer()
        if images is None:
            return  # interrupted: canceled, past the deadline, or the server is stopping
        for variation, image in zip(job.variations, images, strict=True):
            parameters = {
                "prompt": job.prompt,
                "negative_prompt": negative,
                "seed": variation.seed,
                "steps": call.steps,
                "guidance": guidance,
                "width": job.width,
                "height": job.height,
                "model": caps.get("hfRepo"),
                "sampler": type(call.pipeline.scheduler).__name__,
                "lumiku_model_key": job.model_key,
                "lumiku_variation": variation.key,
                **call.parameters,
            }
            if call.posed:
                parameters["lumiku_pose_id"] = variation.pose_id
            on_image(variation, storage.prepare_png(png_with_parameters(image, parameters), image))

    def _plan(self, loaded: _LoadedPipeline, job: EngineJob, steps: int, guidance: float) -> _Call:
        """The pipeline and arguments for this job: text to image, from the photo (img2img) or
        keeping its face (IP-Adapter)."""
        reference = job.reference
        parameters = dict(reference.parameters()) if reference is not None else {}
        if any(variation.pose_id for variation in job.variations):
            if job.options.get("mode") == "text":
                # the pose is in the prompt's words: the base pipeline draws it
                parameters["lumiku_pose_prompt"] = job.options.get("posePrompt") or ""
            else:
                return self._posed(loaded, job, steps, guidance, parameters)
        if job.capabilities.get("ipAdapter"):
            scale = reference.likeness if reference is not None else 0.0
            # the adapter is part of this pipeline: without a photo it runs at scale 0 on
            # empty embeddings (diffusers needs image embeddings once an adapter is loaded)
            loaded.pipeline.set_ip_adapter_scale(scale)
            embeds = self._face_embeddings(loaded, job.model_key, reference, guidance > 1.0)
            parameters["lumiku_ip_adapter_scale"] = f"{scale:.2f}"
            return _Call(
                loaded.pipeline, steps, steps, {"ip_adapter_image_embeds": embeds}, parameters
            )
        if reference is not None and reference.mode == "img2img":
            strength = img2img_strength(reference.likeness)
            raised = img2img_steps(steps, strength)
            init = reference_image.init_image(reference, job.width, job.height)
            parameters["strength"] = f"{strength:.2f}"
            return _Call(
                loaded.img2img(),
                raised,
                int(raised * strength),
                {"image": [init] * len(job.variations), "strength": strength},
                parameters,
            )
        return _Call(loaded.pipeline, steps, steps, {}, parameters)

    def _posed(
        self,
        loaded: _LoadedPipeline,
        job: EngineJob,
        steps: int,
        guidance: float,
        parameters: dict[str, Any],
    ) -> _Call:
        """Each variation in its pose: the ControlNet pipeline on the warm components, `image=`
        one skeleton per variation, the face of the source avatar through the IP-Adapter."""
        caps = job.capabilities
        control = caps.get("controlNet")
        if not control:
            raise PermanentEngineError(
                "This model has no OpenPose ControlNet: it cannot follow a pose. Use the "
                "Instant model or a model with a ControlNet."
            )
        pipeline = loaded.controlnet(
            _controlnet_key(caps), lambda: self._load_controlnet(control, loaded.choice)
        )
        arguments: dict[str, Any] = {
            "image": control_images(job.variations, job.poses, job.width, job.height)
        }
        if caps.get("ipAdapter"):
            reference = job.reference
            scale = reference.likeness if reference is not None else 0.0
            loaded.pipeline.set_ip_adapter_scale(scale)  # the UNet both pipelines share
            arguments["ip_adapter_image_embeds"] = self._face_embeddings(
                loaded, job.model_key, reference, guidance > 1.0
            )
            parameters["lumiku_ip_adapter_scale"] = f"{scale:.2f}"
        parameters["lumiku_control_model"] = _controlnet_name(control)
        return _Call(pipeline, steps, steps, arguments, parameters, posed=True)

    def _load_controlnet(self, control: dict[str, Any], choice: DeviceChoice) -> Any:
        import torch
        from diffusers import ControlNetModel
        from huggingface_hub import try_to_load_from_cache

        from .. import hub_download

        repo, folder = control["repo"], (control.get("subfolder") or "").strip("/")
        kwargs: dict[str, Any] = {"dtype": getattr(torch, choice.dtype_name)}
        variant = control.get("variant")
        files = hub_download.cached_files(repo, cache_dir=self.cache_dir)
        if variant and hub_download.has_variant(files, variant):
            kwargs["variant"] = variant
        started = time.perf_counter()
        # from the cached folder: by repo id, diffusers 0.42 hands hf_hub_download an argument
        # it deprecated (local_dir_use_symlinks), a warning on every load
        config = try_to_load_from_cache(
            repo, f"{folder}/config.json".lstrip("/"), cache_dir=str(self.cache_dir)
        )
        try:
            if not isinstance(config, str):
                raise FileNotFoundError(f"{repo} has no cached config.json")
            controlnet = ControlNetModel.from_pretrained(str(Path(config).parent), **kwargs)
        except (OSError, ValueError) as exc:
            raise PermanentEngineError(
                f"The ControlNet {control['repo']} is missing or incomplete "
                f"({type(exc).__name__}). Download the model again from the Models page."
            ) from exc
        self.controlnet_loads += 1
        log.info("loaded ControlNet %s in %.1f s", control["repo"], time.perf_counter() - started)
        return controlnet

    def _face_embeddings(
        self,
        loaded: _LoadedPipeline,
        model_key: str,
        reference: Reference | None,
        guided: bool,
    ) -> list[Any]:
        """The IP-Adapter image embeddings of the face crop: encoded once per reference, face
        box and model, then reused by every image of the batch, a retry and a resume."""
        import torch

        pipe = loaded.pipeline
        if reference is None:
            return self._empty_face_embeddings(loaded, guided)
        box = reference.face_box
        key = (reference.sha256, box.x, box.y, box.size, model_key, loaded.key, guided)
        cached = self._face_embeds.get(key)
        if cached is not None:
            self._face_embeds.move_to_end(key)
            return cached
        face = reference_image.face_crop(reference)
        with torch.inference_mode():
            embeds = pipe.prepare_ip_adapter_image_embeds(
                ip_adapter_image=face,
                ip_adapter_image_embeds=None,
                device=pipe._execution_device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=guided,
            )
        self.image_encoder_runs += 1
        self._face_embeds[key] = embeds
        while len(self._face_embeds) > FACE_EMBEDS_KEPT:
            self._face_embeds.popitem(last=False)
        return embeds

    @staticmethod
    def _empty_face_embeddings(loaded: _LoadedPipeline, guided: bool) -> list[Any]:
        """Zeros shaped like the encoder's output for each adapter (scale 0 ignores them)."""
        import torch
        from diffusers.models.embeddings import ImageProjection

        pipe = loaded.pipeline
        config = pipe.image_encoder.config
        dtype = next(pipe.image_encoder.parameters()).dtype
        embeds = []
        for layer in pipe.unet.encoder_hid_proj.image_projection_layers:
            if isinstance(layer, ImageProjection):  # plain adapters read the projected embeds
                shape: tuple[int, ...] = (1, 1, config.projection_dim)
            else:  # plus adapters read the penultimate hidden states, one per patch and CLS
                tokens = (config.image_size // config.patch_size) ** 2 + 1
                shape = (1, 1, tokens, config.hidden_size)
            zeros = torch.zeros(shape, dtype=dtype, device=pipe._execution_device)
            embeds.append(torch.cat([zeros, zeros]) if guided else zeros)
        return embeds

    def _run(
        self,
        loaded: _LoadedPipeline,
        plan: _Call,
        job: EngineJob,
        guidance: float,
        negative: str | None,
        on_progress: OnProgress,
        cancelled: Cancelled,
    ) -> list[Any] | None:
        import torch

        interrupted = False
        steps = plan.denoising_steps

        def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
            nonlocal interrupted
            on_progress((step + 1) / steps, f"step {step + 1} of {steps}")
            if cancelled():
                interrupted = True
                pipe._interrupt = True  # diffusers skips the remaining steps
            return callback_kwargs

        generator_device = "cpu" if loaded.choice.device == "mps" else loaded.choice.device
        # one generator per variation: each image is reproducible alone, and a resume that
        # makes only the missing variations gives them the same pixels
        generators = [
            torch.Generator(device=generator_device).manual_seed(variation.seed)
            for variation in job.variations
        ]
        count = len(job.variations)
        call: dict[str, Any] = {
            "prompt": [job.prompt] * count,
            "num_inference_steps": plan.steps,
            "guidance_scale": guidance,
            "width": job.width,
            "height": job.height,
            "generator": generators,
            "callback_on_step_end": on_step_end,
            **plan.arguments,
        }
        if negative:
            call["negative_prompt"] = [negative] * count
        failpoints.hit("engine.generate")
        try:
            images = self._call(plan.pipeline, call)
        except _OutOfMemory as exc:
            if loaded.offloaded or not loaded.choice.device.startswith("cuda"):
                raise PermanentEngineError(OOM_ADVICE) from exc
            log.warning("out of GPU memory; retrying with model CPU offload")
            torch.cuda.empty_cache()
            plan.pipeline.to("cpu")
            plan.pipeline.enable_model_cpu_offload(device=loaded.choice.device)
            loaded.offloaded = True
            try:
                images = self._call(plan.pipeline, call)
            except _OutOfMemory as again:
                raise PermanentEngineError(OOM_ADVICE) from again
        return None if interrupted else images

    @staticmethod
    def _call(pipeline: Any, call: dict[str, Any]) -> list[Any]:
        import torch

        try:
            with torch.inference_mode():
                return list(pipeline(**call).images)
        except torch.cuda.OutOfMemoryError as exc:
            raise _OutOfMemory() from exc
        except (PermanentEngineError, TransientEngineError):
            raise
        except ValueError as exc:  # the pipeline refuses these settings: retrying cannot help
            raise PermanentEngineError(f"The model cannot use these settings: {exc}") from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise _OutOfMemory() from exc
            raise TransientEngineError(f"the diffusion pipeline failed: {exc}") from exc


def allow_patterns(capabilities: dict[str, Any]) -> Any:
    """What to fetch of a pipeline repo: configs, tokenizers and one copy of each component's
    weights (the fp16 variant where the catalog names one), never a root single-file
    checkpoint, .ckpt or .bin beside .safetensors (see hub_download.diffusers_allow_patterns)."""
    from ..hub_download import diffusers_allow_patterns

    return functools.partial(diffusers_allow_patterns, variant=capabilities.get("variant"))


def _ip_adapter_key(capabilities: dict[str, Any]) -> tuple[str, str, str]:
    adapter = capabilities.get("ipAdapter") or {}
    return (
        adapter.get("repo") or "",
        f"{adapter.get('subfolder') or ''}/{adapter.get('weightName') or ''}",
        adapter.get("imageEncoderFolder") or "",
    )


def _controlnet_key(capabilities: dict[str, Any]) -> tuple[str, str, str]:
    control = capabilities.get("controlNet") or {}
    return (
        control.get("repo") or "",
        control.get("subfolder") or "",
        control.get("variant") or control.get("weightName") or "",
    )


def _controlnet_name(control: dict[str, Any]) -> str:
    return "/".join(part for part in (control["repo"], control.get("subfolder")) if part)


def control_images(
    variations: list[Variation], poses: dict[str, list[list[float]]], width: int, height: int
) -> list[Any]:
    """One OpenPose skeleton per variation at the job's size (each pose drawn once): the
    keypoints' square, as large as fits, centred on black (the ControlNets' background)."""
    from PIL import Image

    from .. import skeleton

    drawn: dict[str, Any] = {}
    images = []
    for variation in variations:
        pose_id = variation.pose_id or ""
        if pose_id not in drawn:
            keypoints = poses.get(pose_id)
            if keypoints is None:
                raise PermanentEngineError(
                    f"The keypoints of pose {pose_id!r} are missing from this generation."
                )
            side = min(max(min(width, height), skeleton.MIN_SIZE), skeleton.MAX_SIZE)
            square = skeleton.draw(keypoints, side)
            if (side, side) == (width, height):
                drawn[pose_id] = square
            else:
                canvas = Image.new("RGB", (width, height), skeleton.BLACK)
                canvas.paste(square, ((width - side) // 2, (height - side) // 2))
                drawn[pose_id] = canvas
        images.append(drawn[pose_id])
    return images


def controlnet_patterns(control: dict[str, Any]) -> Any:
    """The ControlNet's config and one copy of its weights: `weightName` where the catalog names
    it (a repo with other weights beside it), else the `variant` safetensors or the plain ones."""
    return functools.partial(
        _controlnet_files,
        folder=(control.get("subfolder") or "").strip("/"),
        weight=control.get("weightName"),
        variant=control.get("variant"),
    )


def _controlnet_files(
    filenames: list[str], folder: str, weight: str | None, variant: str | None
) -> list[str]:
    from ..hub_download import diffusers_allow_patterns

    prefix = f"{folder}/" if folder else ""
    inside = [
        name
        for name in filenames
        if name.startswith(prefix) and "/" not in name[len(prefix) :]  # not its images/
    ]
    if weight:
        wanted = {f"{prefix}config.json", f"{prefix}{weight}"}
        return [name for name in inside if name in wanted]
    chosen = diffusers_allow_patterns(inside, variant=variant)
    return [name for name in chosen if name.endswith((".json", *_WEIGHT_SUFFIXES))]


_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def ip_adapter_patterns(adapter: dict[str, Any]) -> Any:
    """The adapter's weights file and one copy of its image encoder (config + safetensors)."""
    return functools.partial(
        _ip_adapter_files,
        weight=f"{adapter.get('subfolder') or ''}/{adapter['weightName']}".lstrip("/"),
        encoder=adapter.get("imageEncoderFolder", "image_encoder").strip("/") + "/",
    )


def _ip_adapter_files(filenames: list[str], weight: str, encoder: str) -> list[str]:
    from ..hub_download import diffusers_allow_patterns

    inside = [name for name in filenames if name.startswith(encoder)]
    return [*(name for name in filenames if name == weight), *diffusers_allow_patterns(inside)]


def model_files(capabilities: dict[str, Any]) -> list[tuple[str, Any]]:
    """Everything a model needs, as (repo, allow patterns): the pipeline first, then its
    add-ons (a LoRA, an IP-Adapter with its image encoder, a ControlNet). One download, one
    size."""
    files: list[tuple[str, Any]] = [(capabilities["hfRepo"], allow_patterns(capabilities))]
    if lora := capabilities.get("loraRepo"):
        files.append((lora, [capabilities.get("loraWeightName") or "*.safetensors"]))
    if adapter := capabilities.get("ipAdapter"):
        files.append((adapter["repo"], ip_adapter_patterns(adapter)))
    if control := capabilities.get("controlNet"):
        files.append((control["repo"], controlnet_patterns(control)))
    return files


def repos_of(capabilities: dict[str, Any]) -> list[str]:
    """The Hugging Face repos a model reads from."""
    return [repo for repo, _ in model_files(capabilities)] if capabilities.get("hfRepo") else []
