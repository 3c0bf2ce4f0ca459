"""Honest errors: a full disk, a database another program holds and a data folder Lumiku may not
write answer 503/507 with what to do, change nothing, and show on /health; a refused request names
the field and why."""

from __future__ import annotations

import shutil
import sqlite3
from collections import namedtuple

from conftest import API, Server, make_settings, png_bytes, wait_for

from lumiku_local import failpoints, machine_failures


def snapshot(client, project: str) -> dict:
    """What a failed change must leave exactly as it was."""
    return {
        "balance": client.balance(),
        "ledger": client.get("/api/credits/history?pageSize=200").json(),
        "projects": client.get(f"{API}/projects").json()["projects"],
        "project": client.get(f"{API}/projects/{project}").json(),
        "generations": client.get(f"{API}/projects/{project}/generations").json(),
    }


def stored_files(settings) -> list[str]:
    return sorted(
        path.relative_to(settings.files_dir).as_posix() for path in settings.files_dir.glob("??/*")
    )


def upload(client, project: str, path: str = "avatars/upload"):
    files = {"file": ("photo.png", png_bytes(), "image/png")}
    return client.post(f"{API}/projects/{project}/{path}", files=files)


# ---------------------------------------------------------------- a full disk


def test_a_full_disk_midway_through_a_generate_is_507_and_charges_nothing(client, settings):
    project = client.project()
    before = snapshot(client, project)
    # the generation row is written, then the debit meets the full disk: all of it rolls back
    failpoints.configure("sqlite.write=sqlite_full@2*1")
    response = client.post(
        f"{API}/projects/{project}/avatars/generate", json={"prompt": "a fox", "count": 2}
    )
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert error["code"] == "disk_full"
    assert str(settings.home) in error["message"] and "Free some space" in error["message"]
    assert failpoints.hits("sqlite.write") == 2
    assert snapshot(client, project) == before


def test_a_full_disk_on_project_create_and_rename_is_507_and_changes_nothing(client):
    project = client.project("Before")
    before = snapshot(client, project)
    failpoints.configure("sqlite.write=sqlite_full")
    created = client.post(f"{API}/projects", json={"name": "New"})
    renamed = client.patch(f"{API}/projects/{project}", json={"name": "After"})
    for response in (created, renamed):
        assert response.status_code == 507, response.text
        assert response.json()["error"]["code"] == "disk_full"
    failpoints.configure("")
    assert snapshot(client, project) == before


def test_a_full_disk_during_an_upload_is_507_and_leaves_no_row_and_no_file(client, settings):
    project = client.project()
    before = snapshot(client, project)
    failpoints.configure("storage.save=enospc")  # the file layer: after the temp file's fsync
    response = upload(client, project)
    assert response.status_code == 507, response.text
    assert response.json()["error"]["code"] == "disk_full"
    failpoints.configure("")
    assert snapshot(client, project) == before
    assert stored_files(settings) == []  # not even the temp file


def test_an_unwritable_data_folder_is_503_for_the_api_and_in_words_on_the_page(client, settings):
    project = client.project()
    before = snapshot(client, project)
    failpoints.configure("storage.save=eacces")
    response = upload(client, project)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "data_folder_unwritable"
    assert str(settings.home) in error["message"] and "writable" in error["message"]
    page = client.post(
        f"/ui/projects/{project}/upload",
        files={"file": ("photo.png", png_bytes(), "image/png")},
        headers={"hx-request": "true", "accept": "text/html"},
    )
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "cannot write to" in page.text and "internal" not in page.text.lower()
    failpoints.configure("")
    assert snapshot(client, project) == before


def test_a_full_disk_on_a_page_action_is_507_in_words(client):
    project = client.project()
    before = snapshot(client, project)
    failpoints.configure("sqlite.write=sqlite_full")
    page = client.post(
        f"/ui/projects/{project}/generate",
        data={"prompt": "a fox", "count": "2"},
        headers={"hx-request": "true"},
    )
    assert page.status_code == 507
    assert page.headers["content-type"].startswith("text/html")
    assert "is full" in page.text and "Free some space" in page.text
    failpoints.configure("")
    assert snapshot(client, project) == before


def test_health_is_degraded_while_writes_fail_and_ok_once_they_work_again(client):
    assert client.get("/health").json() == {"status": "ok"}
    failpoints.configure("sqlite.write=sqlite_full")
    assert client.post(f"{API}/projects", json={"name": "x"}).status_code == 507
    health = client.get("/health")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "degraded"
    assert any("is full" in problem for problem in body["problems"]), body
    failpoints.configure("")
    assert client.get("/health").status_code == 503  # a read proves nothing about writes
    client.project()  # a change that works
    assert client.get("/health").json() == {"status": "ok"}


def test_health_is_degraded_while_the_disk_is_nearly_full(client, monkeypatch, settings):
    usage = namedtuple("usage", "total used free")
    real_disk_usage = shutil.disk_usage
    monkeypatch.setattr(
        machine_failures.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20)
    )
    body = client.get("/health").json()
    assert body["status"] == "degraded"
    assert any("Only 1 MB are free" in problem for problem in body["problems"]), body
    assert any(str(settings.home) in problem for problem in body["problems"])
    monkeypatch.setattr(machine_failures.shutil, "disk_usage", real_disk_usage)
    assert client.get("/health").json() == {"status": "ok"}


# ---------------------------------------------------------------- a foreign lock


def test_another_program_holding_the_database_is_503_database_busy_and_changes_nothing(tmp_path):
    """The real server, and a real second connection holding lumiku.db's write lock."""
    home = tmp_path / "home"
    server = Server(home, LUMIKU_BUSY_TIMEOUT_SECONDS="0.2")
    try:
        _, created = server.request("POST", f"{API}/projects", {"name": "Mine"})
        project = created["id"]
        generated = server.request(
            "POST", f"{API}/projects/{project}/avatars/generate", {"prompt": "a fox"}
        )[1]["generation"]["id"]
        wait_for(
            lambda: (
                server.get(f"{API}/generations/{generated}")["generation"]["status"] == "completed"
            )
        )
        balance = server.get("/api/me")["creditBalance"]
        other = sqlite3.connect(home / "lumiku.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            health_status, health = server.request("GET", "/health")
            assert health_status == 503 and health["status"] == "degraded"
            assert any("Another program is holding" in p for p in health["problems"]), health
            for method, path, body in (
                ("POST", f"{API}/projects/{project}/avatars/generate", {"prompt": "x"}),
                ("POST", f"{API}/projects", {"name": "Another"}),
                ("PATCH", f"{API}/projects/{project}", {"name": "Renamed"}),
                ("POST", f"{API}/generations/{generated}/retry", None),
            ):
                status, answer = server.request(method, path, body)
                assert status == 503, (path, answer)
                assert answer["error"]["code"] == "database_busy"
                assert str(home / "lumiku.db") in answer["error"]["message"]
                assert "Close that program" in answer["error"]["message"]
            assert server.get("/api/me")["creditBalance"] == balance  # reads still work
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert server.get("/api/me")["creditBalance"] == balance
        assert [p["name"] for p in server.get(f"{API}/projects")["projects"]] == ["Mine"]
        assert len(server.get(f"{API}/projects/{project}/generations")["generations"]) == 1
        status, _ = server.request("PATCH", f"{API}/projects/{project}", {"name": "Renamed"})
        assert status == 200  # the change works again, and shows it
        assert server.request("GET", "/health") == (200, {"status": "ok"})
    finally:
        server.kill()


def test_busy_timeout_is_a_setting(tmp_path):
    assert make_settings(tmp_path).busy_timeout_seconds == 10.0
    assert make_settings(tmp_path, busy_timeout_seconds="0.5").busy_timeout_seconds == 0.5


# ---------------------------------------------------------------- refusals name the field


def test_a_number_sent_as_text_is_refused_naming_the_field_and_charges_nothing(client):
    project = client.project()
    before = client.balance()
    for body, field in (
        ({"prompt": "x", "count": "2"}, "count"),
        ({"prompt": "x", "seed": "7"}, "seed"),
        ({"prompt": "x", "count": 2.0}, "count"),
        ({"prompt": 5}, "prompt"),
    ):
        response = client.post(f"{API}/projects/{project}/avatars/generate", json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["message"].startswith(f"{field} must be"), error
        assert "Validation failed" not in error["message"]
    assert client.balance() == before
    assert client.get(f"{API}/projects/{project}/generations").json()["generations"] == []


def test_an_unknown_field_is_refused_by_name_never_ignored_and_charged(client):
    project = client.project()
    response = client.post(
        f"{API}/projects/{project}/avatars/generate",
        json={"prompt": "x", "referenceImage": "abc"},
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("referenceImage is not a field") and "spelling" in message
    assert client.balance() == 1000
    assert client.post(f"{API}/projects", json={"name": "x", "colour": "red"}).status_code == 400
    patch = client.patch("/api/admin/models/avatar-creator:instant", json={"cost": 0})
    assert patch.status_code == 400 and patch.json()["error"]["message"].startswith("cost ")


def test_query_numbers_must_be_plain_whole_numbers(client):
    for query, field in (("page=1e3", "page"), ("pageSize=2.0", "pageSize"), ("page=abc", "page")):
        response = client.get(f"/api/credits/history?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["message"].startswith(f"{field} must be a whole number")
    too_small = client.get("/api/credits/history?pageSize=0").json()["error"]["message"]
    assert too_small == "pageSize must be at least 1."
    assert client.get("/api/credits/history?page=2&pageSize=1").status_code == 200


def test_a_missing_field_is_named(client):
    response = client.post(f"{API}/projects", json={"description": "no name"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "name is required."


def test_the_pages_forms_still_post_text_fields(client):
    created = client.post("/ui/projects", data={"name": "From the page"})
    assert created.status_code == 200, created.text
    project = created.headers["hx-redirect"].rsplit("/", 1)[1]
    started = client.post(
        f"/ui/projects/{project}/generate",
        data={"prompt": "a fox", "count": "2", "seed": "5", "size": "128", "model": ""},
        headers={"hx-request": "true"},
    )
    assert started.status_code == 200, started.text
    generations = client.get(f"{API}/projects/{project}/generations").json()["generations"]
    assert [g["countRequested"] for g in generations] == [2]
