"""create_app(settings) -> Litestar: the server, its embedded worker and nothing at import time."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router

from . import (
    __version__,
    data_folder,
    failpoints,
    generations,
    migrations,
    orphans,
    trash,
    web,
    workers,
)
from .api import (
    admin,
    avatars,
    credits,
    events,
    health,
    models,
    poses,
    projects,
    strict_input,
)
from .api import exports as export_routes
from .api import generations as generation_routes
from .api import queue as queue_routes
from .api import reuse as reuse_routes
from .api import settings as settings_routes
from .api import (
    trash as trash_routes,
)
from .api.methods import RouterWithOptions, with_options
from .api.schema_page import SchemaPage
from .config import Settings
from .db import connection, open_for, tuples
from .downloads import DownloadManager
from .engines import register as register_engine
from .engines.dicebear import DiceBearEngine
from .engines.diffusers import DiffusersEngine
from .engines.remote import RemoteEngine
from .errors import LumikuError
from .events import EventBus, RedisRelay
from .machine_failures import FailureMemory, noticed
from .models import AIModel, AvatarGeneration, User
from .queue import JobQueue
from .runtime import Runtime
from .safety import ensure_access_token, guard
from .storage import too_large

log = logging.getLogger("lumiku")
GIL_SWITCH_SECONDS = 0.001


def assets_dir() -> Path:
    """`assets/` beside the package in a checkout, or `_assets` inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_assets", here.parent / "assets"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("Lumiku's assets folder is missing; reinstall Lumiku.")


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def _lumiku_error(_: Request, exc: LumikuError) -> Response[dict[str, Any]]:
    return _error(exc.status_code, exc.code, exc.message)


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
}


def _http_error(request: Request, exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    headers = {name.title(): value for name, value in (exc.headers or {}).items()}
    if allow := headers.get("Allow"):  # a 405's: the methods this address takes
        headers["Allow"] = ", ".join(sorted(method.strip() for method in allow.split(",")))
    if status in (404, 405) and web.wants_html(request):  # a person typed or followed a link
        return web.html_error(request, status, "There is nothing at this address.", headers)
    if isinstance(exc, ValidationException):  # before the 400s: it is one, and names the field
        return _error(400, "invalid_input", strict_input.describe(exc, request))
    message = exc.detail
    if status == 404 and message in ("Not Found", ""):
        message = "There is nothing at this address."
    if status == 400:
        if "multipart" in message:
            message = "Attach an image in the form field `file` (PNG, JPEG or WebP)."
        elif message.startswith("JSON is malformed"):
            message = f"The request body is not valid JSON ({message})."
        return _error(400, "invalid_input", message)
    if status == 413:
        message = too_large(request.app.state.runtime.settings.max_upload_bytes)
    if status == 405 and (allow := headers.get("Allow")):
        message = f"This address does not take {request.method}; it takes {allow}."
    return _error(status, HTTP_CODES.get(status, "http_error"), message, headers)


def _undecodable(_: Request, exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, UnicodeDecodeError):
        message = "Form fields must be UTF-8 text; attach the image as a file with a file name."
    else:  # OverflowError: a number SQLite cannot store
        message = "A number in the request is far too large."
    return _error(400, "invalid_input", message)


def _internal_error(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    if failure := noticed(request.app.state, exc):  # not a bug: say what to do
        return _error(failure.status_code, failure.code, failure.message)
    log.exception("unhandled error", exc_info=exc)
    return _error(
        500,
        "internal_error",
        "Something went wrong inside Lumiku. It has been logged; please try again.",
    )


async def _plain_asset_path(request: Request) -> None:
    """Only a plain path reaches the file system: a NUL byte or an overlong name is refused."""
    path = request.url.path
    if "\x00" in path:
        raise NotFoundException()
    if len(path) > 1024 or any(len(part.encode()) > 255 for part in path.split("/")):
        raise HTTPException(status_code=414, detail="The address is too long.")


async def _forget_failures_after_a_change(message: Any, scope: Any) -> None:
    """A change that worked shows the disk and the database take writes again (see /health)."""
    if (
        message["type"] == "http.response.start"
        and scope.get("method") not in ("GET", "HEAD", "OPTIONS")
        and message["status"] < 400
    ):
        scope["litestar_app"].state.machine_failures.clear()


SWEEPER = "files-sweep"  # the lease of the one process that tidies a shared files folder


def open_data(settings: Settings, runtime: Runtime) -> None:
    """Open the database, migrate (one process at a time), seed, and tidy the files folder
    where that is safe: always on one machine; on several, in the one process holding the
    sweep's lease, and only files older than the jobs' lease (a worker elsewhere may be
    writing one whose row has not committed yet)."""
    if settings.failpoints:
        failpoints.configure(settings.failpoints)
    # The server's threads mostly wait (on render processes, SQLite, sockets): one that wakes
    # should get the GIL within a millisecond, not Python's 5 ms, or two workers queue behind
    # each other's hand-offs (Instant images/s with 2 workers: 47 -> 61 here).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    if not settings.uses_postgres:
        data_folder.check(settings)  # a lost or damaged database is never a silent first run
    open_for(settings)
    with connection():
        migrations.migrate()
        migrations.reseed_catalog()
        runtime.user_id = User.select().order_by(User.id).first().id
        if settings.embedded:  # nothing is writing yet; unnamed files are kept aside
            trash.empty_expired(runtime)  # what was deleted trash_days ago lets go of its files
            orphans.sweep(settings.files_dir)
        elif workers.hold(SWEEPER, runtime.boot_id, settings.lease_seconds):
            trash.empty_expired(runtime)
            orphans.sweep(settings.files_dir, min_age_seconds=settings.lease_seconds)
            workers.release(SWEEPER, runtime.boot_id)


def _start(settings: Settings, state: State) -> None:
    """Open the data, resume downloads, and start the worker (run in a thread at startup)."""
    runtime: Runtime = state.runtime
    open_data(settings, runtime)
    with connection():
        state.downloads.resume_interrupted()
    state.job_queue.start()


def _model_of(generation_id: str) -> str | None:
    """The model a generation runs on: which Redis list its task goes to."""
    with connection():
        row = AvatarGeneration.get_or_none(AvatarGeneration.id == generation_id)
        return None if row is None else row.model_id


def _catalog_keys() -> list[str]:
    return [key for (key,) in tuples(AIModel.select(AIModel.key))]


@dataclass
class Core:
    """What a server and a `lumiku worker` process share: the runtime, the engines and the
    job queue (whose worker threads run only where settings.run_workers)."""

    runtime: Runtime  # its settings are the process's
    job_queue: JobQueue
    diffusion: DiffusersEngine
    dicebear: DiceBearEngine
    relay: RedisRelay | None

    def stop(self) -> None:
        self.runtime.stopping.set()
        self.job_queue.stop()
        self.dicebear.close()
        self.diffusion.unload()
        if self.relay is not None:
            self.relay.close()


def build_core(settings: Settings, kind: str, bus: EventBus | None = None) -> Core:
    """`kind`: "embedded" (one machine), "server" or "worker" (several). `bus`: a server's
    event bus; on Redis every process's events reach it through the relay."""
    runtime = Runtime(settings=settings)
    me = workers.Me(
        boot_id=runtime.boot_id,
        kind=kind,
        threads=settings.workers if settings.run_workers else 0,
        models=tuple(sorted(settings.model_filter)),
    )
    job_queue = JobQueue(
        settings,
        run_task=lambda generation_id: generations.run_generation(runtime, generation_id),
        reconcile=lambda queued: generations.reconcile(runtime, queued),
        me=me,
        route=_model_of,
        model_keys=_catalog_keys,
    )
    runtime.enqueue_fn = job_queue.enqueue
    relay = RedisRelay(settings.queue_url, bus) if settings.uses_redis else None
    if relay is not None:
        runtime.publish_fn = relay.publish
    elif bus is not None:
        runtime.publish_fn = bus.publish
    diffusion = DiffusersEngine(settings)
    register_engine(diffusion)
    # a render process per worker thread
    dicebear = DiceBearEngine(processes=settings.workers if settings.run_workers else 1)
    register_engine(dicebear)
    register_engine(RemoteEngine(settings))  # Hugging Face Inference Providers: no GPU here
    return Core(runtime, job_queue, diffusion, dicebear, relay)


def create_app(settings: Settings) -> Litestar:
    """The whole app for these settings; nothing happens until it starts."""
    bus = EventBus()
    core = build_core(settings, "embedded" if settings.embedded else "server", bus)
    runtime, job_queue = core.runtime, core.job_queue
    downloads = DownloadManager(settings, runtime, core.diffusion)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        bus.bind(asyncio.get_running_loop())
        if core.relay is not None:
            await asyncio.to_thread(core.relay.start)
        await asyncio.to_thread(_start, settings, app.state)
        try:
            yield
        finally:
            runtime.stopping.set()
            await asyncio.to_thread(downloads.stop)
            await asyncio.to_thread(core.stop)

    token = None if settings.is_loopback else ensure_access_token(settings)
    static = create_static_files_router(
        path="/assets",
        directories=[assets_dir()],
        include_in_schema=False,
        before_request=_plain_asset_path,
        router_class=RouterWithOptions,
    )
    openapi = OpenAPIConfig(
        title="Lumiku Local",
        version=__version__,
        path="/schema",
        render_plugins=[SchemaPage()],
    )
    route_handlers: list[Any] = [web.router(), static]
    api_modules = (
        health,
        credits,
        models,
        projects,
        generation_routes,
        poses,
        avatars,
        export_routes,
        events,
        admin,
        settings_routes,
        reuse_routes,
        trash_routes,
        queue_routes,
    )
    route_handlers += with_options([route for module in api_modules for route in module.routes])
    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        state=State(
            {
                "runtime": runtime,
                "job_queue": job_queue,
                "event_bus": bus,
                "downloads": downloads,
                "machine_failures": FailureMemory(),
            }
        ),
        before_request=strict_input.check_request,
        before_send=[_forget_failures_after_a_change],
        exception_handlers={
            LumikuError: _lumiku_error,
            HTTPException: _http_error,
            UnicodeDecodeError: _undecodable,
            OverflowError: _undecodable,
            Exception: _internal_error,
        },
        openapi_config=openapi,
        template_config=web.template_config(),
        request_max_body_size=settings.max_upload_bytes + 1024 * 1024,
        debug=False,
        logging_config=None,
    )
    return guard(app, settings, token)  # before routing: no 404 or 405 reaches a stranger


__all__ = ["create_app", "assets_dir"]
