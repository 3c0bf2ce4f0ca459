"""The job lifecycle: submit, claim, run, finish, cancel, retry, reconcile (DESIGN §2)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from peewee import IntegrityError, fn

from . import (
    credits,
    db,
    failpoints,
    file_deletions,
    names,
    references,
    remote_consent,
    storage,
    workers,
)
from .catalog import REMOTE_PROVIDER, TIER_ORDER
from .db import database, savepoint, tuples, utcnow, write_transaction
from .engines import EngineJob, PermanentEngineError, Variation, engine_for
from .errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from .models import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    AIModel,
    Avatar,
    AvatarGeneration,
    AvatarPreset,
    AvatarProject,
    AvatarUsageHistory,
)
from .runtime import Runtime

log = logging.getLogger("lumiku.generations")

APP_ID = "avatar-creator"
MAX_COUNT = 8
MAX_PROMPT = 2000
MAX_SEED = 2**31 - 1
AVATAR_NAME_CHARACTERS = 60  # of the prompt, when a generation has no name: cut at a word
CLOCK_SLACK_SECONDS = 1.0  # a retry this much further ahead than its backoff: the clock moved
OWNED_CHECK_SECONDS = 0.05  # how stale a worker's "the job is still mine" may be (cancelled())


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str = ""
    name: str | None = None
    model_key: str | None = None
    preset_id: int | None = None
    style: str | None = None
    count: int = 1
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    reference_avatar_id: str | None = None  # a live avatar of the project: the photo to use
    likeness: float | None = None  # 0-1; None: the model's default
    negative_prompt: str | None = None  # what diffusion models keep out of the image
    # a reference carried over from another generation (retry, "more like this")
    reference: references.ReferenceCopy | None = None


class _LostClaim(Exception):
    """The generation left this worker's hands (finished, canceled, or taken over)."""


# ---------------------------------------------------------------- lookups


def _project_by_id(project_id: str) -> Any:
    return AvatarProject.select().where(AvatarProject.id == project_id)


def live_project(project_id: str) -> AvatarProject:
    project = db.first("project", _project_by_id, project_id)
    if project is None:
        raise NotFound("No project has that id.")
    if project.deleted_at is not None:
        raise NotFound("That project was deleted. Create a new project to keep generating.")
    return project


def _generation_by_id(generation_id: str) -> Any:
    return AvatarGeneration.select().where(AvatarGeneration.id == generation_id)


def get_generation(generation_id: str) -> AvatarGeneration:
    generation = db.first("generation", _generation_by_id, generation_id)
    if generation is None:
        raise NotFound("No generation has that id.")
    return generation


def is_installed(model: AIModel) -> bool:
    engine = engine_for(model.provider)
    return engine is not None and engine.is_installed(model.capabilities)


def not_installed_message(model: AIModel) -> str:
    """Why `model` cannot be chosen: the engine's reason (a remote model's missing token or
    provider), else the download to make."""
    engine = engine_for(model.provider)
    reason = getattr(engine, "not_installed_reason", lambda caps: None)(model.capabilities)
    if reason:
        return f"{model.name} cannot run remotely now: {reason}"
    return (
        f"{model.name} is not installed. Download it on the Models page, "
        "or use the Instant model, which needs no download."
    )


def user_key(runtime: Runtime) -> str:
    """The write lock's key for the balance (and what hangs on it): every charge and refund."""
    return f"user:{runtime.user_id}"


def _model_by_key(key: str) -> Any:
    return AIModel.select().where(AIModel.key == key)


def choose_model(model_key: str | None) -> AIModel:
    """The model asked for, or the cheapest installed, enabled model of the lowest tier."""
    if model_key:
        model = db.first("model", _model_by_key, model_key)
        if model is None:
            raise NotFound(f"There is no model {model_key!r}. See the model list for valid keys.")
        if not model.enabled:
            raise Conflict(
                f"{model.name} is disabled. Enable it on the admin page or pick another model.",
                code="model_disabled",
            )
        if not is_installed(model):
            raise Conflict(not_installed_message(model), code="model_not_installed")
        reason = getattr(engine_for(model.provider), "unavailable_reason", lambda: None)()
        if reason:
            raise Conflict(reason, code="engine_unavailable")
        remote_consent.check(model)  # a remote model: the person agreed to send the prompt
        return model
    models = list(AIModel.select().where(AIModel.enabled == True))  # noqa: E712
    if not models:
        raise ServiceUnavailable(
            "No AI models are available: the catalog is empty or every model is disabled. "
            "Restart Lumiku to restore the built-in catalog, or enable a model on the admin page.",
            code="no_models",
        )
    # never a remote model unasked: it sends the prompt away and bills another account
    installed = [m for m in models if m.provider != REMOTE_PROVIDER and is_installed(m)]
    if not installed:
        raise ServiceUnavailable(
            "No enabled model is installed. Enable the Instant model or download a model.",
            code="no_installed_models",
        )
    return min(installed, key=lambda m: (TIER_ORDER.get(m.tier, 99), m.credit_cost, m.sort_order))


def _resolve_options(request: GenerateRequest, model: AIModel) -> tuple[str, dict[str, Any]]:
    caps = model.capabilities or {}
    prompt = (request.prompt or "").strip()
    style = request.style
    preset_id = request.preset_id
    if preset_id is not None:
        preset = AvatarPreset.get_or_none(AvatarPreset.id == preset_id)
        if preset is None:
            raise NotFound("No preset has that id.")
        prompt = f"{prompt}, {preset.prompt}" if prompt else preset.prompt
        if style is None and model.provider == "dicebear":
            style = preset.style
    if not prompt:
        raise InvalidInput("Describe the avatar in the prompt, or pick a preset.")
    if len(prompt) > MAX_PROMPT:
        raise InvalidInput(f"The prompt is too long; keep it under {MAX_PROMPT} characters.")
    if not 1 <= request.count <= MAX_COUNT:
        raise InvalidInput(f"Images must be between 1 and {MAX_COUNT}.")
    seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED - MAX_COUNT)
    if not 0 <= seed <= MAX_SEED - MAX_COUNT:
        raise InvalidInput(f"Seed must be between 0 and {MAX_SEED - MAX_COUNT}.")
    min_size, max_size = caps.get("minSize", 64), caps.get("maxSize", 1024)
    width = caps.get("width", 512) if request.width is None else request.width
    height = caps.get("height", 512) if request.height is None else request.height
    for label, value in (("width", width), ("height", height)):
        if not min_size <= value <= max_size:
            raise InvalidInput(
                f"Size must be between {min_size} and {max_size} pixels (the {label} was {value})."
            )
    multiple = caps.get("sizeMultiple", 8 if model.provider == "diffusers" else 1)
    if width % multiple or height % multiple:
        raise InvalidInput(
            f"{model.name} needs a width and height that are multiples of {multiple}."
        )
    options: dict[str, Any] = {"width": width, "height": height, "seed": seed}
    if model.provider == "dicebear":
        styles = caps.get("styles", [])
        style = style or caps.get("defaultStyle")
        if style not in styles:
            raise InvalidInput(f"Unknown style {style!r}. Pick one of: {', '.join(styles)}.")
        options["style"] = style
    elif style is not None:
        raise InvalidInput(f"{model.name} has no styles; leave style out.")
    if preset_id is not None:
        options["presetId"] = preset_id
    negative = (request.negative_prompt or "").strip()
    if negative:
        if model.provider == "dicebear":
            raise InvalidInput(
                f"{model.name} takes no negative prompt (diffusion models do); leave "
                "negativePrompt out."
            )
        if len(negative) > MAX_PROMPT:
            raise InvalidInput(
                f"The negative prompt is too long; keep it under {MAX_PROMPT} characters."
            )
        options["negativePrompt"] = negative
    return prompt, options


# ---------------------------------------------------------------- submit


def submit(
    runtime: Runtime,
    project_id: str,
    request: GenerateRequest,
    retried_from: AvatarGeneration | None = None,
) -> tuple[AvatarGeneration, int]:
    """Check, insert the generation and debit its cost in one BEGIN IMMEDIATE, then enqueue."""
    references.check_likeness(request.likeness)
    if request.likeness is not None and not (request.reference_avatar_id or request.reference):
        raise InvalidInput("likeness needs a reference photo: add referenceAvatarId.")
    found = None
    if request.reference_avatar_id:
        found = references.find_face(
            runtime.settings.files_dir, request.reference_avatar_id, project_id
        )
    files_dir = runtime.settings.files_dir
    _ask_remote_models_first(request.model_key)
    with write_transaction(user_key(runtime)):
        project = live_project(project_id)
        model = choose_model(request.model_key)
        prompt, options = _resolve_options(request, model)
        copy = request.reference
        if request.reference_avatar_id:
            photo = references.photo_of(request.reference_avatar_id, project.id)
            copy = references.copy_of(photo, files_dir, request.likeness, found)
        elif copy is not None:
            references.check_kept(copy, files_dir)
            if request.likeness is not None:
                copy = dataclasses.replace(copy, likeness=request.likeness)
        reference = None
        if copy is not None:
            _, reference = references.resolve(copy, model, options.get("style"))
        batch = Batch(
            app_id=APP_ID,
            prompt=prompt,
            name=(request.name or "").strip()[:200],
            options=options,
            plan=plan_of(request.count, options["seed"]),
            reference=copy,
            reference_info=reference,
        )
        generation, balance = create(runtime, project, model, batch, retried_from)
    enqueue_new(runtime, generation)
    return generation, balance


def _ask_remote_models_first(model_key: str | None) -> None:
    """A remote model's token and provider lookups may take the network a few seconds: made
    (and cached) here, before the write transaction whose lock they would hold."""
    model = db.first("model", _model_by_key, model_key) if model_key else None
    if model is not None and model.provider == REMOTE_PROVIDER:
        is_installed(model)


@dataclass(frozen=True)
class Batch:
    """What a generation makes, as an app describes it; `create` charges and records it."""

    app_id: str
    prompt: str
    name: str
    options: dict[str, Any]
    plan: list[Variation]
    reference: references.ReferenceCopy | None = None
    reference_info: dict[str, Any] | None = None  # references.resolve's JSON


def create(
    runtime: Runtime,
    project: AvatarProject,
    model: AIModel,
    batch: Batch,
    retried_from: AvatarGeneration | None = None,
) -> tuple[AvatarGeneration, int]:
    """Inside the submit's write transaction: insert the generation and debit its cost (402
    when short: the whole transaction rolls back). Then call enqueue_new after the commit.

    The generation row goes in as late as it can (after the balance check and the project's
    touch): its created_at starts the pickup time, which everything before the commit adds to."""
    count = len(batch.plan)
    total = model.credit_cost * count
    copy = batch.reference
    available = credits.check(runtime.user_id, total)
    AvatarProject.update(updated_at=utcnow()).where(AvatarProject.id == project.id).execute()
    generation = AvatarGeneration.create(
        app_id=batch.app_id,
        user=runtime.user_id,
        project=project,
        model=model,
        prompt=batch.prompt,
        name=batch.name,
        options=batch.options,
        count=count,
        credit_cost=model.credit_cost,
        retried_from=retried_from,
        plan=[variation.as_json() for variation in batch.plan],
        reference_file=copy.image_file if copy else None,
        reference_thumbnail=copy.thumbnail_file if copy else None,
        reference=batch.reference_info if copy else None,
    )
    description = f"{count} × {model.name} ({model.credit_cost} each)"
    balance = credits.charge(runtime.user_id, generation, total, description, available)
    AvatarUsageHistory.create(
        user=runtime.user_id,
        project=project,
        generation=generation,
        action="generate" if batch.app_id == APP_ID else "pose-generate",
        details={"modelKey": model.key, "count": count, "credits": total},
    )
    return generation, balance


def enqueue_new(runtime: Runtime, generation: AvatarGeneration) -> None:
    """After the submit has committed: queue it (a lost enqueue is the reconciler's)."""
    failpoints.hit("generation.enqueue")
    try:
        runtime.enqueue(generation.id, model_key=generation.model_id)
    except Exception:  # charged and committed: the reconciler enqueues it within 30 s
        log.exception("could not enqueue generation %s; the reconciler will", generation.id)
    runtime.publish(generation_event(generation))


def retry(
    runtime: Runtime, generation_id: str, only_missing: bool = False
) -> tuple[AvatarGeneration, int]:
    """A new generation with the same request, linked to the old one; history stays as it was.

    `only_missing`: just the variations the old one did not deliver, with their own keys and
    seeds (so the images are the ones it would have made), charged for those alone."""
    original = get_generation(generation_id)
    if original.status not in TERMINAL_STATUSES:
        raise Conflict("This generation is still running; cancel it first or wait for it.")
    if only_missing:
        return _retry_missing(runtime, original)
    if original.app_id != APP_ID:  # the Pose Generator describes its own batches
        from . import pose_generations

        return pose_generations.retry(runtime, original)
    options = original.options or {}
    request = GenerateRequest(
        prompt=original.prompt,
        name=original.name,
        model_key=original.model_id,
        style=options.get("style"),
        count=original.count,
        width=options.get("width"),
        height=options.get("height"),
        reference=references.ReferenceCopy.of_generation(original),
        negative_prompt=options.get("negativePrompt"),
    )
    return submit(runtime, original.project_id, request, retried_from=original)


def missing_variations(generation: AvatarGeneration) -> list[Variation]:
    """The planned variations of which no avatar was made (one deleted since was delivered)."""
    made = {
        key
        for (key,) in tuples(
            Avatar.select(Avatar.variation_key).where(Avatar.generation == generation.id)
        )
    }
    return [variation for variation in variations_of(generation) if variation.key not in made]


def _retry_missing(runtime: Runtime, original: AvatarGeneration) -> tuple[AvatarGeneration, int]:
    """The same batch, app and options, planned as the missing variations only."""
    _ask_remote_models_first(original.model_id)
    with write_transaction(user_key(runtime)):
        missing = missing_variations(original)
        if not missing:
            raise Conflict(
                "Every image of this generation was delivered; nothing is missing. "
                "Retry without `only` for a new batch.",
                code="nothing_missing",
            )
        project = live_project(original.project_id)
        model = choose_model(original.model_id)
        copy = references.ReferenceCopy.of_generation(original)
        if copy is not None:
            references.check_kept(copy, runtime.settings.files_dir)
        batch = Batch(
            app_id=original.app_id,
            prompt=original.prompt,
            name=original.name,
            options=dict(original.options or {}),
            plan=missing,
            reference=copy,
            reference_info=original.reference if copy else None,
        )
        generation, balance = create(runtime, project, model, batch, retried_from=original)
    enqueue_new(runtime, generation)
    return generation, balance


def more_like(runtime: Runtime, avatar_id: str) -> tuple[AvatarGeneration, int]:
    """A new generation with this avatar's prompt, model, style, size and reference, and new
    seeds."""
    avatar, request = _more_like_request(avatar_id)
    return submit(runtime, avatar.project_id, request)


def more_like_cost(avatar_id: str) -> tuple[int, int]:
    """(images, credits) that more_like would make and charge: shown before it spends them."""
    _, request = _more_like_request(avatar_id)
    model = AIModel.get_or_none(AIModel.key == request.model_key)
    return request.count, (model.credit_cost if model else 0) * request.count


def _more_like_request(avatar_id: str) -> tuple[Avatar, GenerateRequest]:
    avatar = Avatar.get_or_none(Avatar.id == avatar_id)
    if avatar is None or avatar.deleted_at is not None:
        raise NotFound("No avatar has that id.")
    if avatar.source != "generated" or not avatar.prompt:
        raise InvalidInput("Only generated avatars have a prompt to generate more from.")
    source = AvatarGeneration.get_or_none(AvatarGeneration.id == avatar.generation_id)
    request = GenerateRequest(
        prompt=avatar.prompt,
        model_key=avatar.model_key,
        style=avatar.style,
        count=source.count if source else 4,
        width=avatar.width,
        height=avatar.height,
        reference=references.ReferenceCopy.of_generation(source) if source else None,
        negative_prompt=(source.options or {}).get("negativePrompt") if source else None,
    )
    return avatar, request


# ---------------------------------------------------------------- state moves


@dataclass(frozen=True)
class Transition:
    """One way a generation's row may change: from which statuses, to which, and whether only
    the worker holding the claim (its token) may make it."""

    sources: tuple[str, ...]
    target: str | None  # None: the status stays
    holder_only: bool


# Every change of a generation's state goes through move(): the API, the worker and the
# reconciler, on either engine. A terminal status is never a source, so nothing overwrites it.
TRANSITIONS = {
    "claim": Transition(UNFINISHED_STATUSES, "processing", holder_only=False),
    "heartbeat": Transition(("processing",), None, holder_only=True),
    "deliver": Transition(("processing",), None, holder_only=True),
    "attempt_failed": Transition(("processing",), "pending", holder_only=True),
    "finish": Transition(UNFINISHED_STATUSES, None, holder_only=False),  # status: a terminal one
}


def move(
    generation_id: str,
    name: str,
    token: str | None = None,
    source: str | None = None,
    **values: Any,
) -> bool:
    """Make the transition `name` in one guarded UPDATE; False when the row was not in a state
    that allows it (finished, canceled, taken over), so the caller lets go.

    `token`: the claim that must still hold it (required for the holder's moves; for a claim,
    the previous holder's, so two takers cannot both win). `source`: one status of the
    transition's sources, when the caller read which. `values`: the other columns it sets.
    """
    transition = TRANSITIONS[name]
    if transition.holder_only and token is None:
        raise ValueError(f"{name} is the claim holder's: pass its token")
    sources = transition.sources if source is None else (source,)
    assert set(sources) <= set(transition.sources), (name, source)
    if transition.target is not None:
        values["status"] = transition.target
    assert values.get("status", "processing") in (*UNFINISHED_STATUSES, *TERMINAL_STATUSES)
    guard = token is not None or source == "processing"  # a takeover names the claim it replaces
    unclaimed = guard and token is None  # "claim_token IS NULL": no placeholder

    def where(generation_id: Any, *claim: Any) -> Any:
        condition = (AvatarGeneration.id == generation_id) & AvatarGeneration.status.in_(sources)
        if unclaimed:
            condition &= AvatarGeneration.claim_token.is_null()
        elif guard:
            condition &= AvatarGeneration.claim_token == claim[0]
        return condition

    values.setdefault("updated_at", utcnow())
    args = (generation_id, token) if guard and not unclaimed else (generation_id,)
    shape = f"move {name} {','.join(sources)} {'null' if unclaimed else len(args)}"
    return bool(db.update(shape, AvatarGeneration, values, where, *args))


# ---------------------------------------------------------------- finish / cancel


def finish(
    runtime: Runtime,
    generation_id: str,
    status: str,
    error_message: str | None = None,
    claim_token: str | None = None,
    attempts: int | None = None,
) -> bool:
    """Move to a terminal state once, refunding what was charged and not delivered.

    `attempts`: how many attempts failed, when the job ends because one did."""
    assert status in TERMINAL_STATUSES
    failpoints.hit("generation.finish")
    with write_transaction(f"generation:{generation_id}", user_key(runtime)):
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "completed_at": now,
            "updated_at": now,
            "error_message": error_message,
            "claim_token": None,
            "next_attempt_at": None,
        }
        if attempts is not None:
            values["error_attempts"] = attempts
        if not move(generation_id, "finish", token=claim_token, **values):
            return False
        generation = get_generation(generation_id)
        delivered = db.scalar("delivered", _delivered, generation_id)
        missing = generation.count - delivered
        if delivered != generation.count_completed:
            generation.count_completed = delivered
            generation.save(only=[AvatarGeneration.count_completed])
        if missing > 0:
            credits.refund(
                generation,
                generation.credit_cost * missing,
                f"Refund: {missing} of {generation.count} images not delivered ({status})",
            )
        # its photo is needed no more: gone with it if the photo was deleted meanwhile (names
        # a live avatar or another unfinished generation uses are not recorded)
        released = references.release(generation)
    if released and not database.in_transaction():  # else the caller's commit comes first
        file_deletions.carry_out_quietly(runtime.settings.files_dir)
    runtime.publish(generation_event(generation))
    return True


def _delivered(generation_id: str) -> Any:
    return Avatar.select(fn.COUNT(Avatar.id)).where(Avatar.generation == generation_id)


def cancel(runtime: Runtime, generation_id: str) -> AvatarGeneration:
    generation = get_generation(generation_id)
    if generation.status in TERMINAL_STATUSES:
        raise Conflict(f"This generation has already {generation.status}; nothing to cancel.")
    if not finish(
        runtime, generation_id, "canceled", "Canceled. Undelivered images were refunded."
    ):
        raise Conflict("This generation finished before it could be canceled.")
    return get_generation(generation_id)


# ---------------------------------------------------------------- the worker side


def backoff_seconds(runtime: Runtime, attempts: int) -> float:
    """The wait before the next attempt, after `attempts` failed ones: it doubles each time."""
    return runtime.settings.retry_backoff_seconds * 2 ** max(attempts - 1, 0)


def retry_due(runtime: Runtime, generation: AvatarGeneration, now: dt.datetime) -> bool:
    """A pending job may start: no retry is scheduled, its time has come, or the clock went back
    (a retry further ahead than its own backoff was scheduled before the clock changed)."""
    scheduled = generation.next_attempt_at
    if scheduled is None or scheduled <= now:
        return True
    ahead = (scheduled - now).total_seconds()
    return ahead > backoff_seconds(runtime, generation.error_attempts) + CLOCK_SLACK_SECONDS


def lease_expired(runtime: Runtime, heartbeat_at: dt.datetime | None, now: dt.datetime) -> bool:
    """No heartbeat within the lease; a heartbeat from the future (the clock went back) beyond
    the lease is no proof of life either."""
    return workers.is_stale(heartbeat_at, now, runtime.settings.lease_seconds)


def takeable(
    runtime: Runtime, generation: AvatarGeneration, now: dt.datetime, live: set[str]
) -> bool:
    """A `processing` job may be taken over: its lease expired (its worker's thread hung, or the
    worker is gone without a word), or its worker is gone (stopped, or its process exited: a
    fact, so at once). A job a thread of this process runs is never taken from it. `live`:
    workers.live_boots at `now`."""
    if generation.boot_id == runtime.boot_id and generation.id in runtime.running:
        return False
    if lease_expired(runtime, generation.heartbeat_at, now):
        return True
    return generation.boot_id != runtime.boot_id and generation.boot_id not in live


def claim(runtime: Runtime, generation_id: str) -> str | None:
    """Take the job if it is pending and due, or processing and takeable; None when it is not
    this worker's to take (a model this process does not run, among others)."""
    claimed = _claim(runtime, generation_id)
    return None if claimed is None else claimed[0]


def _with_model(generation_id: str) -> Any:
    return (
        AvatarGeneration.select(AvatarGeneration, AIModel)
        .join(AIModel)
        .where(AvatarGeneration.id == generation_id)
    )


def _claim(runtime: Runtime, generation_id: str) -> tuple[str, AvatarGeneration] | None:
    """claim(), with the row as claimed (its model joined): the worker reads nothing again."""
    token = uuid.uuid4().hex
    with write_transaction(f"generation:{generation_id}"):
        now = db.now()
        generation = db.first("claim", _with_model, generation_id)
        if generation is None:
            return None
        only = runtime.settings.model_filter
        if only and generation.model_id not in only:
            return None  # routed to another worker's list: reached here by a stale enqueue
        if generation.status == "pending":
            if not retry_due(runtime, generation, now):
                return None
        elif generation.status == "processing":
            live = workers.live_boots(now, runtime.settings.lease_seconds)
            if not takeable(runtime, generation, now, live):
                return None  # a live worker has it, or had it a moment ago
        else:
            return None
        claimed = {
            "boot_id": runtime.boot_id,
            "claim_token": token,
            "heartbeat_at": now,
            "started_at": generation.started_at or now,
            "next_attempt_at": None,
        }
        changed = move(
            generation_id,
            "claim",
            token=generation.claim_token if generation.status == "processing" else None,
            source=generation.status,
            **claimed,
        )
    if not changed:
        return None
    runtime.running.add(generation_id)  # once committed: a failed commit claims nothing
    for name, value in {**claimed, "status": "processing"}.items():
        setattr(generation, name, value)
    return token, generation


def _keys_of(generation_id: str) -> Any:
    return Avatar.select(Avatar.variation_key).where(Avatar.generation == generation_id).tuples()


def _holding(generation_id: str, token: str) -> Any:
    return AvatarGeneration.select(fn.COUNT(AvatarGeneration.id)).where(
        (AvatarGeneration.id == generation_id)
        & (AvatarGeneration.status == "processing")
        & (AvatarGeneration.claim_token == token)
    )


class _Worker:
    """One run of one generation by the worker that claimed it."""

    def __init__(self, runtime: Runtime, generation: AvatarGeneration, token: str) -> None:
        self.runtime = runtime
        self.generation = generation
        self.token = token
        self.settings = runtime.settings
        self.last_heartbeat = time.monotonic()
        # the deadline counts running time: monotonic here, carried across restarts in the row
        self.claimed_at = time.monotonic()
        self.run_seconds_before = float(generation.run_seconds or 0)
        self.deadline_seconds = float(generation.model.deadline_seconds)
        self.done = {key for (key,) in db.rows("delivered keys", _keys_of, generation.id)}
        self.delivered = len(self.done)
        self.lost = False
        self.timed_out = False
        self.owned_at = time.monotonic()  # the claim just committed: it is ours

    def owned(self) -> bool:
        owned = bool(db.scalar("owned", _holding, self.generation.id, self.token))
        if owned:
            self.owned_at = time.monotonic()
        return owned

    def cancelled(self) -> bool:
        """Checked by the engine between images and steps: canceled, taken over, past deadline.

        The row is read at most every OWNED_CHECK_SECONDS: an engine asks between every step,
        and a one-image job would otherwise read it three times in a few milliseconds. A cancel
        is seen that much later at worst; a delivery checks the claim in its own transaction."""
        self.heartbeat()
        if self.runtime.stopping.is_set():
            return True
        if self.run_seconds() >= self.deadline_seconds:
            self.timed_out = True
            return True
        if time.monotonic() - self.owned_at >= OWNED_CHECK_SECONDS and not self.owned():
            self.lost = True
            return True
        return False

    def run_seconds(self) -> float:
        """Time this generation has spent running, over every attempt and restart."""
        return self.run_seconds_before + time.monotonic() - self.claimed_at

    def heartbeat(self, progress: float | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_heartbeat < self.settings.heartbeat_seconds:
            return
        self.last_heartbeat = now
        self.runtime.touch()
        values: dict[str, Any] = {"heartbeat_at": db.now_sql(), "run_seconds": self.run_seconds()}
        if progress is not None:
            values["progress"] = progress
        move(self.generation.id, "heartbeat", token=self.token, **values)

    @contextlib.contextmanager
    def keep_alive(self) -> Iterator[None]:
        """Heartbeat from a side thread while the engine runs: a model load, a queue for the GPU,
        one long step or a VAE decode can outlast the lease without reaching a callback."""
        done = threading.Event()

        def beat() -> None:
            try:
                while not done.wait(self.settings.heartbeat_seconds):
                    self.heartbeat(force=True)
            finally:
                if not database.is_closed():
                    database.close()

        ticker = threading.Thread(target=beat, name="lumiku-heartbeat", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()

    def on_progress(self, fraction: float, message: str) -> None:
        generation = self.generation
        done_before = generation.count - len(self.pending_variations)
        overall = (done_before + fraction * len(self.pending_variations)) / generation.count
        generation.progress = min(overall, 1.0)
        self.heartbeat(progress=generation.progress)
        event = generation_event(generation)
        event["step"] = message
        self.runtime.publish(event)

    def on_image(self, variation: Variation, prepared: storage.PreparedImage) -> None:
        generation = self.generation
        stored = storage.write(self.settings.files_dir, prepared)
        failpoints.hit("generation.record")
        options = generation.options or {}
        with write_transaction(f"generation:{generation.id}"):
            if not self.owned():  # the file stays: whoever holds the job writes the same bytes
                self.lost = True
                raise _LostClaim()
            storage.write(self.settings.files_dir, prepared)  # see storage.write
            try:
                with savepoint():  # PostgreSQL: a broken unique key would abort the rest
                    Avatar.create(
                        user=generation.user_id,
                        project=generation.project_id,
                        generation=generation.id,
                        variation_key=variation.key,
                        pose_id=variation.pose_id,
                        name=_avatar_name(generation, variation),
                        source="generated",
                        prompt=generation.prompt,
                        seed=variation.seed,
                        model_key=generation.model_id,
                        style=options.get("style"),
                        image_file=stored.image_file,
                        thumbnail_file=stored.thumbnail_file,
                        width=stored.width,
                        height=stored.height,
                        file_size=stored.file_size,
                    )
            except IntegrityError:
                log.warning("variation %s of %s already stored", variation.key, generation.id)
                return
            self.delivered += 1
            generation.count_completed = self.delivered
            # never backwards: a diffusion batch reaches 100% of its steps before any image lands
            generation.progress = max(generation.progress, self.delivered / generation.count)
            move(
                generation.id,
                "deliver",
                token=self.token,
                count_completed=self.delivered,
                progress=generation.progress,
                heartbeat_at=db.now_sql(),
            )
        self.runtime.publish(generation_event(generation))

    def run(self) -> None:
        generation = self.generation
        model = generation.model
        self.pending_variations = [v for v in variations_of(generation) if v.key not in self.done]
        self.runtime.publish(generation_event(generation))
        engine = engine_for(model.provider)
        # a remote model's token and provider are the engine's to judge: offline is transient
        remote = model.provider == REMOTE_PROVIDER
        if engine is None or (not remote and not engine.is_installed(model.capabilities)):
            self._finish("failed", f"{model.name} is not installed. Download it and retry.")
            return
        options = generation.options or {}
        try:
            reference = references.for_engine(generation, self.settings.files_dir)
        except PermanentEngineError as exc:
            self._finish("failed", str(exc), attempts=generation.error_attempts + 1)
            return
        job = EngineJob(
            generation_id=generation.id,
            model_key=model.key,
            capabilities=model.capabilities or {},
            prompt=generation.prompt,
            width=int(options.get("width", 512)),
            height=int(options.get("height", 512)),
            variations=self.pending_variations,
            options=options,
            reference=reference,
            poses=dict(options.get("poseKeypoints") or {}),
            seconds_left=lambda: self.deadline_seconds - self.run_seconds(),  # remote waits
        )
        try:
            if self.pending_variations and not self.cancelled():
                with self.keep_alive():
                    engine.generate(job, self.on_image, self.on_progress, self.cancelled)
        except _LostClaim:
            return
        except PermanentEngineError as exc:  # retrying cannot help: fail at once
            self._finish("failed", str(exc), attempts=generation.error_attempts + 1)
            return
        except Exception as exc:  # anything else is worth another attempt
            log.warning("generation %s attempt failed: %s", generation.id, exc, exc_info=True)
            self._attempt_failed(exc)
            return
        if self.lost:
            return
        if self.delivered < generation.count and self.runtime.stopping.is_set():
            log.info("generation %s paused for shutdown; the next start resumes it", generation.id)
            return
        if self.delivered >= generation.count:
            self._finish("completed")
        elif self.timed_out:
            limit = int(model.deadline_seconds)
            self._finish(
                "failed",
                f"Timed out: {model.name} did not finish within its {limit} s deadline. "
                "Undelivered images were refunded; retry, or choose fewer images.",
            )
        else:
            self._attempt_failed(
                RuntimeError(f"the engine returned {self.delivered} of {generation.count} images")
            )

    def _finish(self, status: str, message: str | None = None, attempts: int | None = None) -> None:
        finish(
            self.runtime,
            self.generation.id,
            status,
            message,
            claim_token=self.token,
            attempts=attempts,
        )

    def _attempt_failed(self, exc: Exception) -> None:
        """Schedule another attempt with exponential backoff, or fail with a refund."""
        generation = self.generation
        attempts = generation.error_attempts + 1
        max_attempts = self.settings.max_attempts
        if attempts >= max_attempts:
            self._finish(
                "failed",
                f"Generation failed after {attempts} attempts: {exc}. "
                "Undelivered images were refunded; you can retry it.",
                attempts=attempts,
            )
            return
        delay = backoff_seconds(self.runtime, attempts)
        with write_transaction(f"generation:{generation.id}"):
            changed = move(
                generation.id,
                "attempt_failed",
                token=self.token,
                error_attempts=attempts,
                claim_token=None,
                error_message=f"Attempt {attempts} of {max_attempts} failed: {exc}. Retrying.",
                next_attempt_at=db.now() + dt.timedelta(seconds=delay),
                run_seconds=self.run_seconds(),
            )
        if changed:
            self.runtime.enqueue(generation.id, delay=delay, model_key=generation.model_id)
            self.runtime.publish(generation_event(get_generation(generation.id)))


def run_generation(runtime: Runtime, generation_id: str) -> None:
    """The Huey task body: idempotent, safe to run twice or after a crash."""
    claimed = _claim(runtime, generation_id)
    if claimed is None:
        return
    token, generation = claimed
    try:
        _Worker(runtime, generation, token).run()
    finally:
        runtime.running.discard(generation_id)


def plan_of(count: int, seed: int) -> list[Variation]:
    """The Avatar Creator's batch: `count` variations "v{n}" with seeds seed + n."""
    return [
        Variation(key=f"v{n}", seed=seed + n, label=f"#{n + 1}" if count > 1 else "")
        for n in range(count)
    ]


def variations_of(generation: AvatarGeneration) -> list[Variation]:
    """What a generation makes, as fixed at submit (derived for rows made before m010)."""
    if generation.plan:
        return [Variation.from_json(item) for item in generation.plan]
    return plan_of(generation.count, int((generation.options or {}).get("seed", 0)))


def _avatar_name(generation: AvatarGeneration, variation: Variation) -> str:
    base = generation.name or names.shorten(generation.prompt, AVATAR_NAME_CHARACTERS)
    return f"{base} {variation.label}" if variation.label else base


# ---------------------------------------------------------------- reconcile


def reconcile(runtime: Runtime, queued_ids: set[str]) -> list[str]:
    """Put unfinished work back in the queue: the database, not the queue, is the truth."""
    now = db.now()
    live = workers.live_boots(now, runtime.settings.lease_seconds)
    rows = AvatarGeneration.select(
        AvatarGeneration.id,
        AvatarGeneration.status,
        AvatarGeneration.next_attempt_at,
        AvatarGeneration.error_attempts,
        AvatarGeneration.heartbeat_at,
        AvatarGeneration.boot_id,
        AvatarGeneration.model,
    ).where(AvatarGeneration.status.in_(UNFINISHED_STATUSES))
    enqueued = []
    for row in rows:
        if row.id in queued_ids:
            continue  # waiting in the queue, or for its retry
        if row.status == "pending" and not retry_due(runtime, row, now):
            continue  # its retry is scheduled (before a restart: no timer waits for it)
        if row.status == "processing" and not takeable(runtime, row, now, live):
            continue  # a live worker has it
        runtime.enqueue(row.id, model_key=row.model_id)
        enqueued.append(row.id)
    if enqueued:
        log.info("reconciler re-enqueued %d generation(s)", len(enqueued))
    return enqueued


# ---------------------------------------------------------------- shapes


def generation_event(generation: AvatarGeneration) -> dict[str, Any]:
    return {
        "type": "generation",
        "id": generation.id,
        "projectId": generation.project_id,
        "status": generation.status,
        "progress": round(float(generation.progress or 0) * 100, 1),
        "countRequested": generation.count,
        "countCompleted": generation.count_completed,
        "errorMessage": generation.error_message,
    }


def counts_by_status(app_id: str | None = None) -> dict[str, int]:
    """Generations by status, of one app or of all."""
    rows = AvatarGeneration.select(AvatarGeneration.status, fn.COUNT(AvatarGeneration.id))
    if app_id is not None:
        rows = rows.where(AvatarGeneration.app_id == app_id)
    return dict(tuples(rows.group_by(AvatarGeneration.status)))
