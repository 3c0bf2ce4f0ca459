"""The catalog: AI models, presets and persona examples."""

from __future__ import annotations

from typing import Any

from litestar import delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from .. import remote_consent
from ..errors import NotFound, ServiceUnavailable
from ..models import AIModel, AvatarPreset, PersonaExample
from . import blocking, shapes
from .answers import change_errors, errors

API = shapes.API


@get(f"{API}/models", tags=["catalog"], responses=errors(503))
@blocking
def list_models(state: State) -> dict[str, Any]:
    """Every model with its install and download state (installed, downloading, progress)."""
    models = list(AIModel.select().order_by(AIModel.sort_order, AIModel.key))
    if not models:
        raise ServiceUnavailable(
            "The model catalog is empty. Restart Lumiku to restore the built-in models.",
            code="no_models",
        )
    return {"models": [shapes.ai_model(model, state.downloads) for model in models]}


@post(
    f"{API}/models/{{key:str}}/download",
    tags=["catalog"],
    status_code=202,
    responses=change_errors(404, 409, 422),
)
@blocking
def start_download(state: State, key: FromPath[str]) -> dict[str, Any]:
    """Download a model into the Hugging Face cache in the background; progress on /api/events."""
    state.downloads.start(key)
    return {"model": shapes.ai_model(AIModel.get_by_id(key), state.downloads)}


@post(
    f"{API}/models/{{key:str}}/download/cancel",
    tags=["catalog"],
    status_code=200,
    responses=change_errors(404, 409),
)
@blocking
def cancel_download(state: State, key: FromPath[str]) -> dict[str, Any]:
    """Stop a running download; what was fetched stays and a later download resumes from it."""
    state.downloads.cancel(key)
    return {"model": shapes.ai_model(AIModel.get_by_id(key), state.downloads)}


@delete(f"{API}/models/{{key:str}}/files", tags=["catalog"], responses=change_errors(404, 409))
@blocking
def delete_model_files(state: State, key: FromPath[str]) -> None:
    """Free the disk space a downloaded model uses."""
    state.downloads.remove_files(key)


@post(
    f"{API}/models/{{key:str}}/remote-consent",
    tags=["catalog"],
    status_code=200,
    responses=change_errors(404, 409),
)
@blocking
def give_remote_consent(state: State, key: FromPath[str]) -> dict[str, Any]:
    """Agree to send this remote model's prompts (and photos) to Hugging Face; remembered, asked
    once per model. Generating with a remote model answers 409 until then."""
    model = remote_consent.give(state.runtime.user_id, key)
    return {"model": shapes.ai_model(model, state.downloads)}


@delete(
    f"{API}/models/{{key:str}}/remote-consent",
    tags=["catalog"],
    responses=change_errors(404),
)
@blocking
def withdraw_remote_consent(key: FromPath[str]) -> None:
    """Take the agreement back: the next remote generation with this model asks again."""
    if AIModel.get_or_none(AIModel.key == key) is None:
        raise NotFound(f"There is no model {key!r}.")
    remote_consent.withdraw(key)


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


routes = [
    list_models,
    start_download,
    cancel_download,
    delete_model_files,
    give_remote_consent,
    withdraw_remote_consent,
    list_presets,
    list_persona_examples,
]
