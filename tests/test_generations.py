"""The job lifecycle through the API: debit, delivery, refunds, retries, cancel, deadline."""

import io

import pytest
from conftest import API, wait_for
from PIL import Image

from lumiku_local import failpoints, generations
from lumiku_local.doctor import ledger_problems
from lumiku_local.models import CreditLedger

pytestmark = pytest.mark.backends


def ledger_for(generation_id):
    return [
        (entry.kind, entry.amount)
        for entry in CreditLedger.select()
        .where(CreditLedger.generation == generation_id)
        .order_by(CreditLedger.id)
    ]


def test_generate_debits_at_submit_and_delivers_distinct_avatars(client):
    project = client.project()
    before = client.balance()
    body = client.generate(project, count=4, seed=1234)
    assert body["message"] == "Avatar generation started"
    assert body["creditUsed"] == 4
    assert body["creditBalance"] == before - 4
    generation = body["generation"]
    assert generation["status"] == "pending"
    assert generation["modelKey"] == "avatar-creator:instant"  # the default: cheapest installed
    done = client.wait_generation(generation["id"])
    assert done["status"] == "completed"
    assert done["countRequested"] == done["countCompleted"] == 4
    assert done["progress"] == 100.0
    assert done["creditCharged"] == 4 and done["creditRefunded"] == 0
    keys = sorted(avatar["variationKey"] for avatar in done["avatars"])
    assert keys == ["v0", "v1", "v2", "v3"]
    assert sorted(avatar["seed"] for avatar in done["avatars"]) == [1234, 1235, 1236, 1237]
    images = {client.get(avatar["imageUrl"]).content for avatar in done["avatars"]}
    assert len(images) == 4
    assert client.balance() == before - 4
    assert ledger_problems() == []


def test_same_seed_gives_the_same_pixels(client):
    project = client.project()
    first = client.wait_generation(client.generate(project, seed=77)["generation"]["id"])
    second = client.wait_generation(client.generate(project, seed=77)["generation"]["id"])
    a = client.get(first["avatars"][0]["imageUrl"]).content
    b = client.get(second["avatars"][0]["imageUrl"]).content
    assert Image.open(io.BytesIO(a)).tobytes() == Image.open(io.BytesIO(b)).tobytes()


def test_style_and_size_are_applied(client):
    project = client.project()
    body = client.generate(project, style="bottts", width=128, height=96)
    done = client.wait_generation(body["generation"]["id"])
    avatar = done["avatars"][0]
    assert avatar["style"] == "bottts"
    image = Image.open(io.BytesIO(client.get(avatar["imageUrl"]).content))
    assert image.size == (128, 96) and image.format == "PNG"


def test_preset_fills_prompt_and_style(client):
    presets = client.get(f"{API}/presets").json()["presets"]
    pixel = next(p for p in presets if p["slug"] == "pixel-retro")
    body = client.generate(client.project(), prompt="", presetId=pixel["id"])
    assert body["generation"]["prompt"] == pixel["prompt"]
    assert body["generation"]["options"]["style"] == "pixel-art"


def test_bad_generate_requests_are_4xx_and_charge_nothing(client):
    project = client.project()
    before = client.balance()
    cases = [
        ({"prompt": ""}, 422, "invalid_input"),
        ({"prompt": "x", "count": 0}, 422, "invalid_input"),
        ({"prompt": "x", "count": 9}, 422, "invalid_input"),
        ({"prompt": "x", "style": "no-such-style"}, 422, "invalid_input"),
        ({"prompt": "x", "width": 5000}, 422, "invalid_input"),
        ({"prompt": "x", "seed": -1}, 422, "invalid_input"),
        ({"prompt": "x" * 2001}, 422, "invalid_input"),
        ({"prompt": "x", "count": "four"}, 400, "invalid_input"),
        ({"prompt": "x", "modelKey": "nope"}, 404, "not_found"),
        ({"prompt": "x", "presetId": 999}, 404, "not_found"),
        ({"prompt": "x", "modelKey": "avatar-creator:flux-dev-base"}, 409, "model_not_installed"),
    ]
    for body, status, code in cases:
        response = client.post(f"{API}/projects/{project}/avatars/generate", json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error["message"], body
    missing = client.post(f"{API}/projects/nope/avatars/generate", json={"prompt": "x"})
    assert missing.status_code == 404
    assert client.balance() == before
    assert client.get(f"{API}/projects/{project}/generations").json()["generations"] == []


def test_not_enough_credits_is_402_and_changes_nothing(client):
    client.patch("/api/admin/models/avatar-creator:instant", json={"creditCost": 600})
    project = client.project()
    response = client.post(
        f"{API}/projects/{project}/avatars/generate", json={"prompt": "x", "count": 2}
    )
    assert response.status_code == 402
    assert "1000" in response.json()["error"]["message"]
    assert client.balance() == 1000
    assert client.get(f"{API}/projects/{project}/generations").json()["generations"] == []


def test_disabled_model_is_409(client):
    client.patch("/api/admin/models/avatar-creator:instant", json={"enabled": False})
    response = client.post(
        f"{API}/projects/{client.project()}/avatars/generate",
        json={"prompt": "x", "modelKey": "avatar-creator:instant"},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "model_disabled"


def test_no_installed_model_is_503_with_the_fix(client):
    client.patch("/api/admin/models/avatar-creator:instant", json={"enabled": False})
    response = client.post(
        f"{API}/projects/{client.project()}/avatars/generate", json={"prompt": "x"}
    )
    assert response.status_code == 503
    assert "Instant" in response.json()["error"]["message"]


def test_transient_errors_three_attempts_then_failed_with_full_refund(client):
    failpoints.configure("engine.generate=error")
    project = client.project()
    generation = client.generate(project, count=3)["generation"]
    done = client.wait_generation(generation["id"])
    assert done["status"] == "failed"
    assert done["attempts"] == 3  # every failed attempt counts, the last one too
    assert "after 3 attempts" in done["errorMessage"]
    assert done["countCompleted"] == 0
    assert done["creditRefunded"] == 3
    assert ledger_for(generation["id"]) == [("debit", -3), ("refund", 3)]
    assert client.balance() == 1000
    assert ledger_problems() == []


def test_transient_error_then_success_keeps_images_already_made(client):
    failpoints.configure("engine.generate=error@3*1")  # the third image fails once
    generation = client.generate(client.project(), count=4)["generation"]
    done = client.wait_generation(generation["id"])
    assert done["status"] == "completed"
    assert done["attempts"] == 1
    assert sorted(a["variationKey"] for a in done["avatars"]) == ["v0", "v1", "v2", "v3"]
    assert ledger_for(generation["id"]) == [("debit", -4)]


def test_partial_batch_refunds_only_the_undelivered_part(client):
    failpoints.configure("engine.generate=error@3")  # v0, v1 delivered; the rest keeps failing
    generation = client.generate(client.project(), count=4)["generation"]
    done = client.wait_generation(generation["id"])
    assert done["status"] == "failed"
    assert done["countCompleted"] == 2
    assert done["creditRefunded"] == 2
    assert ledger_for(generation["id"]) == [("debit", -4), ("refund", 2)]
    assert client.balance() == 998
    assert ledger_problems() == []


def test_refund_happens_once(client):
    failpoints.configure("engine.generate=error")
    generation = client.generate(client.project(), count=2)["generation"]
    client.wait_generation(generation["id"])
    runtime = client.app.state.runtime
    assert generations.finish(runtime, generation["id"], "failed", "again") is False
    assert generations.finish(runtime, generation["id"], "canceled") is False
    assert ledger_for(generation["id"]) == [("debit", -2), ("refund", 2)]
    assert client.generation(generation["id"])["status"] == "failed"


def test_cancel_running_generation_refunds_the_rest(client):
    failpoints.configure("engine.generate=delay(0.3)")
    generation = client.generate(client.project(), count=8)["generation"]
    wait_for(lambda: client.generation(generation["id"])["countCompleted"] >= 1)
    response = client.post(f"{API}/generations/{generation['id']}/cancel")
    assert response.status_code == 200
    canceled = response.json()["generation"]
    assert canceled["status"] == "canceled"
    delivered = canceled["countCompleted"]
    assert 1 <= delivered < 8
    assert canceled["creditRefunded"] == 8 - delivered
    # the worker stops and adds nothing after the cancel
    wait_for(
        lambda: client.get("/api/health/workers").json()["avatar-generator"]["processingCount"] == 0
    )
    final = client.generation(generation["id"])
    assert final["status"] == "canceled" and final["countCompleted"] == delivered
    assert len(final["avatars"]) == delivered
    assert ledger_problems() == []
    again = client.post(f"{API}/generations/{generation['id']}/cancel")
    assert again.status_code == 409


def test_cancel_unknown_is_404(client):
    assert client.post(f"{API}/generations/nope/cancel").status_code == 404


def test_retry_creates_a_new_linked_generation(client):
    failpoints.configure("engine.generate=error")
    project = client.project()
    first = client.generate(project, count=2, style="micah")["generation"]
    client.wait_generation(first["id"])
    failpoints.configure("")
    response = client.post(f"{API}/generations/{first['id']}/retry")
    assert response.status_code == 202
    body = response.json()
    second = body["generation"]
    assert second["id"] != first["id"]
    assert second["retriedFromId"] == first["id"]
    assert second["options"]["style"] == "micah" and second["countRequested"] == 2
    assert body["creditUsed"] == 2
    assert client.wait_generation(second["id"])["status"] == "completed"
    assert client.generation(first["id"])["status"] == "failed"  # history is not rewritten
    assert client.balance() == 998


def test_retry_of_a_running_generation_is_409(client):
    failpoints.configure("engine.generate=delay(0.5)")
    generation = client.generate(client.project(), count=2)["generation"]
    response = client.post(f"{API}/generations/{generation['id']}/retry")
    assert response.status_code == 409


def test_deadline_fails_with_timeout_and_refund(client):
    client.patch("/api/admin/models/avatar-creator:instant", json={"deadlineSeconds": 0.5})
    failpoints.configure("engine.generate=delay(0.3)")
    generation = client.generate(client.project(), count=6)["generation"]
    done = client.wait_generation(generation["id"])
    assert done["status"] == "failed"
    assert "Timed out" in done["errorMessage"]
    assert done["countCompleted"] < 6
    assert done["creditRefunded"] == 6 - done["countCompleted"]
    assert ledger_problems() == []


def test_generation_not_found(client):
    response = client.get(f"{API}/generations/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_batch_is_the_plan_fixed_at_submit_and_older_rows_derive_it(client):
    """The lifecycle makes what the generation's plan lists; a row from before plans (m010)
    makes "v{n}" with seed + n, as it always did."""
    from lumiku_local.models import AvatarGeneration

    body = client.generate(client.project(), count=3, seed=40, name="Knight")
    done = client.wait_generation(body["generation"]["id"])
    row = AvatarGeneration.get_by_id(done["id"])
    assert row.plan == [
        {"key": "v0", "seed": 40, "label": "#1"},
        {"key": "v1", "seed": 41, "label": "#2"},
        {"key": "v2", "seed": 42, "label": "#3"},
    ]
    made = sorted((a["variationKey"], a["seed"], a["name"]) for a in done["avatars"])
    assert made == [("v0", 40, "Knight #1"), ("v1", 41, "Knight #2"), ("v2", 42, "Knight #3")]
    planned = generations.variations_of(row)
    row.plan = None
    assert generations.variations_of(row) == planned
