"""The project page's gallery a page at a time: the first page on the page, the rest through
/ui/projects/{id}/avatars, filtered and sorted; bad values are a clear 4xx."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from conftest import API, png_bytes

from lumiku_local.projects import GALLERY_PAGE as PAGE

HTML = {"accept": "text/html"}


def upload(client, project_id: str, name: str = "me.png") -> dict:
    response = client.post(
        f"{API}/projects/{project_id}/avatars/upload",
        files={"file": (name, png_bytes((96, 96), "teal"), "image/png")},
    )
    assert response.status_code == 201, response.text
    return response.json()["avatar"]


def clone(avatar_id: str, count: int, start: dt.datetime | None = None, **fields) -> list[str]:
    """`count` copies of an avatar's row (sharing its files), one second apart from `start`."""
    from lumiku_local.db import database
    from lumiku_local.models import Avatar

    row = Avatar.get_by_id(avatar_id).__data__
    start = start or row["created_at"] - dt.timedelta(days=1)
    rows = [
        {
            **row,
            "id": uuid.uuid4().hex,
            "name": f"copy {n}",
            "variation_key": None,
            "created_at": start + dt.timedelta(seconds=n),
            **fields,
        }
        for n in range(count)
    ]
    with database.atomic():
        for first in range(0, len(rows), 200):
            Avatar.insert_many(rows[first : first + 200]).execute()
    return [r["id"] for r in rows]


def tile_ids(html: str) -> list[str]:
    return re.findall(r'<li class="tile[^"]*" id="avatar-([0-9a-f-]+)"', html)


def more_url(html: str) -> str | None:
    found = re.search(r'data-more="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def fragment(client, url: str):
    return client.get(url, headers={"hx-request": "true"})


def test_the_page_shows_one_page_and_the_rest_comes_a_page_at_a_time(client):
    project_id = client.project()
    photo = upload(client, project_id)
    copies = clone(photo["id"], 2 * PAGE + 11)
    page = client.get(f"/projects/{project_id}", headers={"accept": "text/html"}).text
    first = tile_ids(page)
    assert len(first) == PAGE
    assert first[0] == photo["id"]  # newest first
    assert re.search(rf"data-gallery-count>\s*{2 * PAGE + 12}<", page)
    seen, url = list(first), more_url(page)
    while url:
        answer = fragment(client, url)
        assert answer.status_code == 200, answer.text
        seen += tile_ids(answer.text)
        url = more_url(answer.text)
    assert len(seen) == len(set(seen)) == 2 * PAGE + 12
    assert seen[1:] == list(reversed(copies))
    count = client.get(f"/ui/projects/{project_id}/avatars/count")
    assert count.status_code == 200 and count.text == str(2 * PAGE + 12)


def test_filters_favourites_uploads_a_generation_and_the_oldest_first(client):
    project_id = client.project()
    photo = upload(client, project_id)
    generation = client.generate(project_id, count=2)["generation"]
    made = [a["id"] for a in client.wait_generation(generation["id"])["avatars"]]
    starred = made[0]
    assert client.patch(f"{API}/avatars/{starred}", json={"favorite": True}).status_code == 200
    base = f"/ui/projects/{project_id}/avatars"

    favourites = fragment(client, f"{base}?favorite=true")
    assert tile_ids(favourites.text) == [starred]
    assert favourites.headers["x-gallery-matching"] == "1"
    assert 'aria-pressed="true"' in favourites.text
    uploads = fragment(client, f"{base}?source=upload")
    assert tile_ids(uploads.text) == [photo["id"]]
    of_generation = fragment(client, f"{base}?generationId={generation['id']}")
    assert sorted(tile_ids(of_generation.text)) == sorted(made)
    newest = tile_ids(fragment(client, base).text)
    assert tile_ids(fragment(client, f"{base}?order=oldest").text) == list(reversed(newest))

    page = client.get(f"/projects/{project_id}", headers={"accept": "text/html"}).text
    assert f'<option value="{generation["id"]}">a friendly wizard · 2 images · ' in page


def test_paging_keeps_the_filter_and_the_order(client):
    project_id = client.project()
    photo = upload(client, project_id)
    starred = clone(photo["id"], PAGE + 5, favorite=True)
    clone(photo["id"], 10)  # not favourites
    url: str | None = f"/ui/projects/{project_id}/avatars?favorite=true&order=oldest"
    seen = []
    while url:
        answer = fragment(client, url)
        seen += tile_ids(answer.text)
        url = more_url(answer.text)
        assert url is None or ("favorite=true" in url and "order=oldest" in url)
    assert seen == starred


def test_bad_values_are_a_clear_4xx(client):
    project_id = client.project()
    upload(client, project_id)
    base = f"/ui/projects/{project_id}/avatars"
    for query, status, words in (
        ("order=sideways", 422, "order must be one of"),
        ("source=camera", 422, "source must be one of"),
        ("favorite=maybe", 400, "not valid"),
        ("cursor=not-a-cursor", 422, "cursor is not valid"),
    ):
        answer = fragment(client, f"{base}?{query}")
        assert answer.status_code == status, (query, answer.text)
        assert 'role="alert"' in answer.text and words in answer.text, (query, answer.text)
    assert fragment(client, "/ui/projects/nope/avatars").status_code == 404
    assert client.get("/ui/projects/nope/avatars/count").status_code == 404


def test_the_avatar_pages_delete_offers_undo_on_the_project_page(client):
    project_id = client.project()
    photo = upload(client, project_id, "keep.png")
    doomed = upload(client, project_id, "oops.png")
    answer = client.post(f"/ui/avatars/{doomed['id']}/delete", headers={"hx-request": "true"})
    assert answer.headers["hx-redirect"] == f"/projects/{project_id}?deleted={doomed['id']}"
    page = client.get(answer.headers["hx-redirect"], headers={"accept": "text/html"}).text
    assert f'data-deleted-avatar data-id="{doomed["id"]}" data-name="{doomed["name"]}"' in page
    assert tile_ids(page) == [photo["id"]]
    # a live avatar, or one of another project, is no notice: the URL alone says nothing
    for other in (photo["id"], "nope"):
        page = client.get(
            f"/projects/{project_id}?deleted={other}", headers={"accept": "text/html"}
        )
        assert "data-deleted-avatar" not in page.text


def test_the_reference_picker_offers_the_photos_not_the_whole_gallery(client):
    project_id = client.project()
    photo = upload(client, project_id)
    generation = client.generate(project_id, count=1)["generation"]
    made = client.wait_generation(generation["id"])["avatars"][0]["id"]
    clone(photo["id"], PAGE + 1, source="generated")
    page = client.get(f"/projects/{project_id}", headers={"accept": "text/html"}).text
    assert re.findall(r'id="reference-([0-9a-f-]+)"', page) == [photo["id"]]
    chosen = client.get(f"/projects/{project_id}?reference={made}", headers={"accept": "text/html"})
    assert re.findall(r'id="reference-([0-9a-f-]+)"', chosen.text) == [photo["id"], made]
