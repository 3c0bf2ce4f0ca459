from conftest import API, wait_for

from lumiku_local import catalog, failpoints


def test_health_ok_with_worker_running(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_workers_endpoint_has_the_original_shape(client):
    body = client.get("/api/health/workers").json()
    worker = body["avatar-generator"]
    assert worker["status"] == "online"
    assert worker["lastHeartbeat"].endswith("Z")
    assert worker["queueLength"] == 0
    assert worker["processingCount"] == 0
    assert worker["workersAlive"] == 2


def test_worker_started_and_runs_jobs_after_startup(client):
    project = client.project()
    generation = client.generate(project)["generation"]
    done = client.wait_generation(generation["id"])
    assert done["status"] == "completed"


def test_dead_worker_is_reported_degraded_then_restarted(app_client, settings):
    client = app_client(settings.with_changes(worker_restart_seconds=1.5))
    failpoints.configure("worker.dequeue=die*1")
    degraded = wait_for(
        lambda: (r := client.get("/health")).status_code == 503 and r.json(), timeout=10
    )
    assert degraded["status"] == "degraded"
    assert any("worker thread" in problem for problem in degraded["problems"])
    assert client.get("/api/health/workers").json()["avatar-generator"]["status"] == "offline"
    wait_for(lambda: client.get("/health").status_code == 200, timeout=10)
    # the replacement worker does real work
    done = client.wait_generation(client.generate(client.project())["generation"]["id"])
    assert done["status"] == "completed"


def test_models_health(client):
    body = client.get(f"{API}/health/models").json()
    catalog_size = len(catalog.ai_models())
    assert body == {"status": "healthy", "modelCount": catalog_size, "installedCount": 1}
