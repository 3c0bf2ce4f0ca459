"""The line of work across projects and apps: what runs, what waits and in which order the
workers will take it; cancel some of it or all of it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from . import generations
from .errors import Conflict, InvalidInput, NotFound
from .models import UNFINISHED_STATUSES, AvatarGeneration, AvatarProject, CreditLedger
from .runtime import Runtime

MAX_IDS = 500


@dataclass(frozen=True)
class Waiting:
    generation: AvatarGeneration
    position: int  # 1: the next to start when a worker is free
    # "queue": in the job queue; "retry": an attempt failed, the next one joins the queue at
    # retry_at; "recovering": not in the queue (a lost enqueue), the reconciler queues it
    reason: str
    retry_at: dt.datetime | None = None


@dataclass(frozen=True)
class Lineup:
    running: list[AvatarGeneration]
    waiting: list[Waiting]
    project_names: dict[str, str]

    @property
    def refundable(self) -> int:
        """The credits cancelling everything would give back now (images made meanwhile are
        kept and stay charged)."""
        rows = self.running + [entry.generation for entry in self.waiting]
        return sum(refundable(row) for row in rows)


def refundable(row: AvatarGeneration) -> int:
    return row.credit_cost * max(row.count - row.count_completed, 0)


def snapshot(runtime: Runtime, pickup_order: list[str]) -> Lineup:
    """Everything unfinished; the waiting part in the order the workers will take it.

    `pickup_order`: the job queue's ids as its workers dequeue them (JobQueue.pickup_order).
    After those come the retries by the time they rejoin the queue, then what the reconciler
    will queue (oldest first, as it reads them).
    """
    rows = list(
        AvatarGeneration.select().where(
            AvatarGeneration.status.in_(UNFINISHED_STATUSES)
            & (AvatarGeneration.user == runtime.user_id)
        )
    )
    running = sorted(
        (row for row in rows if row.status == "processing"),
        key=lambda row: (row.started_at or row.created_at, row.id),
    )
    queued = {generation_id: index for index, generation_id in enumerate(pickup_order)}
    far = dt.datetime.max

    def place(row: AvatarGeneration) -> tuple[int, int, dt.datetime, str]:
        if row.id in queued:
            return (0, queued[row.id], far, row.id)
        if row.next_attempt_at is not None:
            return (1, 0, row.next_attempt_at, row.id)
        return (2, 0, row.created_at, row.id)

    pending = sorted((row for row in rows if row.status == "pending"), key=place)
    waiting = []
    for position, row in enumerate(pending, start=1):
        group = place(row)[0]
        reason = ("queue", "retry", "recovering")[group]
        waiting.append(Waiting(row, position, reason, row.next_attempt_at if group == 1 else None))
    project_ids = {row.project_id for row in rows}
    names = {
        project.id: project.name
        for project in AvatarProject.select(AvatarProject.id, AvatarProject.name).where(
            AvatarProject.id.in_(project_ids)
        )
    }
    return Lineup(running, waiting, names)


@dataclass(frozen=True)
class Canceled:
    generations: list[AvatarGeneration]  # canceled by this request, in the order asked
    refunded: int  # the credits their cancels gave back
    finished_first: list[str]  # ids that finished on their own before the cancel reached them


def cancel(runtime: Runtime, generation_ids: list[str] | None = None) -> Canceled:
    """Cancel these unfinished generations (all of them when None), refunding what each has not
    delivered. Every id is checked first: an unknown or finished one refuses the whole request,
    and nothing is canceled."""
    if generation_ids is None:
        ids = [
            row.id
            for row in AvatarGeneration.select(AvatarGeneration.id)
            .where(
                AvatarGeneration.status.in_(UNFINISHED_STATUSES)
                & (AvatarGeneration.user == runtime.user_id)
            )
            .order_by(AvatarGeneration.created_at, AvatarGeneration.id)
        ]
    else:
        ids = _checked(runtime, generation_ids)
    canceled: list[AvatarGeneration] = []
    finished_first: list[str] = []
    for generation_id in ids:
        try:
            canceled.append(generations.cancel(runtime, generation_id))
        except Conflict:  # it finished between the check and its cancel: nothing to give back
            finished_first.append(generation_id)
    refunded = 0
    if canceled:
        refunded = sum(
            entry.amount
            for entry in CreditLedger.select(CreditLedger.amount).where(
                CreditLedger.generation.in_([row.id for row in canceled])
                & (CreditLedger.kind == "refund")
            )
        )
    return Canceled(canceled, refunded, finished_first)


def _checked(runtime: Runtime, generation_ids: list[str]) -> list[str]:
    ids = list(dict.fromkeys(generation_ids))  # once each, in the order given
    if not ids:
        raise InvalidInput(
            "generationIds is empty: name the generations to cancel, or leave it out to cancel "
            "everything unfinished.",
            code="nothing_to_cancel",
        )
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"Cancel at most {MAX_IDS} generations at once.", code="too_many_ids")
    found = {
        row.id: row.status
        for row in AvatarGeneration.select(AvatarGeneration.id, AvatarGeneration.status).where(
            AvatarGeneration.id.in_(ids) & (AvatarGeneration.user == runtime.user_id)
        )
    }
    unknown = [generation_id for generation_id in ids if generation_id not in found]
    if unknown:
        raise NotFound(f"No generation has the id {_listed(unknown)}. Nothing was canceled.")
    finished = [
        generation_id for generation_id in ids if found[generation_id] not in UNFINISHED_STATUSES
    ]
    if finished:
        raise Conflict(
            f"Generation {_listed(finished)} has already finished "
            f"({found[finished[0]]}); nothing was canceled. Reload the queue.",
            code="already_finished",
        )
    return ids


def _listed(ids: list[str]) -> str:
    shown = ", ".join(ids[:3])
    return shown + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
