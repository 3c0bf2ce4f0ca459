"""Sending a prompt away: a remote model runs only once the person agreed, once per model.

A remote model (Hugging Face Inference Providers) sends the prompt, and for image-to-image the
photo's frame, to Hugging Face. The page says so before the first remote generation with a model
and records the yes here; the JSON API asks for it the same way (409 until given).
"""

from __future__ import annotations

from .catalog import REMOTE_PROVIDER
from .db import write_transaction
from .errors import Conflict, NotFound
from .models import AIModel, RemoteConsent


def words(model: AIModel) -> str:
    """What the person agrees to, in the page's dialog and in the API's 409."""
    photo = (
        " and, when you start from a photo, the photo around the face"
        if (model.capabilities or {}).get("imageToImage")
        else ""
    )
    return (
        f"Generating with {model.name} sends your prompt{photo} to Hugging Face and the "
        "provider it chooses: the images are made there, not on this computer. Nothing else "
        "leaves this computer. Hugging Face bills your token's account for each image."
    )


def given(model_key: str) -> bool:
    return RemoteConsent.select().where(RemoteConsent.model_key == model_key).exists()


def check(model: AIModel) -> None:
    """409 for a remote model the person has not agreed to send to, with how to agree."""
    if model.provider != REMOTE_PROVIDER or given(model.key):
        return
    raise Conflict(
        f"{words(model)} Confirm it once on the project page, or "
        f"POST /api/apps/avatar-creator/models/{model.key}/remote-consent.",
        code="remote_consent_required",
    )


def give(user_id: int, model_key: str) -> AIModel:
    with write_transaction():
        model = AIModel.get_or_none(AIModel.key == model_key)
        if model is None:
            raise NotFound(f"There is no model {model_key!r}.")
        if model.provider != REMOTE_PROVIDER:
            raise Conflict(
                f"{model.name} runs on this computer: it sends nothing away, so there is "
                "nothing to agree to.",
                code="not_remote",
            )
        RemoteConsent.insert(model_key=model_key, user=user_id).on_conflict_ignore().execute()
    return model


def withdraw(model_key: str) -> None:
    with write_transaction():
        RemoteConsent.delete().where(RemoteConsent.model_key == model_key).execute()
