"""Model downloads as background jobs: progress you can see, cancel, resume after a restart."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import hub_download
from .catalog import REMOTE_PROVIDER
from .config import Settings
from .db import connection, iso, utcnow
from .engines.diffusers import DiffusersEngine, model_files, repos_of
from .errors import Conflict, InvalidInput, LumikuError, NotFound
from .models import AIModel, ModelDownload
from .runtime import Runtime

log = logging.getLogger("lumiku.downloads")

PUBLISH_EVERY = 0.2  # seconds between progress events
FREE_SPACE_MARGIN = 512 * 1024 * 1024  # keep this much free beyond the model itself


@dataclass
class _Active:
    model_key: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    progress: hub_download.DownloadProgress | None = None
    published_at: float = 0.0
    stopping: bool = False  # cancelled by shutdown: stays `downloading`, resumes next start
    finished: bool = False  # its final event went out: no progress event may follow it


class DownloadManager:
    """One background thread per model download; the database row is what the UI reads."""

    def __init__(self, settings: Settings, runtime: Runtime, engine: DiffusersEngine) -> None:
        self.settings = settings
        self.runtime = runtime
        self.engine = engine
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()
        # Download events are computed and published under this lock, so the last one out is
        # the last one computed: a page never ends on a stale "downloading" or "not installed".
        self._events_lock = threading.Lock()

    # ------------------------------------------------------------ commands

    def start(self, model_key: str) -> ModelDownload:
        model = _downloadable(model_key)
        with self._lock:
            if model_key in self._active:
                return ModelDownload.get_by_id(model_key)
            if self.engine.is_installed(model.capabilities):
                raise Conflict(f"{model.name} is already installed.", code="already_installed")
            now = utcnow()
            ModelDownload.insert(
                model_key=model_key,
                status="downloading",
                bytes_done=0,
                bytes_total=int(model.capabilities.get("sizeBytes") or 0),
                started_at=now,
                updated_at=now,
            ).on_conflict(
                conflict_target=[ModelDownload.model_key],
                update={
                    ModelDownload.status: "downloading",
                    ModelDownload.error_message: None,
                    ModelDownload.started_at: now,
                    ModelDownload.updated_at: now,
                    ModelDownload.finished_at: None,
                },
            ).execute()
            active = _Active(model_key)
            active.thread = threading.Thread(
                target=self._run,
                args=(active, model.capabilities, model.name),
                name=f"download-{model_key}",
                daemon=True,
            )
            self._active[model_key] = active
            active.thread.start()
        self._publish(model_key)
        return ModelDownload.get_by_id(model_key)

    def cancel(self, model_key: str) -> ModelDownload:
        _downloadable(model_key)
        with self._lock:
            active = self._active.get(model_key)
        if active is None:
            raise Conflict("No download of this model is running.", code="not_downloading")
        active.cancel.set()
        if active.thread is not None:
            active.thread.join(30)
        return ModelDownload.get_by_id(model_key)

    def remove_files(self, model_key: str) -> int:
        """Delete a model's own files (see _own_repos). Refused while a download of the same
        files runs or the model is generating."""
        model = _downloadable(model_key)
        repos = self._unshared(model, _own_repos(model))
        with self._lock:
            busy = [
                key
                for key, active in self._active.items()
                if set(repos) & set(repos_of(AIModel.get_by_id(key).capabilities))
            ]
            if busy:
                raise Conflict("These files are downloading: cancel the download first.")
            if not self.engine.release(repos):
                raise Conflict("The model is generating right now; delete it when it is done.")
            freed = sum(
                hub_download.remove_from_cache(repo, cache_dir=self.engine.cache_dir)
                for repo in repos
            )
        sharing = [
            m.key
            for m in AIModel.select().where(AIModel.provider == "diffusers")
            if set(repos) & set(repos_of(m.capabilities or {}))
        ]
        ModelDownload.delete().where(ModelDownload.model_key.in_(sharing)).execute()
        self.engine.forget_install_state()
        for key in sharing:
            self._publish(key)
        return freed

    def _unshared(self, model: AIModel, repos: list[str]) -> list[str]:
        """`repos` less those another installed model also needs (the two face models share
        their adapter and image encoder); 409 when nothing would be left to delete."""
        needed_by: dict[str, list[str]] = {}
        for other in AIModel.select().where(
            (AIModel.provider == "diffusers") & (AIModel.key != model.key)
        ):
            shared = set(repos) & set(repos_of(other.capabilities or {}))
            if shared and self.engine.is_installed(other.capabilities or {}):
                for repo in shared:
                    needed_by.setdefault(repo, []).append(other.name)
        kept = [repo for repo in repos if repo not in needed_by]
        if not kept:
            others = sorted({name for names in needed_by.values() for name in names})
            raise Conflict(
                f"{model.name}'s files are also used by {', '.join(others)}, which is "
                "installed. Delete that model first; deleting both frees the space.",
                code="files_shared",
            )
        if len(kept) < len(repos):
            log.info("%s: keeping %s, used by other installed models", model.key, needed_by)
        return kept

    def resume_interrupted(self) -> list[str]:
        """Downloads that were running when Lumiku stopped or crashed continue where they were."""
        keys = [
            row.model_key
            for row in ModelDownload.select().where(ModelDownload.status == "downloading")
        ]
        resumed = []
        for key in keys:
            try:
                self.start(key)
                resumed.append(key)
            except Conflict:  # it finished just before the stop: the files are all there
                ModelDownload.update(status="completed", finished_at=utcnow()).where(
                    ModelDownload.model_key == key
                ).execute()
            except LumikuError as exc:
                ModelDownload.update(status="failed", error_message=exc.message).where(
                    ModelDownload.model_key == key
                ).execute()
        return resumed

    def stop(self) -> None:
        """Shutdown: interrupt transfers but keep them `downloading` so the next start resumes."""
        with self._lock:
            active = list(self._active.values())
        for item in active:
            item.stopping = True
            item.cancel.set()
        for item in active:
            if item.thread is not None:
                item.thread.join(10)

    # ------------------------------------------------------------ the background job

    def _run(self, active: _Active, capabilities: dict[str, Any], name: str) -> None:
        with connection():
            status, message = "completed", None
            try:
                self._transfer(active, capabilities)
            except hub_download.DownloadCancelled:
                status = "downloading" if active.stopping else "canceled"
                message = None if active.stopping else "Download canceled."
            except (
                hub_download.GatedModelError,
                hub_download.DiskFullError,
                hub_download.HubUnreachable,  # says what to do in full, for any model
            ) as exc:
                status, message = "failed", str(exc)
            except hub_download.DownloadFailed as exc:
                status, message = "failed", f"Downloading {name} failed: {exc}"
            except Exception as exc:  # the thread must always record an outcome
                log.exception("download of %s failed", active.model_key)
                status, message = "failed", f"Downloading {name} failed: {exc}"
            progress = active.progress
            values: dict[str, Any] = {
                "status": status,
                "error_message": message,
                "updated_at": utcnow(),
                "finished_at": None if status == "downloading" else utcnow(),
            }
            if progress is not None:
                values.update(
                    bytes_done=progress.bytes_done,
                    bytes_total=progress.bytes_total or 0,
                    bytes_per_second=0.0,
                )
            try:
                ModelDownload.update(**values).where(
                    ModelDownload.model_key == active.model_key
                ).execute()
            finally:  # never left looking like a running download
                with self._lock:
                    self._active.pop(active.model_key, None)
                self.engine.forget_install_state()
            self._publish(active.model_key, final_of=active)

    def _transfer(self, active: _Active, capabilities: dict[str, Any]) -> None:
        def on_progress(progress: hub_download.DownloadProgress) -> None:
            # runs on the transfer threads: memory only (the API reads it live), no database
            active.progress = progress
            now = time.monotonic()
            if now - active.published_at >= PUBLISH_EVERY:
                active.published_at = now
                self._publish_progress(active, progress)

        common: dict[str, Any] = {
            "cache_dir": self.engine.cache_dir,
            "endpoint": self.settings.hf_endpoint or None,
            "on_progress": on_progress,
            "cancel": active.cancel,
            "min_free_bytes": FREE_SPACE_MARGIN,
        }
        # the pipeline and its add-ons (LoRA, IP-Adapter and image encoder) as one download:
        # one total from the start, one progress bar
        hub_download.download_snapshots(model_files(capabilities), **common)

    # ------------------------------------------------------------ views

    def state(self, model: AIModel, installed: bool) -> dict[str, Any]:
        """What the model list shows: installed, downloading, progress (0-100) and sizes."""
        caps = model.capabilities or {}
        size = int(caps.get("sizeBytes") or 0)
        with self._lock:
            active = self._active.get(model.key)
        row = ModelDownload.get_or_none(ModelDownload.model_key == model.key)
        done = total = 0
        speed = 0.0
        if active is not None and active.progress is not None:
            done, total = active.progress.bytes_done, active.progress.bytes_total
            speed = active.progress.bytes_per_second
        elif row is not None:
            done, total, speed = row.bytes_done, row.bytes_total, row.bytes_per_second
        total = total or size
        return {
            "installed": installed,
            "downloading": active is not None,
            "progress": 100.0 if installed else round(100.0 * done / total, 1) if total else 0.0,
            "sizeBytes": total if model.provider == "diffusers" else 0,
            # why it could not make images here even once downloaded (no torch), or None
            "cannotRun": self.engine.unavailable_reason()
            if model.provider == "diffusers"
            else None,
            "download": None
            if row is None
            else {
                "status": "downloading" if active is not None else row.status,
                "bytesDone": done,
                "bytesTotal": total,
                "bytesPerSecond": round(speed, 1),
                "errorMessage": row.error_message,
                "startedAt": iso(row.started_at),
                "finishedAt": iso(row.finished_at),
            },
        }

    def _publish(self, model_key: str, final_of: _Active | None = None) -> None:
        """The model's state as it is now; `final_of`: the last event of that download."""
        with self._events_lock:
            if final_of is not None:
                final_of.finished = True
            model = AIModel.get_or_none(AIModel.key == model_key)
            if model is None:
                return
            installed = self.engine.is_installed(model.capabilities)
            self.runtime.publish(
                {"type": "download", "modelKey": model_key, **self.state(model, installed)}
            )

    def _publish_progress(self, active: _Active, progress: hub_download.DownloadProgress) -> None:
        total = progress.bytes_total or 1
        event = {
            "type": "download",
            "modelKey": active.model_key,
            "installed": False,
            "downloading": True,
            "progress": round(100.0 * progress.bytes_done / total, 1),
            "sizeBytes": progress.bytes_total,
            "download": {
                "status": "downloading",
                "bytesDone": progress.bytes_done,
                "bytesTotal": progress.bytes_total,
                "bytesPerSecond": round(progress.bytes_per_second, 1),
            },
        }
        with self._events_lock:
            if not active.finished:  # a transfer thread late with its news: the end is out
                self.runtime.publish(event)


def _own_repos(model: AIModel) -> list[str]:
    """What deleting `model` removes: a plain pipeline its repo; a model with add-ons (a LoRA,
    an IP-Adapter) the add-ons, and its base only when no other catalog entry is built on it
    (FLUX.1-dev and SDXL Turbo go with their own entries)."""
    caps = model.capabilities
    repos = repos_of(caps)
    if len(repos) == 1:
        return repos
    shared = any(
        (other.capabilities or {}).get("hfRepo") == caps["hfRepo"]
        for other in AIModel.select().where(
            (AIModel.provider == "diffusers") & (AIModel.key != model.key)
        )
    )
    return repos[1:] if shared else repos


def _downloadable(model_key: str) -> AIModel:
    model = AIModel.get_or_none(AIModel.key == model_key)
    if model is None:
        raise NotFound(f"There is no model {model_key!r}.")
    if model.provider == REMOTE_PROVIDER:
        raise InvalidInput(f"{model.name} runs on Hugging Face; there is nothing to download.")
    if model.provider != "diffusers" or not (model.capabilities or {}).get("hfRepo"):
        raise InvalidInput(f"{model.name} is built in; there is nothing to download.")
    return model
