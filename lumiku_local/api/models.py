"""The catalog: AI models, presets and persona examples."""

from __future__ import annotations

from typing import Any

from litestar import get

from ..errors import ServiceUnavailable
from ..models import AIModel, AvatarPreset, PersonaExample
from . import blocking, shapes

API = shapes.API


@get(f"{API}/models", tags=["catalog"])
@blocking
def list_models() -> dict[str, Any]:
    models = list(AIModel.select().order_by(AIModel.sort_order, AIModel.key))
    if not models:
        raise ServiceUnavailable(
            "The model catalog is empty. Restart Lumiku to restore the built-in models.",
            code="no_models",
        )
    return {"models": [shapes.ai_model(model) for model in models]}


@get(f"{API}/presets", tags=["catalog"])
@blocking
def list_presets() -> dict[str, Any]:
    presets = AvatarPreset.select().order_by(AvatarPreset.sort_order)
    return {"presets": [shapes.preset(preset) for preset in presets]}


@get(f"{API}/persona-examples", tags=["catalog"])
@blocking
def list_persona_examples() -> dict[str, Any]:
    examples = PersonaExample.select().order_by(PersonaExample.sort_order)
    return {"personaExamples": [shapes.persona_example(example) for example in examples]}


routes = [list_models, list_presets, list_persona_examples]
