"""Credits, admin, OpenAPI, events and the error shape."""

import json
import re
import threading

import pytest
from conftest import API

from lumiku_local import failpoints


@pytest.mark.backends  # the credit ledger's contract, on SQLite and PostgreSQL
def test_me_and_credit_history_newest_first_paginated(client):
    assert client.get("/api/me").json() == {"id": 1, "name": "Local user", "creditBalance": 1000}
    project = client.project()
    for _ in range(3):
        client.wait_generation(client.generate(project)["generation"]["id"])
    page = client.get("/api/credits/history?page=1&pageSize=2").json()
    assert page["total"] == 4 and page["pageSize"] == 2
    kinds = [entry["kind"] for entry in page["entries"]]
    assert kinds == ["debit", "debit"]
    assert page["entries"][0]["balance"] == 997 and page["entries"][0]["generationId"]
    last = client.get("/api/credits/history?page=2&pageSize=2").json()["entries"]
    assert [entry["kind"] for entry in last] == ["debit", "grant"]
    assert last[-1]["amount"] == 1000
    assert client.get("/api/credits/history?pageSize=0").status_code == 400


@pytest.mark.backends
def test_admin_queue_reports_counts_refunds_and_failures(client):
    project = client.project()
    client.wait_generation(client.generate(project)["generation"]["id"])
    failpoints.configure("engine.generate=error")
    failed = client.wait_generation(client.generate(project, count=2)["generation"]["id"])
    body = client.get("/api/admin/queue").json()
    assert body["pending"] == 0 and body["processing"] == 0
    assert body["completedLast24h"] == 1 and body["failedLast7d"] == 1
    assert body["creditsRefunded"] == 2
    assert body["lastFailures"][0]["id"] == failed["id"]
    assert "after 3 attempts" in body["lastFailures"][0]["errorMessage"]


def test_openapi_is_served_without_any_cdn(client):
    spec = client.get("/schema/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert f"{API}/projects/{{project_id}}/avatars/generate" in paths
    page = client.get("/schema")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert urls and all(url.startswith("/") for url in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_unknown_route_and_method_use_the_error_shape(client):
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.put("/api/me")
    assert wrong.status_code == 405 and wrong.json()["error"]["message"]


@pytest.mark.backends  # on Redis the events come through its pub/sub
def test_events_stream_generation_progress(live_server):
    import httpx

    received: list[dict] = []
    connected = threading.Event()

    def listen():
        with (
            httpx.Client(base_url=live_server, timeout=20) as http,
            http.stream("GET", "/api/events") as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith(":"):
                    connected.set()
                if line.startswith("data:") and line[5:].strip():
                    event = json.loads(line[5:])
                    received.append(event)
                    if event["status"] == "completed":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(10)
    with httpx.Client(base_url=live_server, timeout=20) as http:
        project = http.post(f"{API}/projects", json={"name": "events"}).json()["id"]
        generation = http.post(
            f"{API}/projects/{project}/avatars/generate", json={"prompt": "x", "count": 3}
        ).json()["generation"]
    listener.join(15)
    assert not listener.is_alive()
    mine = [event for event in received if event["id"] == generation["id"]]
    statuses = [event["status"] for event in mine]
    assert statuses[0] == "pending" and statuses[-1] == "completed"
    assert "processing" in statuses
    completed_counts = [event["countCompleted"] for event in mine]
    assert completed_counts == sorted(completed_counts) and completed_counts[-1] == 3
    assert mine[-1]["progress"] == 100.0
