"""Health: the server, its worker, and the model catalog, each in the shape operators know."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from .. import machine_failures
from ..generations import counts_by_status, is_installed
from ..models import AIModel
from ..queue import WorkerHealth
from ..workers import live as live_workers
from . import blocking


class HealthReport(msgspec.Struct):
    status: str
    problems: list[str] = []


class ModelsHealth(msgspec.Struct, rename="camel"):
    status: str
    model_count: int
    installed_count: int


DEGRADED = ResponseSpec(
    HealthReport,
    description="`degraded`: each problem says what is wrong and what to do.",
    generate_examples=False,
)
NO_MODEL = ResponseSpec(
    ModelsHealth, description="`unhealthy`: no enabled model is installed.", generate_examples=False
)


def _problems(state: State) -> list[str]:
    problems = list(state.job_queue.health().problems)
    if not AIModel.select().where(AIModel.enabled == True).exists():  # noqa: E712
        problems.append(
            "the model catalog is empty or every model is disabled: restart Lumiku to restore it"
        )
    problems += machine_failures.probe(state.runtime.settings)
    failure = state.machine_failures.recent()  # what a request met that a probe may not see
    if failure is not None and failure.message not in problems:
        problems.append(failure.message)
    return problems


@get("/health", tags=["health"], responses={503: DEGRADED})
@blocking
def health(state: State) -> Response[dict[str, Any]]:
    """200 when the worker is alive, a model is available and Lumiku can save (disk space, a
    writable data folder, the database's write lock), else 503 with the problems."""
    problems = _problems(state)
    if problems:
        return Response({"status": "degraded", "problems": problems}, status_code=503)
    return Response({"status": "ok"}, status_code=200)


def last_heartbeat(state: State, worker: WorkerHealth) -> dt.datetime | None:
    """The latest sign of life: the consumer's own beat or a worker's during a job (UTC)."""
    beats = [b for b in (worker.last_heartbeat, state.runtime.last_heartbeat) if b]
    return dt.datetime.fromtimestamp(max(beats), dt.UTC) if beats else None


@get("/api/health/workers", tags=["health"])
@blocking
def workers(state: State) -> dict[str, Any]:
    """Each app's worker status, and `processes`: every live process of this Lumiku (this one,
    other servers, `lumiku worker`s on any machine) from the worker table."""
    worker = state.job_queue.health()
    last = last_heartbeat(state, worker)
    processes = live_workers(state.runtime.settings.lease_seconds)
    mine = state.runtime.boot_id
    others = sum(process["threads"] for process in processes if process["bootId"] != mine)
    threads = others + worker.workers
    online = (worker.alive and worker.workers_alive > 0) or others > 0

    def entry(app_id: str) -> dict[str, Any]:
        counts = counts_by_status(app_id)
        return {
            "status": "online" if online else "offline",
            "lastHeartbeat": last.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            if last
            else None,
            "queueLength": counts.get("pending", 0),
            "processingCount": counts.get("processing", 0),
            "workers": max(threads, worker.workers),
            "workersAlive": worker.workers_alive + max(others, 0),
            "problems": worker.problems,
        }

    # one worker runs both apps' batches; each entry counts its own app's
    return {
        "avatar-generator": entry("avatar-creator"),
        "pose-generator": entry("pose-generator"),
        "processes": processes,
    }


@get("/api/apps/avatar-creator/health/models", tags=["health"], responses={503: NO_MODEL})
@blocking
def models_health() -> Response[dict[str, Any]]:
    models = list(AIModel.select().where(AIModel.enabled == True))  # noqa: E712
    installed = sum(1 for model in models if is_installed(model))
    healthy = installed > 0
    return Response(
        {
            "status": "healthy" if healthy else "unhealthy",
            "modelCount": len(models),
            "installedCount": installed,
        },
        status_code=200 if healthy else 503,
    )


routes = [health, workers, models_health]
