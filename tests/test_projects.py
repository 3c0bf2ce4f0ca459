"""Projects and avatars through the API, including deletion with refunds."""

from conftest import API, png_bytes, wait_for

from lumiku_local import failpoints
from lumiku_local.doctor import ledger_problems


def test_create_list_get_rename(client):
    created = client.post(f"{API}/projects", json={"name": "  Team  ", "description": "work"})
    assert created.status_code == 201
    project = created.json()
    assert project["name"] == "Team" and project["description"] == "work"
    assert project["avatarCount"] == 0 and project["createdAt"].endswith("Z")
    listed = client.get(f"{API}/projects").json()["projects"]
    assert [p["id"] for p in listed] == [project["id"]]
    renamed = client.patch(f"{API}/projects/{project['id']}", json={"name": "Team 2"})
    assert renamed.status_code == 200 and renamed.json()["project"]["name"] == "Team 2"
    got = client.get(f"{API}/projects/{project['id']}").json()["project"]
    assert got["name"] == "Team 2" and got["avatars"] == []


def test_project_validation(client):
    assert client.post(f"{API}/projects", json={"name": "  "}).status_code == 422
    assert client.post(f"{API}/projects", json={"name": "x" * 121}).status_code == 422
    assert client.post(f"{API}/projects", json={}).status_code == 400
    assert (
        client.post(
            f"{API}/projects", content=b"{oops", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert client.get(f"{API}/projects").json()["projects"] == []


def test_unknown_project_is_404(client):
    for response in (
        client.get(f"{API}/projects/nope"),
        client.patch(f"{API}/projects/nope", json={"name": "x"}),
        client.delete(f"{API}/projects/nope"),
        client.get(f"{API}/projects/nope/generations"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_project_lists_its_avatars_and_generations(client):
    project = client.project()
    done = client.wait_generation(client.generate(project, count=2)["generation"]["id"])
    got = client.get(f"{API}/projects/{project}").json()["project"]
    assert got["avatarCount"] == 2
    assert {a["id"] for a in got["avatars"]} == {a["id"] for a in done["avatars"]}
    gens = client.get(f"{API}/projects/{project}/generations").json()["generations"]
    assert [g["id"] for g in gens] == [done["id"]]
    assert client.get(f"{API}/projects").json()["projects"][0]["avatarCount"] == 2


def test_delete_project_cancels_refunds_and_trashes_it_until_emptied(client, settings):
    project = client.project()
    finished = client.wait_generation(client.generate(project, count=2)["generation"]["id"])
    failpoints.configure("engine.generate=delay(0.3)")
    running = client.generate(project, count=6)["generation"]
    wait_for(lambda: client.generation(running["id"])["countCompleted"] >= 1)
    image_urls = [a["imageUrl"] for a in finished["avatars"]]
    assert client.delete(f"{API}/projects/{project}").status_code == 204

    canceled = client.generation(running["id"])
    assert canceled["status"] == "canceled"
    assert "project was deleted" in canceled["errorMessage"]
    assert canceled["creditRefunded"] == 6 - canceled["countCompleted"]
    wait_for(
        lambda: client.get("/api/health/workers").json()["avatar-generator"]["processingCount"] == 0
    )
    # in the trash: every file stays (restorable) until the trash is emptied
    assert len(list(settings.files_dir.rglob("*.png"))) >= len(image_urls)
    for url in image_urls:
        assert client.get(url).status_code == 404
    assert client.delete(f"{API}/trash").status_code == 200
    assert list(settings.files_dir.rglob("*.png")) == []
    gone = client.get(f"{API}/projects/{project}")
    assert gone.status_code == 404 and "deleted" in gone.json()["error"]["message"]
    again = client.post(f"{API}/projects/{project}/avatars/generate", json={"prompt": "x"})
    assert again.status_code == 404 and "deleted" in again.json()["error"]["message"]
    assert client.get(f"{API}/projects").json()["projects"] == []
    assert ledger_problems() == []


def test_avatar_endpoints(client, settings):
    project = client.project()
    done = client.wait_generation(client.generate(project, count=2)["generation"]["id"])
    first, second = done["avatars"]
    meta = client.get(f"{API}/avatars/{first['id']}")
    assert (
        meta.status_code == 200 and meta.json()["avatar"]["variationKey"] == first["variationKey"]
    )
    image = client.get(first["imageUrl"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    download = client.get(first["imageUrl"] + "?download=true")
    assert "attachment" in download.headers["content-disposition"]
    thumb = client.get(first["thumbnailUrl"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"

    assert client.delete(f"{API}/avatars/{first['id']}").status_code == 204
    assert client.get(f"{API}/avatars/{first['id']}").status_code == 404
    assert client.get(first["imageUrl"]).status_code == 404
    assert client.delete(f"{API}/avatars/{first['id']}").status_code == 404
    assert client.get(second["imageUrl"]).status_code == 200
    # a deleted avatar still counts as delivered: no refund, books balance
    generation = client.generation(done["id"])
    assert generation["countCompleted"] == 2 and generation["creditRefunded"] == 0
    assert [a["id"] for a in generation["avatars"]] == [second["id"]]
    assert len(list(settings.files_dir.rglob("*.png"))) == 2  # the trash keeps its files
    assert client.delete(f"{API}/trash").status_code == 200
    assert len(list(settings.files_dir.rglob("*.png"))) == 1
    assert ledger_problems() == []


def test_identical_uploads_share_a_file_until_both_are_deleted(client, settings):
    project = client.project()
    content = png_bytes()
    ids = [
        client.post(
            f"{API}/projects/{project}/avatars/upload",
            files={"file": ("a.png", content, "image/png")},
        ).json()["avatar"]["id"]
        for _ in range(2)
    ]
    assert client.delete(f"{API}/avatars/{ids[0]}").status_code == 204
    assert client.get(f"{API}/avatars/{ids[1]}/image").status_code == 200
    assert client.delete(f"{API}/avatars/{ids[1]}").status_code == 204
    assert len(list(settings.files_dir.rglob("*.png"))) == 1  # in the trash, restorable
    assert client.delete(f"{API}/trash").status_code == 200
    assert list(settings.files_dir.rglob("*.png")) == []


def test_unknown_avatar_is_404(client):
    for path in ("", "/image", "/thumbnail"):
        assert client.get(f"{API}/avatars/nope{path}").status_code == 404
    assert client.delete(f"{API}/avatars/nope").status_code == 404
