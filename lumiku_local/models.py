"""Peewee models: the whole schema in one place."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from .db import database, utcnow

TERMINAL_STATUSES = ("completed", "failed", "canceled")
UNFINISHED_STATUSES = ("pending", "processing")


class JSONField(TextField):
    """JSON kept as text: the same column and values on SQLite and PostgreSQL, whatever the
    driver (psycopg would hand back a `json` column already parsed). No query looks inside."""

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        if isinstance(value, str | bytes):
            return json.loads(value)
        return value  # None, or a number SQLite's JSON-typed column (numeric affinity) made


def new_id() -> str:
    return uuid.uuid4().hex


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class User(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        id: AutoField[int]
    name = CharField()
    credit_balance = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)


class AIModel(BaseModel):
    key = CharField(primary_key=True)
    app_id = CharField(index=True)
    name = CharField()
    description = TextField(default="")
    provider = CharField()
    tier = CharField()
    credit_cost = IntegerField()
    enabled = BooleanField(default=True)
    capabilities = JSONField(default=dict)
    deadline_seconds = DoubleField(default=600.0)
    sort_order = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "ai_model"


class AvatarPreset(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        id: AutoField[int]
    slug = CharField(unique=True)
    name = CharField()
    category = CharField()
    description = TextField(default="")
    prompt = TextField()
    style = CharField(null=True)
    sort_order = IntegerField(default=0)


class PersonaExample(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        id: AutoField[int]
    slug = CharField(unique=True)
    name = CharField()
    persona_name = CharField()
    age = IntegerField(null=True)
    personality = TextField(default="")
    background = TextField(default="")
    prompt = TextField()
    sort_order = IntegerField(default=0)


class AvatarProject(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        user_id: IntegerField[int]
    id = CharField(primary_key=True, default=new_id)
    user = ForeignKeyField(User, backref="projects")
    name = CharField()
    description = TextField(default="")
    created_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)
    deleted_at = DateTimeField(null=True)  # in the trash: rows and files kept, restorable
    purged_at = DateTimeField(null=True)  # the trash was emptied: its files are let go of


class AvatarGeneration(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        user_id: IntegerField[int]
        project_id: CharField[str]
        model_id: CharField[str]
        retried_from_id: CharField[str | None]
    id = CharField(primary_key=True, default=new_id)
    # which app asked: "avatar-creator" (a prompt) or "pose-generator" (an avatar in poses);
    # both run the same lifecycle, each batch described by its plan
    app_id = CharField(default="avatar-creator", index=True)
    user = ForeignKeyField(User, backref="generations")
    project = ForeignKeyField(AvatarProject, backref="generations")
    model = ForeignKeyField(AIModel, backref="generations")
    status = CharField(default="pending", index=True)
    prompt = TextField()
    name = CharField(default="")
    options = JSONField(default=dict)
    count = IntegerField()
    count_completed = IntegerField(default=0)
    credit_cost = IntegerField()
    progress = DoubleField(default=0.0)
    error_message = TextField(null=True)
    error_attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField(null=True)
    boot_id = CharField(null=True)
    claim_token = CharField(null=True)
    heartbeat_at = DateTimeField(null=True)
    deadline_at = DateTimeField(null=True)  # unused since m008: see run_seconds
    # seconds spent running, over every attempt and restart: the deadline counts this, not the
    # wall clock, which jumps when a laptop wakes or the clock is set back
    run_seconds = DoubleField(default=0.0)
    started_at = DateTimeField(null=True)
    completed_at = DateTimeField(null=True, index=True)
    created_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)
    retried_from = ForeignKeyField("self", null=True, backref="retries")
    # the photo it starts from: the generation's own copy (content-addressed names, kept while
    # its project lives, whatever happens to the avatar it came from) and how it is used
    reference_file = CharField(null=True, index=True)
    reference_thumbnail = CharField(null=True)
    reference = JSONField(null=True)  # {avatarId, sha256, likeness, mode, faceBox, width, height}
    # what the batch makes, fixed at submit: [{key, seed, poseId?, label?}], one per image
    # (None for generations made before m010: "v{n}" with seed + n)
    plan = JSONField(null=True)

    class Meta:
        table_name = "avatar_generation"


class Avatar(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        user_id: IntegerField[int]
        project_id: CharField[str]
        generation_id: CharField[str | None]
    id = CharField(primary_key=True, default=new_id)
    user = ForeignKeyField(User, backref="avatars")
    project = ForeignKeyField(AvatarProject, backref="avatars", index=True)
    generation = ForeignKeyField(AvatarGeneration, null=True, backref="avatars")
    variation_key = CharField(null=True)
    pose_id = CharField(null=True)  # the pose it was made in (the Pose Generator)
    name = CharField()
    source = CharField()  # "upload" or "generated"
    prompt = TextField(null=True)
    seed = IntegerField(null=True)
    model_key = CharField(null=True)
    style = CharField(null=True)
    image_file = CharField()
    thumbnail_file = CharField()
    width = IntegerField()
    height = IntegerField()
    file_size = BigIntegerField()
    # the face square {x, y, size, source} in this image's pixels (face_box.py), or None
    face_box = JSONField(null=True)
    favorite = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    # in the trash (rows and files kept, restorable) until purged_at: the trash was emptied and
    # its files let go of. A deleted avatar still counts as delivered.
    deleted_at = DateTimeField(null=True)
    purged_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("generation", "variation_key"), True),
            (("project", "deleted_at", "created_at", "id"), False),  # the gallery's pages
        )


class CreditLedger(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        id: AutoField[int]
        user_id: IntegerField[int]
        generation_id: CharField[str | None]
    user = ForeignKeyField(User, backref="ledger")
    kind = CharField()  # "grant", "debit" or "refund"
    amount = IntegerField()
    balance_after = IntegerField()
    description = TextField()
    generation = ForeignKeyField(AvatarGeneration, null=True, backref="ledger")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "credit_ledger"
        indexes = ((("generation", "kind"), True),)


class AvatarUsageHistory(BaseModel):
    if TYPE_CHECKING:  # set by Peewee: the primary key and the foreign keys' ids
        id: AutoField[int]
    user = ForeignKeyField(User, backref="usage")
    project = ForeignKeyField(AvatarProject, null=True, backref="usage")
    avatar = ForeignKeyField(Avatar, null=True, backref="usage")
    generation = ForeignKeyField(AvatarGeneration, null=True, backref="usage")
    action = CharField()
    details = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "avatar_usage_history"


class ModelDownload(BaseModel):
    """The state of one model's download; the files live in the Hugging Face cache."""

    model_key = CharField(primary_key=True)
    status = CharField()  # downloading, completed, failed or canceled
    bytes_done = BigIntegerField(default=0)  # FLUX.1-dev is 34 GB: past 32 bits
    bytes_total = BigIntegerField(default=0)
    bytes_per_second = DoubleField(default=0.0)
    error_message = TextField(null=True)
    started_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)

    class Meta:
        table_name = "model_download"


class Pose(BaseModel):
    """A pose of the Pose Generator's library: seeded from pose_library, or imported."""

    id = CharField(primary_key=True)  # a slug: "standing-arms-crossed", "custom-1a2b3c4d"
    name = CharField()
    category = CharField(index=True)
    tags = JSONField(default=list)
    keypoints = JSONField()  # 18 x [x, y, visible], 0-1 on a square canvas (COCO-18 order)
    source = CharField(default="library")  # "library" or "import"
    enabled = BooleanField(default=True)
    sort_order = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)


class FileDeletion(BaseModel):
    """A file let go of by a committed transaction, to be removed from the files folder.

    Recorded in the transaction that soft-deletes the rows naming the file and carried out after
    it commits, so a crash in between leaves a file to remove, never a row without its file.
    """

    name = CharField(primary_key=True)  # a stored name such as "ab/abcd….png"
    recorded_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "file_deletion"


class Worker(BaseModel):
    """A live process that runs generations (DESIGN §2): `lumiku`, `lumiku worker` or a server.

    Jobs name their worker by boot id. A row whose heartbeat (the database's clock) is older than
    the lease, or whose process on this host is gone, is a worker that is gone: its jobs may be
    taken over. A job of a worker whose heartbeat is fresh is never taken.
    """

    boot_id = CharField(primary_key=True)
    host = CharField()
    pid = IntegerField()
    kind = CharField()  # "embedded", "worker" or "server" (serve --no-workers: runs none)
    threads = IntegerField(default=0)  # generation worker threads
    models = JSONField(default=list)  # model keys it runs; [] = every model
    started_at = DateTimeField()
    heartbeat_at = DateTimeField(index=True)

    class Meta:
        table_name = "worker"


class Lease(BaseModel):
    """A role only one process holds at a time (the reconciler, the files sweep), for a while.

    Held by a boot id until expires_at (the database's clock); renewed by its holder, taken by
    another only once expired."""

    name = CharField(primary_key=True)
    holder = CharField()
    expires_at = DateTimeField()

    class Meta:
        table_name = "lease"


class RemoteConsent(BaseModel):
    """A person's yes, once per remote model, to sending its prompts (and photos) to Hugging
    Face: asked before the first remote generation, remembered here."""

    model_key = CharField(primary_key=True)
    user = IntegerField()
    given_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "remote_consent"


ALL_MODELS = [
    User,
    AIModel,
    AvatarPreset,
    PersonaExample,
    AvatarProject,
    AvatarGeneration,
    Avatar,
    CreditLedger,
    AvatarUsageHistory,
    ModelDownload,
]
