"""The Pose Generator on the shared lifecycle: the library, imports, gallery and text batches,
exact charges and refunds, retries, and bad requests that change nothing."""

from __future__ import annotations

import json
import threading

import pytest
from conftest import API, doctor, wait_for
from PIL import Image

from lumiku_local import engines, pose_library
from lumiku_local.doctor import ledger_problems
from lumiku_local.models import AvatarGeneration, CreditLedger, Pose

POSES = "/api/apps/pose-generator"


def source_avatar(client) -> dict:
    project = client.project()
    done = client.wait_generation(client.generate(project, count=1)["generation"]["id"])
    return done["avatars"][0]


def pose_generate(client, expect: int = 202, **body) -> dict:
    response = client.post(f"{POSES}/generate", json=body)
    assert response.status_code == expect, response.text
    return response.json()


def pose_generation(client, generation_id: str) -> dict:
    response = client.get(f"{POSES}/generations/{generation_id}")
    assert response.status_code == 200, response.text
    return response.json()["generation"]


def wait_pose_generation(client, generation_id: str) -> dict:
    terminal = ("completed", "failed", "canceled")
    return wait_for(
        lambda: (g := pose_generation(client, generation_id))["status"] in terminal and g,
        timeout=30,
    )


def library_ids(client, count: int) -> list[str]:
    return [pose["id"] for pose in client.get(f"{POSES}/poses").json()["poses"][:count]]


# ---------------------------------------------------------------- the library


def test_the_library_is_seeded_and_filtered(client):
    poses = client.get(f"{POSES}/poses").json()["poses"]
    assert len(poses) == len(pose_library.poses()) >= 40
    assert len({pose["category"] for pose in poses}) >= 6
    assert all(len(pose["keypoints"]) == 18 for pose in poses)
    sitting = client.get(f"{POSES}/poses", params={"category": "sitting"}).json()["poses"]
    assert sitting and {pose["category"] for pose in sitting} == {"sitting"}
    waving = client.get(f"{POSES}/poses", params={"q": "wave"}).json()["poses"]
    assert waving and all("wave" in json.dumps(pose).lower() for pose in waving)
    assert client.get(f"{POSES}/poses", params={"category": "flying"}).status_code == 422


def test_seeding_keeps_an_admins_change_and_is_idempotent(client):
    from lumiku_local import migrations

    Pose.update(name="My wave").where(Pose.id == poses_with_tag("wave")[0]).execute()
    count = Pose.select().count()
    migrations.seed_poses()
    assert Pose.select().count() == count
    assert Pose.get_by_id(poses_with_tag("wave")[0]).name == "My wave"


def poses_with_tag(tag: str) -> list[str]:
    return [pose.id for pose in pose_library.poses() if tag in pose.tags]


def test_a_skeleton_is_served_at_the_size_asked(client):
    response = client.get(f"{POSES}/poses/standing-neutral/skeleton.png", params={"size": 128})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    import io

    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (128, 128)
    assert client.get(f"{POSES}/poses/nope/skeleton.png").status_code == 404
    bad = client.get(f"{POSES}/poses/standing-neutral/skeleton.png", params={"size": 5})
    assert bad.status_code == 422


def openpose_file(pose_id: str = "standing-neutral", canvas: int = 512) -> bytes:
    pose = pose_library.find(pose_id)
    assert pose is not None
    numbers: list[float] = []
    for x, y, visible in pose.keypoints:
        numbers += [x * canvas, y * canvas, 0.9] if visible else [0, 0, 0]
    document = {
        "canvas_width": canvas,
        "canvas_height": canvas,
        "people": [{"pose_keypoints_2d": numbers}],
    }
    return json.dumps(document).encode()


def test_an_imported_pose_joins_the_library_and_bad_files_write_nothing(client):
    response = client.post(
        f"{POSES}/poses/import",
        files={"file": ("my pose.json", openpose_file(), "application/json")},
        data={"category": "standing"},
    )
    assert response.status_code == 201, response.text
    pose = response.json()["pose"]
    assert pose["source"] == "import" and pose["name"] == "my pose"
    assert pose["id"] in library_ids(client, 1000)
    count = Pose.select().count()
    for content, status in (
        (b"{not json", 422),
        (json.dumps({"people": []}).encode(), 422),
        (json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}).encode(), 422),
        (b" " * (pose_library.MAX_IMPORT_BYTES + 10), 413),
    ):
        response = client.post(
            f"{POSES}/poses/import", files={"file": ("bad.json", content, "application/json")}
        )
        assert response.status_code == status, response.text
    assert Pose.select().count() == count


# ---------------------------------------------------------------- batches


def test_a_gallery_batch_makes_each_pose_times_each_variation(client):
    avatar = source_avatar(client)
    ids = library_ids(client, 3)
    body = pose_generate(client, avatarId=avatar["id"], poseIds=ids, variations=2, seed=10)
    assert body["creditUsed"] == 6 and body["creditBalance"] == 1000 - 1 - 6
    done = wait_pose_generation(client, body["generation"]["id"])
    assert done["status"] == "completed" and done["appId"] == "pose-generator", done
    keys = sorted(avatar["variationKey"] for avatar in done["avatars"])
    assert keys == sorted(f"{pose}-v{n}" for pose in ids for n in range(2))
    assert {a["poseId"] for a in done["avatars"]} == set(ids)
    assert all(a["projectId"] == avatar["projectId"] for a in done["avatars"])
    assert done["reference"]["avatarId"] == avatar["id"] and done["reference"]["mode"] == "pose"
    pictures = {client.get(a["imageUrl"]).content for a in done["avatars"]}
    assert len(pictures) == 6
    assert client.balance() == 1000 - 7 and ledger_problems() == []


def test_a_pose_generation_exports_as_a_zip_with_a_manifest(client):
    import io
    import zipfile

    avatar = source_avatar(client)
    ids = library_ids(client, 2)
    body = pose_generate(client, avatarId=avatar["id"], poseIds=ids, variations=2)
    done = wait_pose_generation(client, body["generation"]["id"])
    response = client.get(f"{POSES}/generations/{done['id']}/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        entries = manifest["files"]
        assert sorted(e["variationKey"] for e in entries) == sorted(
            a["variationKey"] for a in done["avatars"]
        )
        by_id = {a["id"]: a for a in done["avatars"]}
        for entry in entries:
            assert entry["poseId"] == by_id[entry["avatarId"]]["poseId"]
            assert (
                archive.read(entry["name"])
                == client.get(by_id[entry["avatarId"]]["imageUrl"]).content
            )
    assert client.get(f"{POSES}/generations/nope/export").status_code == 404


def test_chosen_avatars_export_as_a_zip_and_an_unknown_one_is_404(client):
    import io
    import zipfile

    avatar = source_avatar(client)
    body = pose_generate(client, avatarId=avatar["id"], poseIds=library_ids(client, 2))
    done = wait_pose_generation(client, body["generation"]["id"])
    chosen = [done["avatars"][0]["id"], avatar["id"]]
    response = client.post(f"{POSES}/exports", json={"avatarIds": chosen})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert [entry["avatarId"] for entry in manifest["files"]] == chosen
    response = client.post(f"{POSES}/exports", json={"avatarIds": [avatar["id"], "nope"]})
    assert response.status_code == 404 and "nope" in response.json()["error"]["message"]
    assert client.post(f"{POSES}/exports", json={"avatarIds": []}).status_code == 400


def test_a_text_batch_uses_the_pose_its_words_match_and_says_which(client):
    avatar = source_avatar(client)
    body = pose_generate(
        client, avatarId=avatar["id"], mode="text", posePrompt="waving hello", variations=3
    )
    options = body["generation"]["options"]
    assert options["matchedPoseId"] == pose_library.best_match("waving hello")[0].id
    assert options["matchedWords"] == ["waving", "hello"]
    assert "poseKeypoints" not in options
    done = wait_pose_generation(client, body["generation"]["id"])
    assert sorted(a["variationKey"] for a in done["avatars"]) == ["text-v0", "text-v1", "text-v2"]
    assert {a["poseId"] for a in done["avatars"]} == {options["matchedPoseId"]}


def test_retry_makes_the_same_poses_with_new_seeds(client):
    avatar = source_avatar(client)
    ids = library_ids(client, 2)
    first = pose_generate(client, avatarId=avatar["id"], poseIds=ids, variations=1)
    first = wait_pose_generation(client, first["generation"]["id"])
    response = client.post(f"{POSES}/generations/{first['id']}/retry")
    assert response.status_code == 202, response.text
    again = wait_pose_generation(client, response.json()["generation"]["id"])
    assert again["retriedFromId"] == first["id"]
    assert sorted(a["variationKey"] for a in again["avatars"]) == sorted(
        a["variationKey"] for a in first["avatars"]
    )
    assert again["options"]["seed"] != first["options"]["seed"] or again["id"] != first["id"]


def test_bad_pose_requests_are_4xx_and_charge_nothing(client):
    avatar = source_avatar(client)
    gone = source_avatar(client)
    assert client.delete(f"{API}/avatars/{gone['id']}").status_code == 204
    ids = library_ids(client, 13)
    before = (client.balance(), AvatarGeneration.select().count(), CreditLedger.select().count())
    cases = [
        ({"avatarId": "nope", "poseIds": ids[:1]}, 404),
        ({"avatarId": gone["id"], "poseIds": ids[:1]}, 404),
        ({"avatarId": avatar["id"], "poseIds": ["no-such-pose"]}, 404),
        ({"avatarId": avatar["id"], "poseIds": []}, 422),
        ({"avatarId": avatar["id"], "poseIds": ids}, 422),  # 13 poses: more than 12
        ({"avatarId": avatar["id"], "poseIds": ids[:1], "variations": 5}, 422),
        ({"avatarId": avatar["id"], "poseIds": ids[:1], "variations": 0}, 422),
        ({"avatarId": avatar["id"], "mode": "text", "posePrompt": " "}, 422),
        ({"avatarId": avatar["id"], "mode": "text", "posePrompt": "x", "variations": 9}, 422),
        ({"avatarId": avatar["id"], "mode": "dance", "poseIds": ids[:1]}, 422),
        ({"avatarId": avatar["id"], "poseIds": ids[:1], "modelKey": "nope"}, 404),
        ({"avatarId": avatar["id"], "poseIds": ids[:1], "colour": "red"}, 400),
    ]
    for body, status in cases:
        response = client.post(f"{POSES}/generate", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["message"]
    after = (client.balance(), AvatarGeneration.select().count(), CreditLedger.select().count())
    assert after == before


def test_not_enough_credits_is_402_and_changes_nothing(client):
    from lumiku_local.models import User

    avatar = source_avatar(client)
    User.update(credit_balance=3).execute()
    before = AvatarGeneration.select().count()
    response = client.post(
        f"{POSES}/generate",
        json={"avatarId": avatar["id"], "poseIds": library_ids(client, 2), "variations": 2},
    )
    assert response.status_code == 402, response.text
    assert AvatarGeneration.select().count() == before and client.balance() == 3


class HeldEngine:
    """The Instant engine, made to wait after each image until the test lets the next one go."""

    name = "dicebear"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.images = threading.Semaphore(0)
        self.made = threading.Semaphore(0)

    def is_installed(self, capabilities):
        return True

    def generate(self, job, on_image, on_progress, cancelled):
        def held_image(variation, prepared):
            on_image(variation, prepared)
            self.made.release()
            assert self.images.acquire(timeout=30), "the test never let the next image go"

        self.inner.generate(job, held_image, on_progress, cancelled)


def test_cancel_mid_way_refunds_exactly_the_undelivered_variations(client, monkeypatch):
    engine = HeldEngine(engines.engine_for("dicebear"))
    monkeypatch.setitem(engines._ENGINES, "dicebear", engine)
    avatar = source_avatar_with(client, engine)
    body = pose_generate(
        client, avatarId=avatar["id"], poseIds=library_ids(client, 3), variations=2
    )
    generation_id = body["generation"]["id"]
    assert engine.made.acquire(timeout=30)  # the first of six delivered; the engine waits
    engine.images.release()
    assert engine.made.acquire(timeout=30)  # the second; it waits again
    response = client.post(f"{POSES}/generations/{generation_id}/cancel")
    assert response.status_code == 200, response.text
    engine.images.release()
    canceled = response.json()["generation"]
    assert canceled["status"] == "canceled" and canceled["countCompleted"] == 2
    assert canceled["creditRefunded"] == 4
    wait_for(lambda: pose_generation(client, generation_id)["countCompleted"] == 2)
    assert ledger_problems() == []


def source_avatar_with(client, engine: HeldEngine) -> dict:
    """A source avatar made while the held engine lets every image go."""
    project = client.project()
    generation = client.generate(project, count=1)["generation"]
    assert engine.made.acquire(timeout=30)
    engine.images.release()
    return client.wait_generation(generation["id"])["avatars"][0]


def test_doctor_finds_an_image_its_plan_never_asked_for(client):
    from lumiku_local.models import Avatar

    avatar = source_avatar(client)
    body = pose_generate(client, avatarId=avatar["id"], poseIds=library_ids(client, 1))
    done = wait_pose_generation(client, body["generation"]["id"])
    assert ledger_problems() == []
    Avatar.update(variation_key="v7").where(Avatar.id == done["avatars"][0]["id"]).execute()
    assert any("not in its plan" in problem for problem in ledger_problems())


def test_health_reports_the_pose_generator(client):
    workers = client.get("/api/health/workers").json()
    assert workers["pose-generator"]["status"] == "online"
    assert workers["pose-generator"]["queueLength"] == 0


# ---------------------------------------------------------------- crashes


@pytest.mark.parametrize("mode", ["gallery", "text"])
def test_sigkill_mid_pose_batch_then_restart_delivers_every_key_once(servers, tmp_path, mode):
    home = tmp_path / "home"
    server = servers("engine.generate=delay(0.2)")
    status, project = server.request("POST", f"{API}/projects", {"name": "poses"})
    assert status == 201
    status, body = server.request(
        "POST", f"{API}/projects/{project['id']}/avatars/generate", {"prompt": "me", "count": 1}
    )
    avatar = server.wait_generation(body["generation"]["id"])["avatars"][0]
    ids = [pose["id"] for pose in server.get(f"{POSES}/poses")["poses"][:3]]
    request = (
        {"avatarId": avatar["id"], "poseIds": ids, "variations": 4}
        if mode == "gallery"
        else {"avatarId": avatar["id"], "mode": "text", "posePrompt": "jumping", "variations": 8}
    )
    status, body = server.request("POST", f"{POSES}/generate", request)
    assert status == 202, body
    generation_id = body["generation"]["id"]
    wait_for(
        lambda: (
            server.get(f"{POSES}/generations/{generation_id}")["generation"]["countCompleted"] >= 2
        ),
        timeout=30,
    )
    server.kill()
    restarted = servers()
    done = restarted.wait_generation(generation_id, timeout=60)
    assert done["status"] == "completed", done
    keys = [a["variationKey"] for a in done["avatars"]]
    expected = (
        [f"{pose}-v{n}" for pose in ids for n in range(4)]
        if mode == "gallery"
        else [f"text-v{n}" for n in range(8)]
    )
    assert sorted(keys) == sorted(expected) and len(set(keys)) == len(keys)
    total = len(expected)
    assert restarted.get("/api/me")["creditBalance"] == 1000 - 1 - total
    result = doctor(home)
    assert result.returncode == 0, result.stdout + result.stderr
