"""Deleting moves projects and avatars to the trash: rows and files stay, restore undoes it,
and only emptying the trash lets the files go (after the rows are committed as emptied)."""

from __future__ import annotations

import datetime as dt

from conftest import API, make_settings, png_bytes

from lumiku_local import storage, trash
from lumiku_local.doctor import ledger_problems, missing_files
from lumiku_local.models import Avatar, AvatarProject, FileDeletion


def files_of(client, avatar_id: str) -> list:
    row = Avatar.get_by_id(avatar_id)
    files_dir = client.app.state.runtime.settings.files_dir
    return [storage.resolve(files_dir, name) for name in (row.image_file, row.thumbnail_file)]


def made(client, project_id: str, count: int = 3) -> list[dict]:
    generation = client.generate(project_id, count=count)["generation"]
    return client.wait_generation(generation["id"])["avatars"]


def test_a_deleted_avatar_keeps_its_files_and_restore_brings_it_back(client):
    project = client.project()
    first, second, _ = made(client, project)
    assert client.delete(f"{API}/avatars/{first['id']}").status_code == 204
    assert all(path.is_file() for path in files_of(client, first["id"]))
    assert client.get(f"{API}/avatars/{first['id']}").status_code == 404
    listed = client.get(f"{API}/trash").json()
    assert [a["id"] for a in listed["avatars"]] == [first["id"]]
    assert listed["avatars"][0]["deletedAt"] is not None
    restored = client.post(f"{API}/avatars/{first['id']}/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["avatar"]["deletedAt"] is None
    assert client.get(f"{API}/avatars/{first['id']}/image").status_code == 200
    assert client.get(f"{API}/trash").json()["avatars"] == []
    # a second restore, or one of an avatar never deleted: 409, nothing changes
    again = client.post(f"{API}/avatars/{second['id']}/restore")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_in_trash"
    assert client.post(f"{API}/avatars/nope/restore").status_code == 404


def test_bulk_delete_is_all_or_none_and_bulk_restore_undoes_it(client):
    project = client.project()
    avatars = made(client, project, 4)
    ids = [a["id"] for a in avatars[:3]]
    refused = client.post(f"{API}/avatars/delete", json={"avatarIds": [*ids, "unknown"]})
    assert refused.status_code == 404 and "unknown" in refused.json()["error"]["message"]
    assert Avatar.select().where(Avatar.deleted_at.is_null(False)).count() == 0
    assert client.post(f"{API}/avatars/delete", json={"avatarIds": []}).status_code == 400
    deleted = client.post(f"{API}/avatars/delete", json={"avatarIds": ids})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 3}
    page = client.get(f"{API}/projects/{project}/avatars").json()
    assert [a["id"] for a in page["avatars"]] == [avatars[3]["id"]]
    restored = client.post(f"{API}/avatars/restore", json={"avatarIds": ids})
    assert restored.status_code == 200 and restored.json() == {"restored": 3}
    assert client.get(f"{API}/projects/{project}/avatars").json()["total"] == 4


def test_emptying_the_trash_removes_the_files_only_then(client):
    project = client.project()
    kept, doomed = made(client, project, 2)
    client.delete(f"{API}/avatars/{doomed['id']}")
    paths = files_of(client, doomed["id"])
    assert all(path.is_file() for path in paths)
    emptied = client.delete(f"{API}/trash")
    assert emptied.status_code == 200 and emptied.json() == {"projects": 0, "avatars": 1}
    assert not any(path.is_file() for path in paths)
    assert Avatar.get_by_id(doomed["id"]).purged_at is not None
    assert FileDeletion.select().count() == 0
    gone = client.post(f"{API}/avatars/{doomed['id']}/restore")
    assert gone.status_code == 409 and "emptied" in gone.json()["error"]["message"]
    assert all(path.is_file() for path in files_of(client, kept["id"]))
    assert missing_files(client.app.state.runtime.settings) == []


def test_a_file_another_avatar_shows_stays_when_the_trash_is_emptied(client):
    project = client.project()
    photo = png_bytes(color="teal")
    ids = []
    for _ in range(2):  # the same picture twice: one stored file, two rows
        answer = client.post(
            f"{API}/projects/{project}/avatars/upload", files={"file": ("p.png", photo)}
        )
        ids.append(answer.json()["avatar"]["id"])
    client.delete(f"{API}/avatars/{ids[0]}")
    client.delete(f"{API}/trash")
    assert all(path.is_file() for path in files_of(client, ids[1]))


def test_a_deleted_project_is_restored_with_its_avatars_but_not_the_ones_deleted_before(client):
    project = client.project("Holiday")
    avatars = made(client, project, 3)
    client.delete(f"{API}/avatars/{avatars[0]['id']}")  # on its own, before the project
    assert client.delete(f"{API}/projects/{project}").status_code == 204
    assert client.get(f"{API}/projects/{project}").status_code == 404
    listed = client.get(f"{API}/trash").json()
    assert [(p["id"], p["avatarCount"]) for p in listed["projects"]] == [(project, 3)]
    assert listed["avatars"] == []  # the project's avatars show under the project
    # an avatar of a deleted project: restore the project first
    blocked = client.post(f"{API}/avatars/{avatars[1]['id']}/restore")
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "project_deleted"
    restored = client.post(f"{API}/projects/{project}/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["project"]["avatarCount"] == 2
    page = client.get(f"{API}/projects/{project}/avatars").json()
    assert sorted(a["id"] for a in page["avatars"]) == sorted(a["id"] for a in avatars[1:])
    assert [a["id"] for a in client.get(f"{API}/trash").json()["avatars"]] == [avatars[0]["id"]]
    again = client.post(f"{API}/projects/{project}/restore")
    assert again.status_code == 409
    assert ledger_problems() == []


def test_an_emptied_project_cannot_come_back_and_its_files_go(client):
    project = client.project()
    avatar = made(client, project, 1)[0]
    paths = files_of(client, avatar["id"])
    client.delete(f"{API}/projects/{project}")
    assert all(path.is_file() for path in paths)
    assert client.delete(f"{API}/trash").json() == {"projects": 1, "avatars": 1}
    assert not any(path.is_file() for path in paths)
    assert AvatarProject.get_by_id(project).purged_at is not None
    assert client.post(f"{API}/projects/{project}/restore").status_code == 409


def test_start_up_empties_only_what_stayed_longer_than_trash_days(app_client, tmp_path):
    client = app_client(make_settings(tmp_path / "home", trash_days=7))
    project = client.project()
    old, recent = made(client, project, 2)
    client.delete(f"{API}/avatars/{old['id']}")
    client.delete(f"{API}/avatars/{recent['id']}")
    week_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=8)
    Avatar.update(deleted_at=week_ago).where(Avatar.id == old["id"]).execute()
    emptied = trash.empty_expired(client.app.state.runtime)
    assert (emptied.avatars, emptied.projects) == (1, 0)
    assert Avatar.get_by_id(old["id"]).purged_at is not None
    assert Avatar.get_by_id(recent["id"]).purged_at is None
    assert all(path.is_file() for path in files_of(client, recent["id"]))
