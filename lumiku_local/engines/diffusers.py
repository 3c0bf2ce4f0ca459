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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import failpoints, storage
from ..config import Settings
from ..png_parameters import png_with_parameters
from .base import (
    Cancelled,
    EngineJob,
    OnImage,
    OnProgress,
    PermanentEngineError,
    TransientEngineError,
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


OOM_ADVICE = (
    "Out of memory even at the lowest memory setting. Choose fewer images, a smaller size or a "
    "smaller model, or close other programs using the GPU."
)


class _OutOfMemory(Exception):
    pass


class _LoadedPipeline:
    def __init__(self, key: tuple[str, ...], pipeline: Any, choice: DeviceChoice) -> None:
        self.key = key
        self.pipeline = pipeline
        self.choice = choice
        self.offloaded = bool(getattr(pipeline, "_lumiku_offloaded", False))
        self.loads = 1


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
        lora = capabilities.get("loraRepo")
        return not lora or hub_download.is_cached(
            lora,
            cache_dir=self.cache_dir,
            allow_patterns=[capabilities.get("loraWeightName", "*.safetensors")],
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
            choice.device,
            choice.dtype_name,
        )
        loaded = self._loaded
        if loaded is not None and loaded.key == key:
            return loaded
        self.unload()  # a different model replaces the warm one
        self._loaded = _LoadedPipeline(key, self._load(capabilities, choice), choice)
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
                    f"The LoRA {capabilities['loraRepo']} is missing or incomplete. "
                    "Download the model again from the Models page."
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
        if loaded is None or not {loaded.key[0], loaded.key[2]} & set(repos):
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
        negative = job.options.get("negativePrompt") or None
        with self._lock:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            try:
                loaded = self._pipeline(caps)
                images = self._run(loaded, job, steps, guidance, negative, on_progress, cancelled)
            finally:
                self._arm_idle_timer()
        if images is None:
            return  # interrupted: canceled, past the deadline, or the server is stopping
        for variation, image in zip(job.variations, images, strict=True):
            parameters = {
                "prompt": job.prompt,
                "negative_prompt": negative,
                "seed": variation.seed,
                "steps": steps,
                "guidance": guidance,
                "width": job.width,
                "height": job.height,
                "model": caps.get("hfRepo"),
                "sampler": type(loaded.pipeline.scheduler).__name__,
                "lumiku_model_key": job.model_key,
                "lumiku_variation": variation.key,
            }
            on_image(variation, storage.prepare_png(png_with_parameters(image, parameters), image))

    def _run(
        self,
        loaded: _LoadedPipeline,
        job: EngineJob,
        steps: int,
        guidance: float,
        negative: str | None,
        on_progress: OnProgress,
        cancelled: Cancelled,
    ) -> list[Any] | None:
        import torch

        interrupted = False

        def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
            nonlocal interrupted
            on_progress((step + 1) / steps, f"step {step + 1} of {steps}")
            if cancelled():
                interrupted = True
                pipe._interrupt = True  # diffusers skips the remaining steps
            return callback_kwargs

        generator_device = "cpu" if loaded.choice.device == "mps" else loaded.choice.device
        generators = [
            torch.Generator(device=generator_device).manual_seed(variation.seed)
            for variation in job.variations
        ]
        count = len(job.variations)
        call: dict[str, Any] = {
            "prompt": [job.prompt] * count,
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "width": job.width,
            "height": job.height,
            "generator": generators,
            "callback_on_step_end": on_step_end,
        }
        if negative and guidance > 1.0:
            call["negative_prompt"] = [negative] * count
        failpoints.hit("engine.generate")
        try:
            images = self._call(loaded, call)
        except _OutOfMemory as exc:
            if loaded.offloaded or not loaded.choice.device.startswith("cuda"):
                raise PermanentEngineError(OOM_ADVICE) from exc
            log.warning("out of GPU memory; retrying with model CPU offload")
            torch.cuda.empty_cache()
            loaded.pipeline.to("cpu")
            loaded.pipeline.enable_model_cpu_offload(device=loaded.choice.device)
            loaded.offloaded = True
            try:
                images = self._call(loaded, call)
            except _OutOfMemory as again:
                raise PermanentEngineError(OOM_ADVICE) from again
        return None if interrupted else images

    @staticmethod
    def _call(loaded: _LoadedPipeline, call: dict[str, Any]) -> list[Any]:
        import torch

        try:
            with torch.inference_mode():
                return list(loaded.pipeline(**call).images)
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
