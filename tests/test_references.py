"""A photo as the start of a generation: chosen, kept, carried over, and refused when it is bad."""

from __future__ import annotations

import html
import io
import json
import re
import threading

import pytest
from conftest import API, doctor, wait_for
from PIL import Image, ImageDraw

from lumiku_local import engines
from lumiku_local.doctor import ledger_problems
from lumiku_local.models import Avatar, AvatarGeneration, CreditLedger
from lumiku_local.png_parameters import read_parameters


def photo(skin: str = "#e0b08a", hair: str = "#3a2312", background: str = "#4a7bd0") -> bytes:
    """A portrait-like test photo: a face-coloured oval under a band of hair."""
    image = Image.new("RGB", (240, 300), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 40, 180, 120), fill=hair)
    draw.ellipse((70, 70, 170, 200), fill=skin)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(client, project: str, content: bytes | None = None) -> dict:
    response = client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": ("me.png", content or photo(), "image/png")},
    )
    assert response.status_code == 201, response.text
    return response.json()["avatar"]


def instant(client) -> dict:
    models = client.get(f"{API}/models").json()["models"]
    return next(model for model in models if model["provider"] == "dicebear")


def look_alike_style(client) -> str:
    reference = instant(client)["reference"]
    assert reference and reference["mode"] == "lookAlike", reference
    return reference["styles"][0]


def image_bytes(client, avatar: dict) -> bytes:
    response = client.get(avatar["imageUrl"])
    assert response.status_code == 200
    return response.content


class HeldEngine:
    """The Instant engine, held at the start of each job until the test lets it go."""

    name = "dicebear"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.started = threading.Event()
        self.release = threading.Event()
        self.references: list = []

    def is_installed(self, capabilities):
        return True

    def generate(self, job, on_image, on_progress, cancelled):
        self.references.append(job.reference)
        self.started.set()
        assert self.release.wait(30), "the test never released the engine"
        self.inner.generate(job, on_image, on_progress, cancelled)


@pytest.fixture
def held(monkeypatch):
    inner = engines.engine_for("dicebear")
    engine = HeldEngine(inner)
    monkeypatch.setitem(engines._ENGINES, "dicebear", engine)
    yield engine
    engine.release.set()


# ---------------------------------------------------------------- the happy path


def test_a_reference_generation_keeps_its_photo_and_shows_it(client, settings):
    project = client.project()
    me = upload(client, project)
    assert me["faceBox"] and {"x", "y", "size", "source"} <= set(me["faceBox"])
    style = look_alike_style(client)
    body = client.generate(project, count=4, style=style, referenceAvatarId=me["id"], likeness=0.7)
    generation = body["generation"]
    reference = generation["reference"]
    assert reference["avatarId"] == me["id"] and reference["likeness"] == 0.7
    assert reference["mode"] == "lookAlike" and reference["faceBox"] == me["faceBox"]
    photo_bytes = image_bytes(client, me)
    import hashlib

    assert reference["sha256"] == hashlib.sha256(photo_bytes).hexdigest()
    served = client.get(reference["imageUrl"])
    assert served.status_code == 200 and served.content == photo_bytes
    thumbnail = client.get(reference["thumbnailUrl"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/webp"
    done = client.wait_generation(generation["id"])
    assert done["status"] == "completed" and done["reference"]["sha256"] == reference["sha256"]
    pictures = [image_bytes(client, avatar) for avatar in done["avatars"]]
    assert len(set(pictures)) == 4
    for picture in pictures:
        parameters = read_parameters(picture)
        assert parameters["lumiku_reference_sha256"] == reference["sha256"]
        assert parameters["lumiku_likeness"] == "0.70"
    assert client.balance() == 1000 - 4


def test_likeness_defaults_to_the_models(client):
    project = client.project()
    me = upload(client, project)
    model = instant(client)
    generation = client.generate(
        project, style=model["reference"]["styles"][0], referenceAvatarId=me["id"]
    )["generation"]
    assert generation["reference"]["likeness"] == model["reference"]["defaultLikeness"]


def test_retry_and_more_like_this_keep_the_reference(client):
    project = client.project()
    me = upload(client, project)
    style = look_alike_style(client)
    first = client.generate(project, count=2, style=style, referenceAvatarId=me["id"], likeness=0.4)
    first = client.wait_generation(first["generation"]["id"])
    response = client.post(f"{API}/generations/{first['id']}/retry")
    assert response.status_code == 202, response.text
    retried = client.wait_generation(response.json()["generation"]["id"])
    assert retried["status"] == "completed", retried
    assert retried["reference"]["sha256"] == first["reference"]["sha256"]
    assert retried["reference"]["likeness"] == 0.4 and retried["reference"]["available"]
    response = client.post(f"/ui/avatars/{first['avatars'][0]['id']}/more")
    assert response.status_code == 200, response.text
    newest = AvatarGeneration.select().order_by(AvatarGeneration.created_at.desc()).first()
    assert newest.reference["sha256"] == first["reference"]["sha256"]
    assert newest.id not in (first["id"], retried["id"])


def test_a_deleted_photo_goes_once_its_generations_are_done(client, settings):
    """A deleted photo stays in the trash (restorable); emptying the trash removes it from the
    computer: its finished generations let go of their copy, and retrying one of them is a 404
    that charges nothing."""
    project = client.project()
    me = upload(client, project)
    body = client.generate(
        project, count=2, style=look_alike_style(client), referenceAvatarId=me["id"]
    )
    done = client.wait_generation(body["generation"]["id"])
    kept = settings.files_dir / AvatarGeneration.get_by_id(done["id"]).reference_file
    assert kept.is_file()
    assert client.delete(f"{API}/avatars/{me['id']}").status_code == 204
    assert kept.is_file() and client.generation(done["id"])["reference"]["available"] is True
    assert client.delete(f"{API}/trash").status_code == 200
    assert not kept.exists() and not any(settings.files_dir.glob(f"??/{kept.stem}*"))
    again = client.generation(done["id"])
    assert again["reference"]["available"] is False
    assert again["reference"]["sha256"] == done["reference"]["sha256"]  # the record stays
    assert client.get(again["reference"]["imageUrl"]).status_code == 404
    before = (client.balance(), AvatarGeneration.select().count())
    response = client.post(f"{API}/generations/{done['id']}/retry")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "reference_deleted"
    response = client.post(f"/ui/avatars/{done['avatars'][0]['id']}/more")
    assert response.status_code == 404, response.text
    assert (client.balance(), AvatarGeneration.select().count()) == before
    assert ledger_problems() == []


def test_the_same_seed_and_photo_give_the_same_pixels(client):
    project = client.project()
    me = upload(client, project)
    style = look_alike_style(client)
    runs = []
    for _ in range(2):
        body = client.generate(project, count=2, seed=77, style=style, referenceAvatarId=me["id"])
        runs.append(client.wait_generation(body["generation"]["id"]))
    assert [image_bytes(client, a) for a in runs[0]["avatars"]] == [
        image_bytes(client, a) for a in runs[1]["avatars"]
    ]
    other = upload(client, project, photo(skin="#5a3825", hair="#c83c1e", background="#f2e6a0"))
    body = client.generate(project, count=2, seed=77, style=style, referenceAvatarId=other["id"])
    third = client.wait_generation(body["generation"]["id"])
    assert image_bytes(client, third["avatars"][0]) != image_bytes(client, runs[0]["avatars"][0])


# ---------------------------------------------------------------- the face square


def test_the_face_square_can_be_moved_and_generations_copy_it(client):
    project = client.project()
    me = upload(client, project)
    response = client.patch(
        f"{API}/avatars/{me['id']}", json={"faceBox": {"x": 10, "y": 20, "size": 100}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["avatar"]["faceBox"] == {"x": 10, "y": 20, "size": 100, "source": "user"}
    generation = client.generate(
        project, style=look_alike_style(client), referenceAvatarId=me["id"]
    )["generation"]
    assert generation["reference"]["faceBox"]["x"] == 10
    for bad in (
        {"x": 200, "y": 0, "size": 100},  # past the right edge of the 240 px photo
        {"x": 0, "y": 0, "size": 4},  # too small to hold a face
        {"x": -1, "y": 0, "size": 50},
    ):
        response = client.patch(f"{API}/avatars/{me['id']}", json={"faceBox": bad})
        assert response.status_code == 422, (bad, response.text)
    response = client.patch(f"{API}/avatars/{me['id']}", json={"faceBox": {"x": 1}})
    assert response.status_code == 400 and "faceBox.y" in response.json()["error"]["message"]
    assert client.get(f"{API}/avatars/{me['id']}").json()["avatar"]["faceBox"]["x"] == 10
    assert client.patch(f"{API}/avatars/nope", json={"name": "x"}).status_code == 404


# ---------------------------------------------------------------- bad references change nothing


def test_bad_references_are_4xx_and_charge_nothing(client):
    project = client.project()
    other_project = client.project("Someone else's")
    me = upload(client, project)
    theirs = upload(client, other_project)
    gone = upload(client, project)
    assert client.delete(f"{API}/avatars/{gone['id']}").status_code == 204
    style = look_alike_style(client)
    cannot = next(
        s
        for s in instant(client)["capabilities"]["styles"]
        if s not in instant(client)["reference"]["styles"]
    )
    before = (client.balance(), AvatarGeneration.select().count(), CreditLedger.select().count())
    cases = [
        ({"referenceAvatarId": "nope", "style": style}, 404, "not_found"),
        ({"referenceAvatarId": gone["id"], "style": style}, 404, "not_found"),
        ({"referenceAvatarId": theirs["id"], "style": style}, 422, "reference_other_project"),
        ({"referenceAvatarId": me["id"], "style": style, "likeness": 1.5}, 422, "invalid_input"),
        ({"referenceAvatarId": me["id"], "style": style, "likeness": -0.1}, 422, "invalid_input"),
        ({"style": style, "likeness": 0.5}, 422, "invalid_input"),
        ({"referenceAvatarId": me["id"], "style": cannot}, 422, "reference_unsupported"),
    ]
    for body, status, code in cases:
        response = client.post(
            f"{API}/projects/{project}/avatars/generate", json={"prompt": "me", **body}
        )
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
    message = client.post(
        f"{API}/projects/{project}/avatars/generate",
        json={"prompt": "me", "referenceAvatarId": me["id"], "style": cannot},
    ).json()["error"]["message"]
    assert style in message  # says which styles can
    after = (client.balance(), AvatarGeneration.select().count(), CreditLedger.select().count())
    assert after == before


# ---------------------------------------------------------------- nothing lost


def test_deleting_the_photo_while_its_generation_waits_changes_nothing(client, settings, held):
    project = client.project()
    me = upload(client, project)
    photo_bytes = image_bytes(client, me)
    style = look_alike_style(client)
    generation = client.generate(project, count=4, style=style, referenceAvatarId=me["id"])
    generation_id = generation["generation"]["id"]
    assert held.started.wait(20)
    assert client.delete(f"{API}/avatars/{me['id']}").status_code == 204
    kept = settings.files_dir / AvatarGeneration.get_by_id(generation_id).reference_file
    assert kept.read_bytes() == photo_bytes  # the waiting generation still needs it
    assert client.get(client.generation(generation_id)["reference"]["imageUrl"]).content == (
        photo_bytes
    )
    held.release.set()
    done = client.wait_generation(generation_id)
    assert done["status"] == "completed" and done["countCompleted"] == 4, done
    assert held.references[0].png == photo_bytes
    assert done["reference"]["available"] is True and kept.is_file()  # the photo is in the trash
    assert client.delete(f"{API}/trash").status_code == 200
    assert not kept.exists()  # emptied and finished: nothing needs it any more
    assert client.generation(generation_id)["reference"]["available"] is False
    assert ledger_problems() == []


def test_deleting_the_project_lets_a_waiting_generations_reference_go(client, settings, held):
    project = client.project()
    me = upload(client, project)
    body = client.generate(project, style=look_alike_style(client), referenceAvatarId=me["id"])
    assert held.started.wait(20)
    kept = settings.files_dir / AvatarGeneration.get_by_id(body["generation"]["id"]).reference_file
    assert client.delete(f"{API}/projects/{project}").status_code == 204
    held.release.set()
    assert client.generation(body["generation"]["id"])["status"] == "canceled"
    assert kept.is_file()  # the project and its photo are in the trash
    assert client.delete(f"{API}/trash").status_code == 200
    assert not kept.exists()
    assert ledger_problems() == []


def test_sigkill_mid_reference_batch_then_restart_uses_the_same_photo(servers, tmp_path):
    home = tmp_path / "home"
    server = servers("engine.generate=delay(0.4)")
    status, project = server.request("POST", f"{API}/projects", {"name": "crash"})
    assert status == 201
    me = server.upload(project["id"], photo())
    models = server.get(f"{API}/models")["models"]
    style = next(m for m in models if m["provider"] == "dicebear")["reference"]["styles"][0]
    status, body = server.request(
        "POST",
        f"{API}/projects/{project['id']}/avatars/generate",
        {"prompt": "me", "count": 4, "seed": 5, "style": style, "referenceAvatarId": me["id"]},
    )
    assert status == 202, body
    generation_id = body["generation"]["id"]
    wait_for(
        lambda: (
            server.get(f"{API}/generations/{generation_id}")["generation"]["countCompleted"] >= 1
        ),
        timeout=20,
    )
    server.kill()
    restarted = servers()
    assert restarted.request("DELETE", f"{API}/avatars/{me['id']}")[0] == 204
    done = restarted.wait_generation(generation_id)
    assert done["status"] == "completed", done
    assert sorted(a["variationKey"] for a in done["avatars"]) == ["v0", "v1", "v2", "v3"]
    sha = done["reference"]["sha256"]
    pictures = {a["variationKey"]: restarted.read(a["imageUrl"]) for a in done["avatars"]}
    assert len(set(pictures.values())) == 4
    assert {read_parameters(p)["lumiku_reference_sha256"] for p in pictures.values()} == {sha}
    # the same seed and photo again (uploaded anew: the same content), uninterrupted: the same
    # pixels for every variation as the resumed batch made
    again = restarted.upload(project["id"], photo())
    status, body = restarted.request(
        "POST",
        f"{API}/projects/{project['id']}/avatars/generate",
        {"prompt": "me", "count": 4, "seed": 5, "style": style, "referenceAvatarId": again["id"]},
    )
    assert status == 202, body
    fresh = restarted.wait_generation(body["generation"]["id"])
    assert fresh["reference"]["sha256"] == sha
    assert {a["variationKey"]: restarted.read(a["imageUrl"]) for a in fresh["avatars"]} == pictures
    history = restarted.get("/api/credits/history")["entries"]
    assert [(e["kind"], e["amount"]) for e in history] == [
        ("debit", -4),
        ("debit", -4),
        ("grant", 1000),
    ]
    result = doctor(home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_a_restart_keeps_a_waiting_generations_photo_out_of_the_quarantine(app_client, tmp_path):
    """The start-up sweep moves files no row names into the quarantine: an unfinished
    generation names its reference, even when its photo's avatar is gone."""
    from conftest import make_settings

    from lumiku_local import failpoints

    settings = make_settings(tmp_path / "home", retry_backoff_seconds=3600)
    client = app_client(settings)
    project = client.project()
    me = upload(client, project)
    photo_bytes = image_bytes(client, me)
    failpoints.configure("engine.generate=error*1")  # one failed attempt: a retry in an hour
    body = client.generate(project, style=look_alike_style(client), referenceAvatarId=me["id"])
    generation_id = body["generation"]["id"]
    wait_for(lambda: client.generation(generation_id)["attempts"] == 1)
    assert client.generation(generation_id)["status"] == "pending"
    assert client.delete(f"{API}/avatars/{me['id']}").status_code == 204
    client.__exit__(None, None, None)
    restarted = app_client(settings)
    reference = restarted.generation(generation_id)["reference"]
    served = restarted.get(reference["imageUrl"])
    assert served.status_code == 200 and served.content == photo_bytes
    assert not list((settings.files_dir / "quarantine").rglob("*.png"))
    assert restarted.post(f"{API}/generations/{generation_id}/cancel").status_code == 200
    kept = settings.files_dir / AvatarGeneration.get_by_id(generation_id).reference_file
    assert kept.is_file()  # canceled, but the photo is in the trash
    assert restarted.delete(f"{API}/trash").status_code == 200
    assert not kept.exists()  # emptied: nothing needs the deleted photo any more


def drawn_portrait() -> bytes:
    from face_photos import drawn_face

    out = io.BytesIO()
    drawn_face().image.save(out, "PNG")
    return out.getvalue()


def test_the_form_shows_the_square_a_generation_will_follow(client):
    """An older upload (no square stored) gets its face found before the form shows it, so
    the square on screen is the one the generation copies."""
    project = client.project()
    me = upload(client, project, drawn_portrait())
    detected = me["faceBox"]
    assert detected["source"] == "detected"
    Avatar.update(face_box=None).where(Avatar.id == me["id"]).execute()
    page = client.get(f"/projects/{project}")
    assert page.status_code == 200
    assert Avatar.get_by_id(me["id"]).face_box == detected
    shown = re.search(r"data-face-box='([^']*)'", page.text)
    assert shown and json.loads(html.unescape(shown.group(1))) == detected
    generation = client.generate(
        project, style=look_alike_style(client), referenceAvatarId=me["id"]
    )["generation"]
    assert generation["reference"]["faceBox"] == detected


def test_a_square_made_without_a_detector_is_found_again_once_there_is_one(client):
    project = client.project()
    me = upload(client, project, drawn_portrait())
    centre = {"x": 1, "y": 2, "size": 300, "source": "no_detector"}
    Avatar.update(face_box=centre).where(Avatar.id == me["id"]).execute()
    generation = client.generate(
        project, style=look_alike_style(client), referenceAvatarId=me["id"]
    )["generation"]
    assert generation["reference"]["faceBox"] == me["faceBox"]
    assert Avatar.get_by_id(me["id"]).face_box == me["faceBox"]
    user_square = {"x": 1, "y": 2, "size": 300, "source": "user"}
    Avatar.update(face_box=user_square).where(Avatar.id == me["id"]).execute()
    again = client.generate(project, style=look_alike_style(client), referenceAvatarId=me["id"])[
        "generation"
    ]
    assert again["reference"]["faceBox"] == user_square  # the user's own square stays
