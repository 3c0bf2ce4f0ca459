"""Files follow rows: no delete, crash, restored backup or lost database ever destroys an image."""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import API, Server, doctor, lumiku_env, make_settings, png_bytes, wait_for

from lumiku_local import failpoints, file_deletions
from lumiku_local.models import FileDeletion


def live_files(home: Path) -> list[tuple[str, str, str]]:
    """(avatar id, image, thumbnail) of every live avatar row, read straight from the file."""
    conn = sqlite3.connect(home / "lumiku.db", timeout=30)
    try:
        return conn.execute(
            "select id, image_file, thumbnail_file from avatar where deleted_at is null"
        ).fetchall()
    finally:
        conn.close()


def rows_without_files(home: Path) -> list[str]:
    files = home / "files"
    return [
        f"{avatar_id}: {name}"
        for avatar_id, image, thumbnail in live_files(home)
        for name in (image, thumbnail)
        if not (files / name).is_file()
    ]


def project_images(home: Path, project_id: str) -> set[str]:
    conn = sqlite3.connect(home / "lumiku.db", timeout=30)
    try:
        rows = conn.execute("select image_file from avatar where project_id = ?", (project_id,))
        return {name for (name,) in rows}
    finally:
        conn.close()


def image_names(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.glob("??/*.png")}


def generate_batch(server: Server, project_id: str, count: int, prompt: str) -> None:
    status, body = server.request(
        "POST", f"{API}/projects/{project_id}/avatars/generate", {"prompt": prompt, "count": count}
    )
    assert status == 202, body
    done = server.wait_generation(body["generation"]["id"], timeout=60)
    assert done["status"] == "completed", done


def request_until_killed(server: Server, method: str, path: str) -> None:
    """A request the test kills the server under: its dropped connection is the point."""
    with contextlib.suppress(OSError):
        server.request(method, path)


def new_project(server: Server, name: str, images: int) -> str:
    status, project = server.request("POST", f"{API}/projects", {"name": name})
    assert status == 201, project
    for batch in range(0, images, 8):
        generate_batch(server, project["id"], min(8, images - batch), f"{name} batch {batch}")
    return project["id"]


# ---------------------------------------------------------------- deletes and crashes


def test_kill_as_soon_as_a_deleted_projects_file_vanishes_leaves_no_row_without_file(
    servers, tmp_path
):
    """Files go only after the rows are committed as emptied from the trash: the moment the
    first one vanishes, the project is already gone for good (before, they vanished inside the
    open transaction)."""
    home = tmp_path / "home"
    # each unlink waits a little, so the kill lands while most files of the project remain
    server = servers("files.delete=delay(0.05)")
    project_id = new_project(server, "doomed", 16)
    keep_id = new_project(server, "kept", 2)
    files = home / "files"
    doomed = project_images(home, project_id) - project_images(home, keep_id)
    assert len(doomed) == 16
    status, _ = server.request("DELETE", f"{API}/projects/{project_id}")
    assert status == 204 and all((files / name).exists() for name in doomed)  # in the trash
    deleting = threading.Thread(
        target=request_until_killed,
        args=(server, "DELETE", f"{API}/trash"),
        daemon=True,
    )
    deleting.start()
    wait_for(
        lambda: any(not (files / name).exists() for name in doomed), timeout=30, interval=0.001
    )
    server.process.send_signal(signal.SIGKILL)
    server.kill()
    assert any((files / name).exists() for name in doomed), "the kill came too late to tell"

    server = servers()
    assert rows_without_files(home) == []
    status, _ = server.request("GET", f"{API}/projects/{project_id}")
    assert status == 404
    status, _ = server.request("POST", f"{API}/projects/{project_id}/restore")
    assert status == 409  # emptied from the trash for good
    assert not any((files / name).exists() for name in doomed)  # the start finished the job
    assert not (files / "quarantine").exists() or not image_names(files / "quarantine")
    assert len(server.get(f"{API}/projects/{keep_id}")["project"]["avatars"]) == 2
    server.kill()
    result = doctor(home)
    assert result.returncode == 0, result.stdout + result.stderr


def test_twenty_sigkills_during_project_and_avatar_deletes_lose_nothing(servers, tmp_path):
    home = tmp_path / "home"
    rng = random.Random(9)
    server = servers()
    projects = [new_project(server, f"project {n}", 8) for n in range(10)]
    pool = new_project(server, "avatars to delete", 40)
    spent = 1000 - server.get("/api/me")["creditBalance"]
    assert spent == 10 * 8 + 40
    for kill in range(20):
        if kill % 2 == 0:
            targets = [f"{API}/projects/{projects[kill // 2]}"]
        else:
            avatars = server.get(f"{API}/projects/{pool}")["project"]["avatars"]
            targets = [f"{API}/avatars/{a['id']}" for a in avatars[:4]]
        for path in targets:
            threading.Thread(
                target=request_until_killed, args=(server, "DELETE", path), daemon=True
            ).start()
        threading.Event().wait(rng.uniform(0.0, 0.15))  # a random moment of the delete
        server.kill()
        server = servers()
        problems = rows_without_files(home)
        assert problems == [], f"after kill {kill + 1}: {problems[:5]}"
        assert server.get("/api/me")["creditBalance"] == 1000 - spent
    remaining = server.get(f"{API}/projects/{pool}")["project"]["avatars"]
    left = server.get(f"{API}/projects")["projects"]
    assert len(remaining) < 40 and len(left) < 11  # the kills did land among real deletes
    server.kill()
    result = doctor(home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_a_file_that_cannot_be_removed_now_is_removed_at_the_next_start(app_client, settings):
    client = app_client()
    project_id = client.project()
    upload = client.post(
        f"{API}/projects/{project_id}/avatars/upload", files={"file": ("a.png", png_bytes())}
    )
    assert upload.status_code == 201, upload.text
    avatar = upload.json()["avatar"]
    assert client.delete(f"{API}/avatars/{avatar['id']}").status_code in (200, 204)
    failpoints.configure("files.delete=error")
    assert client.delete(f"{API}/trash").status_code == 200
    failpoints.configure("")
    remaining = image_names(settings.files_dir)
    assert remaining, "the failed removal left the file"
    assert FileDeletion.select().count() == 2  # image and thumbnail, still to remove
    client.__exit__(None, None, None)

    app_client()  # the next start finishes the recorded deletion
    assert image_names(settings.files_dir) == set()
    assert FileDeletion.select().count() == 0


def test_identical_upload_keeps_the_shared_file_when_the_other_is_deleted(client, settings):
    project_id = client.project()
    ids = []
    for _ in range(2):
        response = client.post(
            f"{API}/projects/{project_id}/avatars/upload", files={"file": ("a.png", png_bytes())}
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["avatar"]["id"])
    assert client.delete(f"{API}/avatars/{ids[0]}").status_code in (200, 204)
    assert file_deletions.carry_out(settings.files_dir) == 0
    assert len(image_names(settings.files_dir)) == 1
    assert client.get(f"{API}/avatars/{ids[1]}/image").status_code == 200


# ---------------------------------------------------------------- restored and lost databases


def _stop(client) -> None:
    client.__exit__(None, None, None)


def copy_database(source: Path, target: Path) -> None:
    """Put the lumiku.db files of `source` in `target`, replacing those there (a backup, a
    restore)."""
    target.mkdir(exist_ok=True)
    for path in target.glob("lumiku.db*"):
        path.unlink()
    for path in source.glob("lumiku.db*"):
        shutil.copy2(path, target / path.name)


def test_an_older_database_put_back_beside_newer_files_loses_no_file(app_client, tmp_path):
    home = tmp_path / "home"
    settings = make_settings(home)
    client = app_client(settings)
    project_id = client.project("holiday")
    first = client.generate(project_id, count=2)["generation"]["id"]
    client.wait_generation(first)
    _stop(client)
    backup = tmp_path / "backup"
    copy_database(home, backup)

    client = app_client(settings)
    second = client.generate(project_id, count=3)["generation"]["id"]
    client.wait_generation(second)
    _stop(client)
    newer = tmp_path / "newer"
    copy_database(home, newer)
    all_images = image_names(home / "files")
    assert len(all_images) == 5

    copy_database(backup, home)  # the user restores yesterday's backup
    client = app_client(settings)
    assert len(client.get(f"{API}/projects/{project_id}").json()["project"]["avatars"]) == 2
    _stop(client)
    kept = image_names(home / "files") | image_names(home / "files" / "quarantine")
    assert kept == all_images  # nothing deleted: the 3 newer ones wait in the quarantine
    report = doctor(home)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "3 image(s) no avatar names" in report.stdout

    copy_database(newer, home)  # and then puts the newer database back after all
    client = app_client(settings)
    assert len(client.get(f"{API}/projects/{project_id}").json()["project"]["avatars"]) == 5
    _stop(client)
    assert image_names(home / "files") == all_images
    assert rows_without_files(home) == []


def test_doctor_repair_reimports_the_quarantine_and_remove_orphans_deletes_it(app_client, tmp_path):
    home = tmp_path / "home"
    settings = make_settings(home)
    client = app_client(settings)
    project_id = client.project()
    client.wait_generation(client.generate(project_id, count=2)["generation"]["id"])
    _stop(client)
    quarantine = home / "files" / "quarantine"
    stray = sorted(image_names(home / "files"))[0]
    (quarantine / stray).parent.mkdir(parents=True)
    shutil.copy2(home / "files" / stray, quarantine / stray)  # a duplicate: removed at start
    extra = png_bytes((40, 40), "teal")
    from lumiku_local import storage

    prepared = storage.prepare_png(extra)
    storage.write(home / "files", prepared)  # an image no row names
    client = app_client(settings)
    _stop(client)
    assert image_names(quarantine) == {prepared.stored.image_file}

    result = doctor(home, "--repair")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "re-imported 1 image(s) into the project 'Recovered images'" in result.stdout
    client = app_client(settings)
    projects = client.get(f"{API}/projects").json()["projects"]
    recovered = [p for p in projects if p["name"] == "Recovered images"]
    assert len(recovered) == 1
    avatars = client.get(f"{API}/projects/{recovered[0]['id']}").json()["project"]["avatars"]
    assert [a["source"] for a in avatars] == ["upload"]
    assert client.get(f"{API}/avatars/{avatars[0]['id']}/image").status_code == 200
    assert client.balance() == 998  # re-importing charges and grants nothing
    _stop(client)

    storage.write(quarantine, storage.prepare_png(png_bytes((30, 30), "navy")))
    result = doctor(home, "--remove-orphans")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deleted 2 quarantined file(s)" in result.stdout
    assert image_names(quarantine) == set()


@pytest.mark.parametrize("damage", ["missing", "empty", "emptied-schema"])
def test_a_lost_database_beside_images_is_a_clear_refusal_not_a_first_run(
    app_client, tmp_path, damage
):
    home = tmp_path / "home"
    settings = make_settings(home)
    client = app_client(settings)
    client.wait_generation(client.generate(client.project(), count=3)["generation"]["id"])
    _stop(client)
    images = image_names(home / "files")
    for path in home.glob("lumiku.db*"):
        path.unlink()
    if damage == "empty":
        (home / "lumiku.db").write_bytes(b"")
    elif damage == "emptied-schema":
        sqlite3.connect(home / "lumiku.db").close()

    result = subprocess.run(
        [sys.executable, "-m", "lumiku_local", "serve", "--port", "0", "--no-browser"],
        env=lumiku_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "3 images from an earlier run" in result.stderr
    assert "lumiku doctor --repair" in result.stderr
    assert "Traceback" not in result.stderr
    assert image_names(home / "files") == images  # nothing moved, nothing granted
    if damage != "missing":
        assert live_state(home) is None

    repaired = doctor(home, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "re-imported 3 image(s)" in repaired.stdout
    client = app_client(settings)
    recovered = client.get(f"{API}/projects").json()["projects"]
    assert [p["avatarCount"] for p in recovered] == [3]
    _stop(client)


def live_state(home: Path) -> int | None:
    """The number of users in lumiku.db, or None when it has no user table (nothing written)."""
    conn = sqlite3.connect(home / "lumiku.db")
    try:
        return conn.execute("select count(*) from user").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_database_is_a_short_message_and_exit_code(app_client, tmp_path, damage):
    home = tmp_path / "home"
    settings = make_settings(home)
    client = app_client(settings)
    client.wait_generation(client.generate(client.project(), count=2)["generation"]["id"])
    _stop(client)
    database = home / "lumiku.db"
    for path in home.glob("lumiku.db-*"):
        path.unlink()
    content = database.read_bytes()
    if damage == "garbage":
        database.write_bytes(b"this is not a database at all" * 200)
    else:
        database.write_bytes(content[: len(content) // 3])

    result = subprocess.run(
        [sys.executable, "-m", "lumiku_local", "--port", "0", "--no-browser"],
        env=lumiku_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "is damaged" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2

    repaired = doctor(home, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "set the damaged lumiku.db aside" in repaired.stdout
    assert list(home.glob("lumiku.db.damaged-*"))
    assert "re-imported 2 image(s)" in repaired.stdout
