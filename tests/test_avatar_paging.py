"""The gallery's API: a project's avatars a page at a time, filtered and sorted, favourites,
and retry of just the images a generation did not deliver."""

from __future__ import annotations

from conftest import API, png_bytes

from lumiku_local import failpoints, generations
from lumiku_local.doctor import ledger_problems
from lumiku_local.models import CreditLedger


def all_pages(client, project_id: str, **query) -> tuple[list[str], int]:
    seen, cursor, pages = [], None, 0
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        answer = client.get(f"{API}/projects/{project_id}/avatars", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        seen += [avatar["id"] for avatar in body["avatars"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            return seen, pages


def test_pages_cover_every_avatar_once_in_both_orders(client):
    project = client.project()
    ids = []
    for _ in range(3):
        generation = client.generate(project, count=4)["generation"]
        ids += [a["id"] for a in client.wait_generation(generation["id"])["avatars"]]
    newest, pages = all_pages(client, project, limit=5)
    assert pages == 3 and sorted(newest) == sorted(ids) and len(set(newest)) == 12
    oldest, _ = all_pages(client, project, limit=5, order="oldest")
    assert oldest == list(reversed(newest))
    body = client.get(f"{API}/projects/{project}/avatars", params={"limit": 5}).json()
    assert body["total"] == 12 and len(body["avatars"]) == 5


def test_filters_favourites_uploads_and_one_generation(client):
    project = client.project()
    first = client.generate(project, count=3)["generation"]
    made = client.wait_generation(first["id"])["avatars"]
    second = client.generate(project, count=2)["generation"]
    client.wait_generation(second["id"])
    photo = client.post(
        f"{API}/projects/{project}/avatars/upload", files={"file": ("p.png", png_bytes())}
    ).json()["avatar"]
    star = client.patch(f"{API}/avatars/{made[1]['id']}", json={"favorite": True})
    assert star.status_code == 200 and star.json()["avatar"]["favorite"] is True
    assert all_pages(client, project, favorite="true")[0] == [made[1]["id"]]
    assert len(all_pages(client, project, favorite="false")[0]) == 5
    assert all_pages(client, project, source="upload")[0] == [photo["id"]]
    assert sorted(all_pages(client, project, generationId=first["id"])[0]) == sorted(
        a["id"] for a in made
    )
    unstar = client.patch(f"{API}/avatars/{made[1]['id']}", json={"favorite": False})
    assert unstar.json()["avatar"]["favorite"] is False
    assert all_pages(client, project, favorite="true")[0] == []


def test_bad_paging_input_is_a_clear_4xx(client):
    project = client.project()
    url = f"{API}/projects/{project}/avatars"
    for query in ({"limit": 0}, {"limit": 201}, {"order": "sideways"}, {"source": "camera"}):
        answer = client.get(url, params=query)
        assert answer.status_code == 400, (query, answer.text)
    bad = client.get(url, params={"cursor": "???"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"
    assert client.get(f"{API}/projects/nope/avatars").status_code == 404
    assert client.patch(f"{API}/avatars/nope", json={"favorite": True}).status_code == 404
    wrong = client.patch(f"{API}/avatars/nope", json={"favorite": "yes"})
    assert wrong.status_code == 400


def test_retry_of_the_missing_images_makes_just_those_with_their_own_seeds(client):
    failpoints.configure("engine.generate=error@3")  # v0, v1 delivered; v2, v3 keep failing
    project = client.project()
    original = client.generate(project, count=4, seed=1000)["generation"]
    failed = client.wait_generation(original["id"])
    assert failed["status"] == "failed" and failed["missingCount"] == 2
    failpoints.configure("")
    balance = client.balance()
    answer = client.post(f"{API}/generations/{original['id']}/retry", json={"only": "missing"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["creditUsed"] == 2
    assert client.balance() == balance - 2
    done = client.wait_generation(answer.json()["generation"]["id"])
    assert done["status"] == "completed" and done["countRequested"] == 2
    made = sorted((a["variationKey"], a["seed"]) for a in done["avatars"])
    assert made == [("v2", 1002), ("v3", 1003)]
    assert done["retriedFromId"] == original["id"]
    # everything delivered now? the old one still lacks them; the new one lacks nothing
    nothing = client.post(f"{API}/generations/{done['id']}/retry", json={"only": "missing"})
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_missing"
    assert (
        client.post(f"{API}/generations/{done['id']}/retry", json={"only": "some"}).status_code
        == 400
    )
    assert ledger_problems() == []
    debits = CreditLedger.select().where(
        (CreditLedger.generation == done["id"]) & (CreditLedger.kind == "debit")
    )
    assert [entry.amount for entry in debits] == [-2]


def test_a_plain_retry_still_makes_a_whole_new_batch(client):
    failpoints.configure("engine.generate=error@2")
    project = client.project()
    original = client.generate(project, count=3, seed=50)["generation"]
    client.wait_generation(original["id"])
    failpoints.configure("")
    answer = client.post(f"{API}/generations/{original['id']}/retry")
    assert answer.status_code == 202 and answer.json()["creditUsed"] == 3
    assert generations.get_generation(answer.json()["generation"]["id"]).count == 3


def test_retry_of_a_deleted_projects_generation_is_refused(client):
    failpoints.configure("engine.generate=error@2")
    project = client.project()
    original = client.generate(project, count=2)["generation"]
    client.wait_generation(original["id"])
    failpoints.configure("")
    client.delete(f"{API}/projects/{project}")
    balance = client.balance()
    answer = client.post(f"{API}/generations/{original['id']}/retry", json={"only": "missing"})
    assert answer.status_code == 404 and client.balance() == balance
