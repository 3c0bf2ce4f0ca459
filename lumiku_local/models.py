"""Peewee models: the whole schema in one place."""

from __future__ import annotations

import uuid

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
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
    slug = CharField(unique=True)
    name = CharField()
    category = CharField()
    description = TextField(default="")
    prompt = TextField()
    style = CharField(null=True)
    sort_order = IntegerField(default=0)


class PersonaExample(BaseModel):
    slug = CharField(unique=True)
    name = CharField()
    persona_name = CharField()
    age = IntegerField(null=True)
    personality = TextField(default="")
    background = TextField(default="")
    prompt = TextField()
    sort_order = IntegerField(default=0)


class AvatarProject(BaseModel):
    id = CharField(primary_key=True, default=new_id)
    user = ForeignKeyField(User, backref="projects")
    name = CharField()
    description = TextField(default="")
    created_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)
    deleted_at = DateTimeField(null=True)


class AvatarGeneration(BaseModel):
    id = CharField(primary_key=True, default=new_id)
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
    deadline_at = DateTimeField(null=True)
    started_at = DateTimeField(null=True)
    completed_at = DateTimeField(null=True, index=True)
    created_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)
    retried_from = ForeignKeyField("self", null=True, backref="retries")

    class Meta:
        table_name = "avatar_generation"


class Avatar(BaseModel):
    id = CharField(primary_key=True, default=new_id)
    user = ForeignKeyField(User, backref="avatars")
    project = ForeignKeyField(AvatarProject, backref="avatars", index=True)
    generation = ForeignKeyField(AvatarGeneration, null=True, backref="avatars")
    variation_key = CharField(null=True)
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
    created_at = DateTimeField(default=utcnow)
    deleted_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("generation", "variation_key"), True),)


class CreditLedger(BaseModel):
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
