"""Engines turn an EngineJob into images; `engine_for` picks one by the model's provider."""

from __future__ import annotations

from .base import (
    Engine,
    EngineJob,
    FaceBox,
    PermanentEngineError,
    Reference,
    TransientEngineError,
    Variation,
)
from .dicebear import DiceBearEngine

_ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> None:
    _ENGINES[engine.name] = engine


def engine_for(provider: str) -> Engine | None:
    if provider == "dicebear" and provider not in _ENGINES:
        register(DiceBearEngine())  # the embedded default is always there
    return _ENGINES.get(provider)


__all__ = [
    "Engine",
    "EngineJob",
    "FaceBox",
    "PermanentEngineError",
    "Reference",
    "TransientEngineError",
    "Variation",
    "engine_for",
    "register",
]
