"""Races found in review, each pinned by a failpoint so the bad interleaving happens every time."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from conftest import API, sibling_generation, wait_for

from lumiku_local import failpoints, generations
from lumiku_local.db import utcnow
from lumiku_local.doctor import ledger_problems, missing_files
from lumiku_local.models import AvatarGeneration

pytestmark = pytest.mark.backends

SAME = {"prompt": "twins", "seed": 42, "count": 1, "style": "bottts"}


def test_deleting_an_identical_avatar_cannot_strand_a_generation_without_its_file(client, settings):
    project = client.project()
    first = client.wait_generation(client.generate(project, **SAME)["generation"]["id"])
    failpoints.configure("generation.record=delay(1.0)*1")
    second = client.generate(project, **SAME)["generation"]
    # the second job has written the (shared) file and is parked before inserting its row
    wait_for(lambda: failpoints.hits("generation.record") >= 1)
    assert client.delete(f"{API}/avatars/{first['avatars'][0]['id']}").status_code == 204
    done = client.wait_generation(second["id"])
    assert done["status"] == "completed"
    assert client.get(done["avatars"][0]["imageUrl"]).status_code == 200
    assert missing_files(settings) == []


def test_generate_during_project_delete_is_refused_not_stranded(client):
    project = client.project()
    failpoints.configure("engine.generate=delay(0.5)")
    running = client.generate(project, count=4)["generation"]
    wait_for(lambda: client.generation(running["id"])["status"] == "processing")
    failpoints.configure("generation.finish=delay(1.0)*1")  # the delete is slow mid-transaction
    deleted = {}
    deleter = threading.Thread(
        target=lambda: deleted.update(r=client.delete(f"{API}/projects/{project}"))
    )
    deleter.start()
    wait_for(lambda: failpoints.hits("generation.finish") >= 1)
    late = client.post(f"{API}/projects/{project}/avatars/generate", json={"prompt": "late"})
    deleter.join(10)
    assert deleted["r"].status_code == 204
    assert late.status_code == 404, late.text
    assert client.generation(running["id"])["status"] == "canceled"
    assert client.balance() == 1000 - client.generation(running["id"])["countCompleted"]
    assert ledger_problems() == []


def test_a_retry_waiting_for_its_backoff_is_not_claimed_early(client):
    failpoints.configure("engine.generate=delay(0.5)")
    generation = client.generate(client.project())["generation"]
    client.post(f"{API}/generations/{generation['id']}/cancel")
    runtime = client.app.state.runtime
    later = utcnow() + dt.timedelta(minutes=5)
    waiting = sibling_generation(
        generation["id"],
        status="pending",
        error_attempts=14,  # its backoff (0.05 s doubled 13 times) outlasts the 5 minutes
        next_attempt_at=later,
    )
    assert generations.claim(runtime, waiting.id) is None
    AvatarGeneration.update(next_attempt_at=utcnow()).where(
        AvatarGeneration.id == waiting.id
    ).execute()
    assert generations.claim(runtime, waiting.id) is not None


def test_bad_numbers_and_bytes_are_400_not_500(client):
    project = client.project()
    for body in (
        {"prompt": "x", "presetId": 2**63},
        {"prompt": "x", "seed": 2**64},
        {"prompt": "x", "count": -(2**70)},
    ):
        response = client.post(f"{API}/projects/{project}/avatars/generate", json=body)
        assert response.status_code == 400, (body, response.text)
    assert client.get("/api/credits/history?page=4611686018427387904").status_code == 400
    assert client.get(f"{API}/projects/{project}").status_code == 200
    zero = client.post(
        f"{API}/projects/{project}/avatars/generate", json={"prompt": "x", "width": 0}
    )
    assert zero.status_code == 422
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n'.encode()
        + b"\xff\xfe\xfa\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    response = client.post(
        f"{API}/projects/{project}/avatars/upload",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 400
    assert client.balance() == 1000
