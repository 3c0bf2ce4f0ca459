"""What this machine offers for local diffusion: device, memory and disk (doctor, welcome page)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

GIB = 1024**3


def report(device_preference: str, hf_cache: Path) -> dict[str, Any]:
    """Facts, never failures: each missing piece is reported as such."""
    import psutil

    memory = psutil.virtual_memory()
    facts: dict[str, Any] = {
        "ramTotalGb": round(memory.total / GIB, 1),
        "ramAvailableGb": round(memory.available / GIB, 1),
        "hfCache": str(hf_cache),
        "diskFreeGb": round(_free_bytes(hf_cache) / GIB, 1),
        "torch": None,
        "cuda": None,
        "device": "cpu",
        "dtype": "float32",
        "vramTotalGb": None,
        "vramFreeGb": None,
        "gpuName": None,
    }
    try:
        import torch
    except ImportError:
        facts["device"] = None
        return facts
    from .engines.base import PermanentEngineError
    from .engines.diffusers import choose_device

    try:
        choice = choose_device(device_preference)
    except PermanentEngineError as exc:
        facts.update(torch=torch.__version__, device=None, problem=str(exc))
        return facts
    facts.update(
        torch=torch.__version__,
        cuda=torch.version.cuda,
        device=choice.device,
        dtype=choice.dtype_name,
    )
    if choice.device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info(torch.device(choice.device))
        facts.update(
            vramFreeGb=round(free / GIB, 1),
            vramTotalGb=round(total / GIB, 1),
            gpuName=torch.cuda.get_device_name(torch.device(choice.device)),
        )
    return facts


def _free_bytes(path: Path) -> int:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def recommend_model(facts: dict[str, Any], models: list[Any]) -> tuple[Any | None, str]:
    """The downloadable model that fits this machine best, and why, in one sentence.

    A GPU's memory decides (the largest model whose `vramGb` fits); without one the catalog's
    `recommended` model, which runs on a CPU, is the choice. Gated models need an account first,
    so they are never the first suggestion.
    """
    candidates = [
        model
        for model in models
        if model.provider == "diffusers"
        and model.enabled
        and not (model.capabilities or {}).get("gated")
        and (model.capabilities or {}).get("hfRepo")
    ]
    if not candidates:
        return None, "No downloadable model is enabled."
    default = next(
        (model for model in candidates if model.capabilities.get("recommended")), candidates[0]
    )
    vram = facts.get("vramTotalGb")
    device = facts.get("device")
    if device and device.startswith("cuda") and vram:
        fitting = [m for m in candidates if m.capabilities.get("vramGb", 99) <= vram]
        if fitting:
            best = max(fitting, key=lambda m: (m.capabilities.get("vramGb", 0), -m.credit_cost))
            why = f"your {facts.get('gpuName') or 'GPU'} has {vram:g} GB of memory"
            return best, f"It fits this computer: {why}."
        return default, f"It is the smallest model, and your GPU has {vram:g} GB of memory."
    if facts.get("torch") is None:
        return default, (
            "It runs even without a GPU. Install the diffusion extra first "
            '(pip install "lumiku-local[diffusion]").'
        )
    where = "on Apple silicon" if device == "mps" else "on this computer's processor"
    return default, f"It runs {where}, without a graphics card (a few seconds per image)."
