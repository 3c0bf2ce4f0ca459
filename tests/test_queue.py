"""The queue: instant wake-up, and the database (not the queue) as the source of truth."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from conftest import TERMINAL, sibling_generation, wait_for

from lumiku_local import failpoints
from lumiku_local.db import connection, utcnow
from lumiku_local.models import AvatarGeneration
from lumiku_local.queue import WakingSqliteStorage

pytestmark = pytest.mark.backends


@pytest.mark.sqlite_only  # the SQLite queue's own wake-up; Redis blocks in BRPOP
def test_blocked_dequeue_wakes_on_enqueue(tmp_path):
    storage = WakingSqliteStorage("test", filename=str(tmp_path / "q.db"), wake_timeout=60)
    got: list[bytes | None] = []
    waiter = threading.Thread(target=lambda: got.append(storage.dequeue()))
    waiter.start()
    wait_for(lambda: storage.polled_at)  # the waiter is inside dequeue, blocked
    storage.enqueue(b"job-1")
    waiter.join(10)  # far below the 60 s wake timeout: the enqueue woke it
    assert not waiter.is_alive() and got == [b"job-1"]


@pytest.mark.sqlite_only
def test_idle_dequeue_returns_after_the_wake_timeout(tmp_path):
    storage = WakingSqliteStorage("test", filename=str(tmp_path / "q.db"), wake_timeout=0.05)
    assert storage.dequeue() is None  # lets Huey's loop check its stop flag


def test_jobs_survive_a_wiped_queue(app_client, settings):
    """ORIGIN: 'the queue had been cleaned on restart; nothing reconciled' — here it cannot."""
    client = app_client()
    failpoints.configure("engine.generate=delay(0.2)")
    project = client.project()
    first = client.generate(project, count=8)["generation"]
    second = client.generate(project, count=2)["generation"]
    client.__exit__(None, None, None)  # graceful stop while work is unfinished
    failpoints.configure("")
    if settings.uses_redis:
        import redis

        with redis.Redis.from_url(settings.queue_url) as queue:
            queue.flushdb()
    for suffix in ("", "-wal", "-shm"):
        settings.queue_path.with_name(settings.queue_path.name + suffix).unlink(missing_ok=True)
    restarted = app_client()
    for generation in (first, second):
        done = restarted.wait_generation(generation["id"])
        assert done["status"] == "completed", done
        assert done["countCompleted"] == generation["countRequested"]


def test_orphaned_processing_job_of_a_dead_boot_is_resumed(app_client):
    client = app_client()
    failpoints.configure("engine.generate=delay(0.3)")
    generation = client.generate(client.project(), count=4)["generation"]
    wait_for(lambda: client.generation(generation["id"])["countCompleted"] >= 1)
    client.__exit__(None, None, None)
    failpoints.configure("")
    with connection():  # given back before the restart rebinds the database (PostgreSQL's pool)
        row = AvatarGeneration.get_by_id(generation["id"])
        if row.status == "processing":  # stopped mid-job, as a crash would leave it
            assert row.boot_id
        AvatarGeneration.update(status="processing", boot_id="an-old-boot").where(
            AvatarGeneration.id == generation["id"]
        ).execute()
    restarted = app_client()
    done = restarted.wait_generation(generation["id"])
    assert done["status"] == "completed"
    assert sorted(a["variationKey"] for a in done["avatars"]) == ["v0", "v1", "v2", "v3"]


def test_periodic_reconciler_takes_over_an_expired_lease(app_client, settings):
    client = app_client(settings.with_changes(reconcile_seconds=0.2, lease_seconds=1))
    generation = client.generate(client.project(), count=1)["generation"]
    client.wait_generation(generation["id"])
    # a row that looks like a job whose worker vanished without a trace: no task, stale lease
    stale = utcnow() - dt.timedelta(seconds=60)
    orphan = sibling_generation(
        generation["id"],
        count=2,
        status="processing",
        boot_id=client.app.state.runtime.boot_id,
        heartbeat_at=stale,
        started_at=stale,
    )
    done = wait_for(
        lambda: (g := client.generation(orphan.id))["status"] in TERMINAL and g, timeout=15
    )
    assert done["status"] == "completed" and done["countCompleted"] == 2


def test_graceful_stop_pauses_a_running_job_and_the_next_start_resumes_it(app_client):
    client = app_client()
    failpoints.configure("engine.generate=delay(0.5)")
    generation = client.generate(client.project(), count=8)["generation"]
    wait_for(lambda: client.generation(generation["id"])["countCompleted"] >= 1)
    client.__exit__(None, None, None)  # stops at the next image instead of finishing the batch
    with connection():
        paused = AvatarGeneration.get_by_id(generation["id"])
    assert paused.status == "processing" and paused.count_completed < 8
    failpoints.configure("")
    restarted = app_client()
    done = restarted.wait_generation(generation["id"])
    assert done["status"] == "completed" and done["countCompleted"] == 8
    assert done["creditRefunded"] == 0
