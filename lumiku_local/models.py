"""Peewee models: the whole schema in one place."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DateTimeField,
    DoubleField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)
from playhouse.sqlite_ext import JSONField

from .db import database, utcnow

TERMINAL_STATUSES = ("completed", "failed", "canceled")
UNFINISHED_STATUSES = ("pending", "processing")


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
    deadline_seconds = FloatField(default=600.0)
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
    progress = FloatField(default=0.0)
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
    file_size = IntegerField()
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
    bytes_done = IntegerField(default=0)
    bytes_total = IntegerField(default=0)
    bytes_per_second = FloatField(default=0.0)
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
