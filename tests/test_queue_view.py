"""The queue across projects and apps (GET /api/queue, POST /api/queue/cancel): the positions
are the order the workers really take the jobs in, and cancelling refunds exactly what was not
delivered."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import TERMINAL, sibling_generation, wait_for

from lumiku_local import failpoints
from lumiku_local.db import utcnow
from lumiku_local.doctor import ledger_problems
from lumiku_local.models import AvatarGeneration, CreditLedger

# one worker, each image a second: a batch of 8 holds the worker while the rest wait
HOLD = "engine.generate=delay(1.0)"


@pytest.fixture
def held(app_client, settings):
    """A client whose only worker is busy with an 8-image batch (returned too)."""
    client = app_client(settings.with_changes(workers=1))
    failpoints.configure(HOLD)
    project = client.project("Running")
    running = client.generate(project, count=8, prompt="the long one")["generation"]
    client.wait_generation(running["id"], statuses=("processing",))
    return client, running


def queue(client) -> dict:
    response = client.get("/api/queue")
    assert response.status_code == 200, response.text
    return response.json()


def refunds(generation_id: str) -> list[int]:
    return [
        entry.amount
        for entry in CreditLedger.select().where(
            (CreditLedger.generation == generation_id) & (CreditLedger.kind == "refund")
        )
    ]


def test_waiting_positions_are_the_order_the_worker_starts_them(held):
    client, running = held
    other = client.project("Other project")
    first = client.generate(running["projectId"], count=1, prompt="first")["generation"]
    second = client.generate(other, count=2, prompt="second")["generation"]
    third = client.generate(running["projectId"], count=1, prompt="third")["generation"]
    # a job whose enqueue was lost (as a crash between commit and enqueue leaves it), older
    # than all of them: it is not first in line, the reconciler queues it behind the others
    lost = sibling_generation(
        first["id"], prompt="lost", created_at=utcnow() - dt.timedelta(minutes=5)
    )

    line = queue(client)
    assert [g["id"] for g in line["running"]] == [running["id"]]
    assert line["running"][0]["projectName"] == "Running"
    waiting = line["waiting"]
    assert [g["id"] for g in waiting] == [first["id"], second["id"], third["id"], lost.id]
    assert [g["position"] for g in waiting] == [1, 2, 3, 4]
    assert [g["waitingFor"] for g in waiting] == ["queue", "queue", "queue", "recovering"]
    assert [g["projectName"] for g in waiting] == ["Running", "Other project", "Running", "Running"]
    assert waiting[1]["creditRefundable"] == 2 * second["creditCost"]
    assert line["creditRefundable"] == sum(g["creditRefundable"] for g in line["running"] + waiting)

    client.app.state.job_queue.reconcile_now()  # its periodic run: the lost job joins the queue
    after = queue(client)["waiting"]
    assert [(g["id"], g["waitingFor"]) for g in after][-1] == (lost.id, "queue")
    assert [g["id"] for g in after] == [g["id"] for g in waiting]

    assert client.post("/api/queue/cancel", json={"generationIds": [running["id"]]}).is_success
    order = [g["id"] for g in waiting]
    finished = [client.wait_generation(generation_id, timeout=60) for generation_id in order]
    assert all(g["status"] == "completed" for g in finished), finished
    started = sorted(order, key=lambda i: AvatarGeneration.get_by_id(i).started_at)
    assert started == order
    assert queue(client) == {"running": [], "waiting": [], "creditRefundable": 0}


def test_a_retry_waits_behind_the_queue_until_its_time(held):
    client, running = held
    queued = client.generate(running["projectId"], count=1)["generation"]
    retry = sibling_generation(
        queued["id"],
        prompt="retry",
        error_attempts=1,
        next_attempt_at=utcnow() + dt.timedelta(hours=1),
    )
    waiting = queue(client)["waiting"]
    assert [(g["id"], g["position"], g["waitingFor"]) for g in waiting] == [
        (queued["id"], 1, "queue"),
        (retry.id, 2, "retry"),
    ]
    assert waiting[1]["retryAt"].startswith(retry.next_attempt_at.isoformat()[:16])
    client.post("/api/queue/cancel", json={})


def test_cancel_one_then_all_refunds_exactly_what_was_not_delivered(held):
    client, running = held
    balance_before = client.balance() + running["creditCharged"]
    waiting_a = client.generate(running["projectId"], count=2)["generation"]
    waiting_b = client.generate(client.project("B"), count=3)["generation"]
    balance = client.balance()

    response = client.post("/api/queue/cancel", json={"generationIds": [waiting_b["id"]]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [g["id"] for g in body["canceled"]] == [waiting_b["id"]]
    assert body["canceled"][0]["status"] == "canceled"
    assert (
        body["creditRefunded"]
        == 3 * waiting_b["creditCost"]
        == body["canceled"][0]["creditRefunded"]
    )
    assert body["creditBalance"] == client.balance() == balance + body["creditRefunded"]
    assert refunds(waiting_b["id"]) == [body["creditRefunded"]]
    line = queue(client)
    assert [(g["id"], g["position"]) for g in line["waiting"]] == [(waiting_a["id"], 1)]
    assert [g["id"] for g in line["running"]] == [running["id"]]

    response = client.post("/api/queue/cancel", json={})  # everything unfinished
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(g["id"] for g in body["canceled"]) == sorted([running["id"], waiting_a["id"]])
    assert body["finishedFirst"] == []
    wait_for(lambda: not client.app.state.runtime.running)  # the worker let go of the batch
    delivered = client.generation(running["id"])["countCompleted"]
    assert delivered < 8
    assert refunds(running["id"]) == [(8 - delivered) * running["creditCost"]]
    assert refunds(waiting_a["id"]) == [2 * waiting_a["creditCost"]]
    assert body["creditRefunded"] == sum(refunds(running["id"]) + refunds(waiting_a["id"]))
    assert client.balance() == body["creditBalance"]
    assert client.balance() == balance_before - delivered * running["creditCost"]
    assert queue(client) == {"running": [], "waiting": [], "creditRefundable": 0}
    assert ledger_problems() == []
    nothing = client.post("/api/queue/cancel", json={})
    assert nothing.status_code == 200
    assert nothing.json()["canceled"] == [] and nothing.json()["creditRefunded"] == 0


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"generationIds": ["no-such-generation"]}, 404, "no-such-generation"),
        ({"generationIds": []}, 422, "empty"),
        ({"generationIds": "all"}, 400, "generationIds"),
        ({"generationIds": [7]}, 400, "generationIds"),
        ({"generationIds": ["x" * 65]}, 400, "generationIds"),
        ({"ids": []}, 400, "ids"),
        ([], 400, "body"),
    ],
)
def test_bad_cancel_requests_change_nothing(held, body, status, words):
    client, running = held
    waiting = client.generate(running["projectId"], count=1)["generation"]
    balance = client.balance()
    response = client.post("/api/queue/cancel", json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert [g["id"] for g in queue(client)["waiting"]] == [waiting["id"]]
    assert client.balance() == balance
    client.post("/api/queue/cancel", json={})


def test_a_finished_id_refuses_the_whole_cancel(held):
    client, running = held
    done = client.generate(running["projectId"], count=1)["generation"]
    client.post("/api/queue/cancel", json={"generationIds": [done["id"]]})
    assert client.generation(done["id"])["status"] in TERMINAL
    waiting = client.generate(running["projectId"], count=1)["generation"]
    balance = client.balance()
    response = client.post("/api/queue/cancel", json={"generationIds": [waiting["id"], done["id"]]})
    assert response.status_code == 409, response.text
    assert done["id"] in response.json()["error"]["message"]
    assert client.generation(waiting["id"])["status"] == "pending"
    assert client.balance() == balance
    client.post("/api/queue/cancel", json={})


def test_an_empty_queue(client):
    assert queue(client) == {"running": [], "waiting": [], "creditRefundable": 0}


def test_the_delete_notice_counts_only_the_refunds_the_delete_caused(held):
    """Rough edge 4: a refund from before the delete (a canceled generation) is not the delete's."""
    client, running = held
    project_id = running["projectId"]
    earlier = client.generate(project_id, count=2)["generation"]
    client.post("/api/queue/cancel", json={"generationIds": [earlier["id"]]})
    assert refunds(earlier["id"]) == [2 * earlier["creditCost"]]
    assert client.delete(f"/api/apps/avatar-creator/projects/{project_id}").is_success
    caused = sum(refunds(running["id"]))
    assert caused > 0
    page = client.get(f"/projects?deleted={project_id}", headers={"accept": "text/html"}).text
    assert f"Deleted “Running”. {caused} credits were refunded for unfinished images." in page
    assert f'hx-post="/ui/projects/{project_id}/restore"' in page  # the Undo
    client.post(f"/ui/projects/{project_id}/restore", headers={"hx-request": "true"})
    again = client.get(f"/projects?deleted={project_id}", headers={"accept": "text/html"}).text
    assert "Deleted “Running”" not in again  # restored: a stale link shows no notice
