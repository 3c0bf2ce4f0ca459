"""The project list comes a page at a time, in the API and on the /projects page."""

from __future__ import annotations

import re

from conftest import API

from lumiku_local.web.pages import PROJECT_PAGE


def test_api_pages_through_every_project_once_most_recent_first(client):
    made = [client.project(f"project {n}") for n in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = client.get(f"{API}/projects", params=query).json()
        assert len(body["projects"]) <= 3
        seen += [project["id"] for project in body["projects"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(made))  # created one after another: newest is most recent
    whole = client.get(f"{API}/projects").json()
    assert [project["id"] for project in whole["projects"]] == seen
    assert whole["nextCursor"] is None


def test_api_paging_refuses_a_bad_cursor_or_limit(client):
    client.project()
    bad = client.get(f"{API}/projects", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_cursor"
    for limit in ("0", "201", "many"):
        answer = client.get(f"{API}/projects", params={"limit": limit})
        assert answer.status_code == 400, (limit, answer.text)
        assert "limit" in answer.json()["error"]["message"]


def test_projects_page_shows_one_page_and_loads_the_rest(client):
    for n in range(PROJECT_PAGE + 2):
        client.project(f"project {n}")
    page = client.get("/projects", headers={"accept": "text/html"}).text
    assert page.count('class="project-card"') == PROJECT_PAGE
    more = re.search(r'hx-get="(/ui/projects/more\?cursor=[^"]+)"', page)
    assert more, "no Show more button"
    rest = client.get(more.group(1).replace("&amp;", "&"), headers={"hx-request": "true"}).text
    assert rest.count('class="project-card"') == 2
    assert "project 1<" in rest and "project 0<" in rest  # the oldest come last
    assert "/ui/projects/more" not in rest
