"""Ordered, named migrations, each recorded once in the `migrations` table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peewee import CharField, DateTimeField, Model

from . import catalog, pose_library
from .db import database, exclusive, is_postgres, utcnow, write_transaction
from .models import (
    ALL_MODELS,
    AIModel,
    AvatarPreset,
    CreditLedger,
    FileDeletion,
    JSONField,
    Lease,
    ModelDownload,
    PersonaExample,
    Pose,
    RemoteConsent,
    User,
    Worker,
)

WELCOME_GRANT = 1000
LOCAL_USER_NAME = "Local user"


class Migration(Model):
    name = CharField(primary_key=True)
    applied_at = DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "migrations"


def m001_initial_schema() -> None:
    """Create every table of the first schema."""
    database.create_tables(ALL_MODELS)


def m002_local_user() -> None:
    """One local user, granted 1,000 credits on first start."""
    if User.select().exists():
        return
    user = User.create(name=LOCAL_USER_NAME, credit_balance=WELCOME_GRANT)
    CreditLedger.create(
        user=user,
        kind="grant",
        amount=WELCOME_GRANT,
        balance_after=WELCOME_GRANT,
        description="Welcome grant",
    )


def m003_seed_catalog() -> None:
    """Seed the AI model catalog; rows an admin already has are never overwritten."""
    for row in catalog.ai_models():
        AIModel.insert(app_id=catalog.APP_ID, **row).on_conflict_ignore().execute()


def m004_seed_presets_and_personas() -> None:
    """Seed presets and persona examples, keeping any existing rows."""
    for order, (slug, name, category, prompt, style) in enumerate(catalog.PRESETS):
        AvatarPreset.insert(
            slug=slug,
            name=name,
            category=category,
            prompt=prompt,
            style=style,
            sort_order=order,
        ).on_conflict_ignore().execute()
    for order, (slug, name, persona, age, personality, background, prompt) in enumerate(
        catalog.PERSONA_EXAMPLES
    ):
        PersonaExample.insert(
            slug=slug,
            name=name,
            persona_name=persona,
            age=age,
            personality=personality,
            background=background,
            prompt=prompt,
            sort_order=order,
        ).on_conflict_ignore().execute()


def m005_diffusers_capabilities() -> None:
    """Local diffusion: add SD Turbo and SDXL Turbo; describe every pipeline in capabilities.

    Capabilities are ours to describe; the enabled flag, cost and deadline stay the admin's.
    """
    for row in catalog.ai_models():
        AIModel.insert(app_id=catalog.APP_ID, **row).on_conflict_ignore().execute()
        if row["provider"] == "diffusers":
            AIModel.update(capabilities=row["capabilities"]).where(
                AIModel.key == row["key"]
            ).execute()


def m006_model_downloads() -> None:
    """Remember model downloads, so progress survives a page reload and a restart resumes."""
    database.create_tables([ModelDownload])


def m007_file_deletions() -> None:
    """Record file deletions, so files are removed only after their rows commit as deleted."""
    database.create_tables([FileDeletion])


def m008_generation_run_seconds() -> None:
    """Deadlines count running time (clock jumps cannot fail or stall a job): a column for it."""

    if "run_seconds" in {column.name for column in database.get_columns("avatar_generation")}:
        return  # a database whose m001 already made today's tables
    # in one statement: peewee's add_column of a NOT NULL column rebuilds the table on SQLite,
    # and dropping the old one is refused while avatars and ledger entries point at it
    database.execute_sql(
        "ALTER TABLE avatar_generation ADD COLUMN run_seconds REAL NOT NULL DEFAULT 0.0"
    )


def m009_photo_references() -> None:
    """Photos as references: a face square per avatar, a reference per generation, and the
    catalog's new face models and reference capabilities."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply

    migrator = SchemaMigrator.from_database(database.obj)
    wanted: dict[str, list[tuple[str, Any]]] = {
        "avatar": [("face_box", JSONField(null=True))],
        "avatar_generation": [
            ("reference_file", CharField(null=True)),
            ("reference_thumbnail", CharField(null=True)),
            ("reference", JSONField(null=True)),
        ],
    }
    for table, columns in wanted.items():
        present = {column.name for column in database.get_columns(table)}
        apply(
            *(
                migrator.add_column(table, name, field)
                for name, field in columns
                if name not in present  # a database whose m001 already made today's tables
            )
        )
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS avatar_generation_reference_file "
        "ON avatar_generation (reference_file)"
    )
    refresh_catalog_capabilities()


def m010_generation_plan() -> None:
    """A generation records the variations it makes (key, seed, pose), so the lifecycle runs
    any batch an app describes; older rows keep "v{n}" with seed + n."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply

    if "plan" in {column.name for column in database.get_columns("avatar_generation")}:
        return  # a database whose m001 already made today's tables
    migrator = SchemaMigrator.from_database(database.obj)
    apply(migrator.add_column("avatar_generation", "plan", JSONField(null=True)))


def m011_pose_library() -> None:
    """The Pose Generator: its pose library (seeded; an admin's changes and imported poses
    kept), which app made a generation, and the pose of each avatar made in one."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as apply

    database.create_tables([Pose])
    migrator = SchemaMigrator.from_database(database.obj)
    if "app_id" not in {column.name for column in database.get_columns("avatar_generation")}:
        # in one statement: peewee's add_column of a NOT NULL column rebuilds the table on
        # SQLite, which the avatars' foreign keys refuse
        database.execute_sql(
            "ALTER TABLE avatar_generation ADD COLUMN app_id VARCHAR(255) NOT NULL "
            f"DEFAULT '{catalog.APP_ID}'"
        )
    if "pose_id" not in {column.name for column in database.get_columns("avatar")}:
        apply(migrator.add_column("avatar", "pose_id", CharField(null=True)))
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS avatar_generation_app_id ON avatar_generation (app_id)"
    )
    seed_poses()


def m012_pose_models() -> None:
    """The catalog's OpenPose ControlNet models (and today's capabilities of built-in ones)."""
    refresh_catalog_capabilities()


def m013_studio() -> None:
    """The studio: favourites, a trash (deleted rows keep their files until it is emptied), and
    an index for the gallery's pages. Rows deleted before this had their files removed then:
    they count as emptied from the trash."""
    present = {
        table: {column.name for column in database.get_columns(table)}
        for table in ("avatar", "avatar_project")
    }
    if "favorite" not in present["avatar"]:
        # in one statement: a NOT NULL add_column rebuilds the table, which its foreign keys refuse
        database.execute_sql("ALTER TABLE avatar ADD COLUMN favorite INTEGER NOT NULL DEFAULT 0")
    for table in ("avatar", "avatar_project"):
        if "purged_at" not in present[table]:
            database.execute_sql(f"ALTER TABLE {table} ADD COLUMN purged_at DATETIME")
        database.execute_sql(
            f"UPDATE {table} SET purged_at = deleted_at "
            "WHERE deleted_at IS NOT NULL AND purged_at IS NULL"
        )
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS avatar_project_id_deleted_at_created_at_id "
        "ON avatar (project_id, deleted_at, created_at, id)"
    )


# columns whose first type was too small on PostgreSQL (a 34 GB download past 32 bits, a 4-byte
# `real`) or driver-bound (sqlite_ext's JSON); SQLite's INTEGER and REAL already hold 8 bytes
# and its JSON columns hold text, so there they stay as they are
PORTABLE_TYPES = [
    ("model_download", "bytes_done", "BIGINT"),
    ("model_download", "bytes_total", "BIGINT"),
    ("model_download", "bytes_per_second", "DOUBLE PRECISION"),
    ("avatar", "file_size", "BIGINT"),
    ("avatar_generation", "progress", "DOUBLE PRECISION"),
    ("ai_model", "deadline_seconds", "DOUBLE PRECISION"),
]


def m014_several_machines() -> None:
    """Several processes and machines on one database: the worker table (who runs what, and who
    is gone), leases for the roles only one process may hold, and portable column types."""
    database.create_tables([Worker, Lease])
    if not is_postgres():
        return
    for table, column, kind in PORTABLE_TYPES:
        database.execute_sql(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind}")
    json_columns = [
        (model._meta.table_name, field.column_name)
        for model in (*ALL_MODELS, Pose)
        for field in model._meta.sorted_fields
        if isinstance(field, JSONField)
    ]
    for table, column in json_columns:
        row = database.execute_sql(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = %s",
            (table, column),
        ).fetchone()
        if row is not None and row[0] != "text":
            database.execute_sql(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT USING {column}::text"
            )


def m015_remote_models() -> None:
    """Hugging Face Inference Providers: the remote models, and each one's consent to send."""
    database.create_tables([RemoteConsent])
    refresh_catalog_capabilities()


def seed_poses() -> None:
    """Insert library poses that are missing; existing rows (an admin's) stay as they are."""
    for order, pose in enumerate(pose_library.poses()):
        Pose.insert(
            id=pose.id,
            name=pose.name,
            category=pose.category,
            tags=list(pose.tags),
            keypoints=[list(point) for point in pose.keypoints],
            source="library",
            sort_order=order,
        ).on_conflict_ignore().execute()


def refresh_catalog_capabilities() -> None:
    """Insert built-in models that are missing and describe the built-in ones as today's code
    does; the enabled flag, cost and deadline stay the admin's."""
    for row in catalog.ai_models():
        AIModel.insert(app_id=catalog.APP_ID, **row).on_conflict_ignore().execute()
        AIModel.update(capabilities=row["capabilities"]).where(AIModel.key == row["key"]).execute()


MIGRATIONS: list[Callable[[], None]] = [
    m001_initial_schema,
    m002_local_user,
    m003_seed_catalog,
    m004_seed_presets_and_personas,
    m005_diffusers_capabilities,
    m006_model_downloads,
    m007_file_deletions,
    m008_generation_run_seconds,
    m009_photo_references,
    m010_generation_plan,
    m011_pose_library,
    m012_pose_models,
    m013_studio,
    m014_several_machines,
    m015_remote_models,
]


def migrate() -> list[str]:
    """Apply the migrations this database has not seen yet; return their names.

    Processes that start together (a server and its workers) migrate one after the other: the
    first applies them, the others find them applied."""
    applied = []
    with exclusive("migrate"):
        database.create_tables([Migration])
        for migration in MIGRATIONS:
            with write_transaction():
                if Migration.get_or_none(Migration.name == migration.__name__):
                    continue
                migration()
                Migration.create(name=migration.__name__)
            applied.append(migration.__name__)
    return applied


def reseed_catalog() -> None:
    """Insert catalog rows that are missing (an emptied catalog), never touching existing ones."""
    with write_transaction():
        m003_seed_catalog()
