"""The catalog is seeded by migrations, idempotently, and never overwrites an admin's change."""

from conftest import API

from lumiku_local import catalog, migrations
from lumiku_local.models import AIModel, AvatarPreset, PersonaExample


def test_catalog_seeded_on_an_empty_database(client):
    models = {m["key"]: m for m in client.get(f"{API}/models").json()["models"]}
    flux = {
        "avatar-creator:flux-dev-base": ("free", 8),
        "avatar-creator:flux-dev-realism": ("basic", 12),
        "avatar-creator:flux-dev-hd-realism": ("pro", 15),
        "avatar-creator:flux-schnell-fast": ("basic", 6),
    }
    for key, (tier, cost) in flux.items():
        assert (models[key]["tier"], models[key]["creditCost"]) == (tier, cost)
        assert models[key]["provider"] == "diffusers" and models[key]["installed"] is False
    instant = models["avatar-creator:instant"]
    assert (instant["tier"], instant["creditCost"], instant["installed"]) == ("free", 1, True)
    assert instant["capabilities"]["defaultStyle"] == "adventurer"
    assert instant["capabilities"]["styles"] == catalog.dicebear_styles()
    assert len(instant["capabilities"]["styles"]) > 20
    presets = client.get(f"{API}/presets").json()["presets"]
    assert len(presets) == 8 and {"professional-headshot", "anime-character"} <= {
        p["slug"] for p in presets
    }
    personas = client.get(f"{API}/persona-examples").json()["personaExamples"]
    assert len(personas) >= 3 and all(p["prompt"] for p in personas)


def test_seeding_is_idempotent(client):
    counts = (
        AIModel.select().count(),
        AvatarPreset.select().count(),
        PersonaExample.select().count(),
    )
    assert migrations.migrate() == []  # all applied already
    for migration in migrations.MIGRATIONS[2:]:
        migration()  # running a seed again changes nothing
    migrations.reseed_catalog()
    assert (
        AIModel.select().count(),
        AvatarPreset.select().count(),
        PersonaExample.select().count(),
    ) == counts


def test_admin_changes_survive_restart_and_reseeding(app_client, settings):
    client = app_client()
    response = client.patch(
        "/api/admin/models/avatar-creator:instant", json={"creditCost": 3, "deadlineSeconds": 12}
    )
    assert response.status_code == 200 and response.json()["model"]["creditCost"] == 3
    client.patch("/api/admin/models/avatar-creator:flux-dev-base", json={"enabled": False})
    client.__exit__(None, None, None)
    restarted = app_client()
    models = {m["key"]: m for m in restarted.get(f"{API}/models").json()["models"]}
    assert models["avatar-creator:instant"]["creditCost"] == 3
    assert models["avatar-creator:instant"]["deadlineSeconds"] == 12
    assert models["avatar-creator:flux-dev-base"]["enabled"] is False
    assert restarted.generate(restarted.project())["creditUsed"] == 3


def test_admin_model_patch_errors(client):
    assert client.patch("/api/admin/models/nope", json={"enabled": True}).status_code == 404
    bad = client.patch("/api/admin/models/avatar-creator:instant", json={"creditCost": -1})
    assert bad.status_code == 422


def test_empty_catalog_is_a_clear_503_never_a_500(client):
    AIModel.delete().execute()
    health = client.get("/health")
    assert health.status_code == 503
    assert any("catalog" in problem for problem in health.json()["problems"])
    models = client.get(f"{API}/models")
    assert models.status_code == 503 and "Restart Lumiku" in models.json()["error"]["message"]
    generate = client.post(
        f"{API}/projects/{client.project()}/avatars/generate", json={"prompt": "x"}
    )
    assert generate.status_code == 503
    assert generate.json()["error"]["code"] == "no_models"
    assert client.get(f"{API}/health/models").json()["status"] == "unhealthy"


def test_empty_catalog_is_restored_at_start(app_client):
    client = app_client()
    AIModel.delete().execute()
    client.__exit__(None, None, None)
    restarted = app_client()
    assert restarted.get("/health").status_code == 200
    assert len(restarted.get(f"{API}/models").json()["models"]) == len(catalog.ai_models())


def test_m009_to_m011_upgrade_a_database_made_before_references_plans_and_poses(client):
    """A database from before photo references gets its columns and new models; an admin's
    cost stays, and generations made before keep working."""
    from lumiku_local.db import database
    from lumiku_local.models import Avatar, AvatarGeneration

    project = client.project()
    before = client.wait_generation(client.generate(project, count=1)["generation"]["id"])
    AIModel.update(credit_cost=5).where(AIModel.key == catalog.INSTANT_MODEL_KEY).execute()
    database.execute_sql("DROP INDEX avatar_generation_reference_file")
    database.execute_sql("DROP INDEX avatar_generation_app_id")
    for table, column in (
        ("avatar", "face_box"),
        ("avatar_generation", "reference_file"),
        ("avatar_generation", "reference_thumbnail"),
        ("avatar_generation", "reference"),
        ("avatar_generation", "plan"),
        ("avatar_generation", "app_id"),
        ("avatar", "pose_id"),
    ):
        database.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    database.execute_sql("DROP TABLE pose")
    AIModel.delete().where(AIModel.provider == "diffusers").execute()
    newer = [
        "m009_photo_references",
        "m010_generation_plan",
        "m011_pose_library",
        "m012_pose_models",
    ]
    migrations.Migration.delete().where(migrations.Migration.name.in_(newer)).execute()
    assert migrations.migrate() == newer
    columns = {c.name for c in database.get_columns("avatar_generation")}
    assert {"reference_file", "reference_thumbnail", "reference", "plan"} <= columns
    assert {"face_box", "pose_id"} <= {c.name for c in database.get_columns("avatar")}
    assert "app_id" in columns
    indexes = {index.name for index in database.get_indexes("avatar_generation")}
    assert {"avatar_generation_app_id", "avatar_generation_reference_file"} <= indexes
    assert AvatarGeneration.get_by_id(before["id"]).app_id == "avatar-creator"
    from lumiku_local import pose_library
    from lumiku_local.models import Pose

    assert Pose.select().count() == len(pose_library.poses())
    assert AIModel.select().count() == len(catalog.ai_models())
    assert AIModel.get_by_id(catalog.INSTANT_MODEL_KEY).credit_cost == 5
    assert AvatarGeneration.get_by_id(before["id"]).reference is None
    assert Avatar.select().where(Avatar.generation == before["id"]).count() == 1
    assert client.generation(before["id"])["reference"] is None
    assert AvatarGeneration.get_by_id(before["id"]).plan is None  # an older row: derived


def test_m008_upgrades_a_database_with_generations_in_it(client):
    """Adding a NOT NULL column must not rebuild a table other rows point at."""
    from lumiku_local.db import database
    from lumiku_local.models import AvatarGeneration

    project = client.project()
    before = client.wait_generation(client.generate(project, count=2)["generation"]["id"])
    database.execute_sql("ALTER TABLE avatar_generation DROP COLUMN run_seconds")
    migrations.Migration.delete().where(
        migrations.Migration.name == "m008_generation_run_seconds"
    ).execute()
    assert migrations.migrate() == ["m008_generation_run_seconds"]
    assert AvatarGeneration.get_by_id(before["id"]).run_seconds == 0.0
    assert len(client.generation(before["id"])["avatars"]) == 2


def test_m012_adds_the_pose_models_to_a_database_that_had_m009(client):
    posing = [row["key"] for row in catalog.ai_models() if row["capabilities"].get("controlNet")]
    assert posing
    AIModel.delete().where(AIModel.key.in_(posing)).execute()
    migrations.Migration.delete().where(migrations.Migration.name == "m012_pose_models").execute()
    assert migrations.migrate() == ["m012_pose_models"]
    assert AIModel.select().where(AIModel.key.in_(posing)).count() == len(posing)
