"""How rows look in JSON: camelCase, ISO-8601 UTC times, URLs instead of file names."""

from __future__ import annotations

from typing import Any

from .. import catalog, generations, references
from ..db import dicts, iso
from ..models import (
    TERMINAL_STATUSES,
    AIModel,
    Avatar,
    AvatarGeneration,
    AvatarPreset,
    AvatarProject,
    CreditLedger,
    PersonaExample,
)

API = "/api/apps/avatar-creator"


def avatar(row: Avatar | dict[str, Any]) -> dict[str, Any]:
    """An avatar from a model row or a `.dicts()` row (field names; foreign keys as ids)."""
    data = row if isinstance(row, dict) else row.__data__
    avatar_id = data["id"]
    return {
        "id": avatar_id,
        "projectId": data["project"],
        "name": data["name"],
        "source": data["source"],
        "generationId": data.get("generation"),
        "variationKey": data.get("variation_key"),
        "poseId": data.get("pose_id"),
        "prompt": data.get("prompt"),
        "seed": data.get("seed"),
        "modelKey": data.get("model_key"),
        "style": data.get("style"),
        "faceBox": data.get("face_box"),
        "favorite": bool(data.get("favorite")),
        "width": data["width"],
        "height": data["height"],
        "fileSize": data["file_size"],
        "imageUrl": f"{API}/avatars/{avatar_id}/image",
        "thumbnailUrl": f"{API}/avatars/{avatar_id}/thumbnail",
        "createdAt": iso(data["created_at"]),
        "deletedAt": iso(data.get("deleted_at")),
    }


def project(row: AvatarProject, avatar_count: int | None = None) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }
    if avatar_count is not None:
        shape["avatarCount"] = avatar_count
    return shape


def generations_of(rows: list[AvatarGeneration]) -> list[dict[str, Any]]:
    """Several generations with their refunds and avatars in three queries, not 2 per row."""
    ids = [row.id for row in rows]
    refunds: dict[str, int] = {}
    for entry in CreditLedger.select(CreditLedger.generation, CreditLedger.amount).where(
        CreditLedger.generation.in_(ids) & (CreditLedger.kind == "refund")
    ):
        generation_id = str(entry.generation_id)  # the query asks for refunds of generations
        refunds[generation_id] = refunds.get(generation_id, 0) + entry.amount
    avatars: dict[str, list[dict[str, Any]]] = {generation_id: [] for generation_id in ids}
    for item in dicts(
        Avatar.select()
        .where(Avatar.generation.in_(ids) & Avatar.deleted_at.is_null())
        .order_by(Avatar.variation_key)
    ):
        avatars[item["generation"]].append(avatar(item))
    kept = references.still_kept(rows)
    return [
        _generation(row, refunds.get(row.id, 0), avatars[row.id], row.id in kept) for row in rows
    ]


def generation(
    row: AvatarGeneration, with_avatars: bool = True, refunded: int | None = None
) -> dict[str, Any]:
    """`refunded`: the credits given back, when the caller knows (None: read the ledger)."""
    if not with_avatars:
        return _generation(row, refunded, None, row.id in references.still_kept([row]))
    return generations_of([row])[0]


def _generation(
    row: AvatarGeneration,
    refunded: int | None,
    avatars: list[dict[str, Any]] | None,
    reference_kept: bool,
) -> dict[str, Any]:
    if refunded is None:
        refunded = sum(
            entry.amount
            for entry in CreditLedger.select(CreditLedger.amount).where(
                (CreditLedger.generation == row.id) & (CreditLedger.kind == "refund")
            )
        )
    shape = {
        **generations.generation_event(row),
        "prompt": row.prompt,
        "name": row.name,
        "appId": row.app_id,
        "modelKey": row.model_id,
        "options": _public_options(row.options),
        "creditCost": row.credit_cost,
        "creditCharged": row.credit_cost * row.count,
        "creditRefunded": refunded,
        "attempts": row.error_attempts,
        # a finished generation's undelivered images: what retry {"only": "missing"} makes
        "missingCount": max(row.count - row.count_completed, 0)
        if row.status in TERMINAL_STATUSES
        else 0,
        "retriedFromId": row.retried_from_id,
        "reference": reference(row, reference_kept),
        "createdAt": iso(row.created_at),
        "startedAt": iso(row.started_at),
        "completedAt": iso(row.completed_at),
        "updatedAt": iso(row.updated_at),
    }
    del shape["type"]
    if avatars is not None:
        shape["avatars"] = avatars
    return shape


def started(row: AvatarGeneration, balance: int, message: str) -> dict[str, Any]:
    """The answer to a submit or a retry (ORIGIN's generate response shape)."""
    return {
        "message": message,
        "generation": generation(row, with_avatars=False, refunded=0),  # just charged
        "creditUsed": row.credit_cost * row.count,
        "creditBalance": balance,
    }


def _public_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """A generation's options as the API shows them (the poses' keypoints are the pose
    library's to show)."""
    return {key: value for key, value in (options or {}).items() if key != "poseKeypoints"}


def pose(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "category": row.category,
        "tags": list(row.tags or []),
        "keypoints": row.keypoints,
        "source": row.source,
        "skeletonUrl": f"/api/apps/pose-generator/poses/{row.id}/skeleton.png",
    }


def reference(row: AvatarGeneration, kept: bool) -> dict[str, Any] | None:
    """The photo a generation started from; `available` is false once the photo was deleted
    and the generation had finished with it (its files are gone too)."""
    if not row.reference_file or not row.reference:
        return None
    return {
        **row.reference,
        "available": kept,
        "imageUrl": f"{API}/generations/{row.id}/reference",
        "thumbnailUrl": f"{API}/generations/{row.id}/reference/thumbnail",
    }


def ai_model(row: AIModel, downloads: Any = None) -> dict[str, Any]:
    installed = generations.is_installed(row)
    download_state = (
        downloads.state(row, installed)
        if downloads is not None
        else {
            "installed": installed,
            "downloading": False,
            "progress": 100.0 if installed else 0.0,
            "sizeBytes": 0,
            "download": None,
        }
    )
    return {
        "key": row.key,
        "appId": row.app_id,
        "name": row.name,
        "description": row.description,
        "provider": row.provider,
        "tier": row.tier,
        "creditCost": row.credit_cost,
        "priceBand": catalog.price_band(row.credit_cost)[0],
        "priceLabel": catalog.price_band(row.credit_cost)[1],
        "enabled": row.enabled,
        "deadlineSeconds": row.deadline_seconds,
        "capabilities": row.capabilities,
        "reference": references.capability(row),
        **download_state,
        "remote": remote_model(row) if row.provider == catalog.REMOTE_PROVIDER else None,
    }


def remote_model(row: AIModel) -> dict[str, Any]:
    """A remote model's side of the list: the provider that will run it (or why none does),
    whether the person agreed to send it prompts, and the words they agree to."""
    from .. import remote_consent
    from ..engines import engine_for

    engine = engine_for(row.provider)
    described = (
        engine.describe(row.capabilities or {})  # type: ignore[attr-defined]
        if engine is not None
        else {"provider": None, "problem": "The remote engine is not running.", "needsToken": False}
    )
    return {
        **described,
        "needsNetwork": True,
        "billing": "Hugging Face bills the token's account for each image.",
        "consented": remote_consent.given(row.key),
        "consentWords": remote_consent.words(row),
    }


def preset(row: AvatarPreset) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "name": row.name,
        "category": row.category,
        "description": row.description,
        "prompt": row.prompt,
        "style": row.style,
    }


def persona_example(row: PersonaExample) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "name": row.name,
        "personaName": row.persona_name,
        "age": row.age,
        "personality": row.personality,
        "background": row.background,
        "prompt": row.prompt,
    }


def ledger_entry(row: CreditLedger) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "amount": row.amount,
        "balance": row.balance_after,
        "description": row.description,
        "generationId": row.generation_id,
        "createdAt": iso(row.created_at),
    }
