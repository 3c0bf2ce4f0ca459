"""Wall-clock jumps (a laptop waking from sleep, a clock set back) neither fail nor stall a job."""

from __future__ import annotations

import datetime as dt

from conftest import API, make_settings, wait_for

from lumiku_local import clock, failpoints, generations
from lumiku_local.doctor import ledger_problems
from lumiku_local.engines import PermanentEngineError, engine_for
from lumiku_local.models import AvatarGeneration


def test_a_day_jumping_past_mid_batch_does_not_time_the_batch_out(servers):
    """The Instant model's deadline is 60 s of running time: a day of sleep is not running."""
    lumiku = servers("engine.generate=jump(86400)@2*1")  # the second image: the laptop wakes
    status, project = lumiku.request("POST", f"{API}/projects", {"name": "sleepy"})
    assert status == 201
    status, body = lumiku.request(
        "POST", f"{API}/projects/{project['id']}/avatars/generate", {"prompt": "owl", "count": 4}
    )
    assert status == 202, body
    generation_id = body["generation"]["id"]
    done = lumiku.wait_generation(generation_id)
    assert done["status"] == "completed", done["errorMessage"]
    assert done["countCompleted"] == 4 and done["creditRefunded"] == 0
    assert lumiku.get("/api/me")["creditBalance"] == 996


def test_a_clock_set_back_an_hour_during_a_retry_backoff_does_not_stall_it(app_client, tmp_path):
    client = app_client(make_settings(tmp_path / "home", retry_backoff_seconds=1.5))
    failpoints.configure("engine.generate=error*1")
    generation_id = client.generate(client.project(), count=2)["generation"]["id"]
    wait_for(  # the first attempt failed; the retry waits out its backoff
        lambda: (g := client.generation(generation_id))["status"] == "pending" and g["attempts"]
    )
    clock.jump(-3600)  # during the 1.5 s backoff, the user sets the clock back an hour
    done = client.wait_generation(generation_id, timeout=20)
    assert done["status"] == "completed", done["errorMessage"]
    assert done["countCompleted"] == 2
    assert ledger_problems() == []


def test_a_retry_scheduled_before_a_restart_with_the_clock_set_back_is_due(app_client, settings):
    """Across a restart no timer remains: the row's time decides, bounded by its backoff."""
    client = app_client()
    generation_id = client.generate(client.project(), count=1)["generation"]["id"]
    client.wait_generation(generation_id)
    runtime = client.app.state.runtime
    row = AvatarGeneration.get_by_id(generation_id)
    row.error_attempts = 1
    now = clock.utcnow()
    row.next_attempt_at = now + dt.timedelta(hours=1)  # scheduled, then the clock went back
    assert generations.retry_due(runtime, row, now)
    row.next_attempt_at = now + dt.timedelta(seconds=settings.retry_backoff_seconds / 2)
    assert not generations.retry_due(runtime, row, now)  # a real backoff still waits
    row.next_attempt_at = now - dt.timedelta(seconds=1)
    assert generations.retry_due(runtime, row, now)


def test_a_heartbeat_from_the_future_is_no_proof_of_life(app_client):
    client = app_client()
    runtime = client.app.state.runtime
    now = clock.utcnow()
    lease = runtime.settings.lease_seconds
    assert not generations.lease_expired(runtime, now - dt.timedelta(seconds=lease / 2), now)
    assert generations.lease_expired(runtime, now - dt.timedelta(seconds=lease * 2), now)
    assert generations.lease_expired(runtime, now + dt.timedelta(hours=1), now)


def test_failed_attempts_are_counted_truly(client):
    failpoints.configure("engine.generate=error")
    generation_id = client.generate(client.project(), count=1)["generation"]["id"]
    done = client.wait_generation(generation_id)
    assert done["status"] == "failed"
    assert done["attempts"] == 3 and "after 3 attempts" in done["errorMessage"]
    assert done["creditRefunded"] == 1
    assert ledger_problems() == []


def test_an_error_retrying_cannot_fix_fails_at_once(client, monkeypatch):
    calls = []

    def refuse(job, on_image, on_progress, cancelled):
        calls.append(job.generation_id)
        raise PermanentEngineError("Invalid options: the style does not take this seed.")

    monkeypatch.setattr(engine_for("dicebear"), "generate", refuse)
    generation_id = client.generate(client.project(), count=2)["generation"]["id"]
    done = client.wait_generation(generation_id)
    assert done["status"] == "failed"
    assert done["errorMessage"] == "Invalid options: the style does not take this seed."
    assert calls == [generation_id] and done["attempts"] == 1
    assert done["creditRefunded"] == 2
