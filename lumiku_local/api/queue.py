"""The queue across projects and apps: what runs and what waits, in order; cancel some or all."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.datastructures import State
from litestar.params import JSONBody

from .. import credits, lineup
from ..db import iso
from ..models import AvatarGeneration
from . import blocking, shapes
from .answers import change_errors, errors
from .strict_input import Body

GenerationId = Annotated[str, msgspec.Meta(max_length=64)]


class CancelBody(Body, rename="camel"):
    generation_ids: (
        Annotated[
            list[GenerationId],
            msgspec.Meta(
                max_length=lineup.MAX_IDS,
                description="The unfinished generations to cancel; leave it out to cancel "
                "everything that is running or waiting.",
            ),
        ]
        | None
    ) = None


def _entry(row: AvatarGeneration, names: dict[str, str]) -> dict[str, Any]:
    return {
        **shapes.generation(row, with_avatars=False),
        "projectName": names.get(row.project_id, ""),
        "creditRefundable": lineup.refundable(row),
    }


def shape(snapshot: lineup.Lineup) -> dict[str, Any]:
    names = snapshot.project_names
    return {
        "running": [_entry(row, names) for row in snapshot.running],
        "waiting": [
            {
                **_entry(entry.generation, names),
                "position": entry.position,
                "waitingFor": entry.reason,
                "retryAt": iso(entry.retry_at),
            }
            for entry in snapshot.waiting
        ],
        "creditRefundable": snapshot.refundable,
    }


@get("/api/queue", tags=["queue"], responses=errors())
@blocking
def get_queue(state: State) -> dict[str, Any]:
    """Unfinished generations of every project and app. `running`: being made now, oldest
    first. `waiting`: in the order the workers will start them, each with its `position`
    (1 starts next) and `waitingFor`: `queue` (in the job queue), `retry` (an attempt failed;
    it rejoins the queue at `retryAt`) or `recovering` (the reconciler queues it within
    30 s). `creditRefundable`: what cancelling now would give back."""
    return shape(lineup.snapshot(state.runtime, state.job_queue.pickup_order()))


@post("/api/queue/cancel", tags=["queue"], status_code=200, responses=change_errors(404, 409, 422))
@blocking
def cancel_queue(state: State, data: JSONBody[CancelBody]) -> dict[str, Any]:
    """Cancel the generations named in `generationIds`, or everything unfinished with `{}`.
    Each gets its undelivered images refunded. An unknown id is a 404 and a finished one a
    409, and then nothing is canceled. `finishedFirst`: ids that finished on their own
    between the check and their cancel."""
    result = lineup.cancel(state.runtime, data.generation_ids)
    return {
        "canceled": shapes.generations_of(result.generations),
        "creditRefunded": result.refunded,
        "creditBalance": credits.balance(state.runtime.user_id),
        "finishedFirst": result.finished_first,
    }


routes = [get_queue, cancel_queue]
