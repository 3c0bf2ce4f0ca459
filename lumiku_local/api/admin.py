"""Operator views: the queue at a glance, model switches an admin may flip, and Quit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from .. import credits
from ..db import iso, utcnow
from ..errors import Conflict, InvalidInput, NotFound
from ..generations import counts_by_status
from ..models import AIModel, AvatarGeneration
from . import blocking, shapes
from .answers import change_errors, errors
from .strict_input import Body


class ModelPatch(Body, rename="camel"):
    enabled: bool | None = None
    credit_cost: int | None = None
    deadline_seconds: float | None = None


@get("/api/admin/queue", tags=["admin"])
@blocking
def queue(state: State) -> dict[str, Any]:
    now = utcnow()
    counts = counts_by_status()
    finished = AvatarGeneration.completed_at
    failures = (
        AvatarGeneration.select()
        .where(AvatarGeneration.status == "failed")
        .order_by(finished.desc())
        .limit(20)
    )
    return {
        "pending": counts.get("pending", 0),
        "processing": counts.get("processing", 0),
        "completedLast24h": AvatarGeneration.select()
        .where(
            (AvatarGeneration.status == "completed") & (finished >= now - dt.timedelta(hours=24))
        )
        .count(),
        "failedLast7d": AvatarGeneration.select()
        .where((AvatarGeneration.status == "failed") & (finished >= now - dt.timedelta(days=7)))
        .count(),
        "canceled": counts.get("canceled", 0),
        "creditsRefunded": credits.total_refunded(),
        "queuedTasks": state.job_queue.queue_length(),
        "lastReconciledAt": iso(
            dt.datetime.fromtimestamp(state.job_queue.reconciled_at, dt.UTC).replace(tzinfo=None)
        )
        if state.job_queue.reconciled_at
        else None,
        "lastFailures": [
            {
                "id": row.id,
                "projectId": row.project_id,
                "modelKey": row.model_id,
                "errorMessage": row.error_message,
                "completedAt": iso(row.completed_at),
            }
            for row in failures
        ],
    }


@patch("/api/admin/models/{key:str}", tags=["admin"], responses=change_errors(404, 422))
@blocking
def update_model(key: FromPath[str], data: JSONBody[ModelPatch]) -> dict[str, Any]:
    """Enable or disable a model, or change its cost or deadline; seeding never undoes this."""
    model = AIModel.get_or_none(AIModel.key == key)
    if model is None:
        raise NotFound(f"There is no model {key!r}.")
    if data.credit_cost is not None:
        if not 0 <= data.credit_cost <= 10_000:
            raise InvalidInput("creditCost must be between 0 and 10000.")
        model.credit_cost = data.credit_cost
    if data.deadline_seconds is not None:
        if not 0.1 <= data.deadline_seconds <= 86_400:
            raise InvalidInput("deadlineSeconds must be between 0.1 and 86400.")
        model.deadline_seconds = data.deadline_seconds
    if data.enabled is not None:
        model.enabled = data.enabled
    model.updated_at = utcnow()
    model.save()
    return {"model": shapes.ai_model(model)}


@post("/api/admin/shutdown", tags=["admin"], status_code=202, responses=errors(403, 409))
async def shutdown(state: State) -> dict[str, Any]:
    """Quit Lumiku (the page's Quit button). Same-origin only, like every change (safety.py).

    Answers first, then the server stops as on Ctrl+C: running jobs pause at their next image
    or step and resume at the next start."""
    request_shutdown = state.get("request_shutdown")
    if request_shutdown is None:
        raise Conflict(
            "This Lumiku was not started by the `lumiku` command; stop it where it runs.",
            code="not_launcher",
        )
    request_shutdown()
    return {"message": "Lumiku is stopping", "stopping": True}


routes = [queue, update_model, shutdown]
