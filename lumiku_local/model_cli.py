"""`lumiku models list | pull KEY | rm KEY`: manage downloaded models from a terminal."""

from __future__ import annotations

import shutil
import sys
import threading
import time

from . import hub_download, migrations
from .catalog import REMOTE_PROVIDER
from .config import Settings
from .db import connection, open_for, utcnow, write_transaction
from .engines import register
from .engines.diffusers import DiffusersEngine, model_files, repos_of
from .models import AIModel, ModelDownload

GB = 1e9


def models_command(settings: Settings, action: str, key: str | None) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    open_for(settings)
    engine = DiffusersEngine(settings)
    register(engine)
    with connection():
        migrations.migrate()
        if action == "list":
            return _list(engine)
        if not key:
            print(
                f"lumiku models {action}: name a model key (see `lumiku models list`)",
                file=sys.stderr,
            )
            return 2
        model = AIModel.get_or_none(AIModel.key == key)
        if model is not None and model.provider == REMOTE_PROVIDER:
            print(
                f"lumiku: {model.name} runs on Hugging Face: there is nothing to download "
                "(it needs a Hugging Face token; see the Models page)",
                file=sys.stderr,
            )
            return 2
        if model is None or not (model.capabilities or {}).get("hfRepo"):
            print(
                f"lumiku: {key!r} is not a downloadable model; see `lumiku models list`",
                file=sys.stderr,
            )
            return 2
        if action == "pull":
            return _pull(settings, engine, model)
        return _remove(engine, model)


def _list(engine: DiffusersEngine) -> int:
    rows = AIModel.select().order_by(AIModel.sort_order)
    print(f"{'key':36} {'tier':6} {'credits':>7}  {'size':>8}  state")
    for model in rows:
        caps = model.capabilities or {}
        size = f"{caps['sizeBytes'] / GB:.1f} GB" if caps.get("sizeBytes") else "built in"
        from .generations import is_installed

        if model.provider == REMOTE_PROVIDER:  # asks no network here: the Models page does
            size, state = "remote", "on Hugging Face (needs a token and the internet)"
        else:
            state = "installed" if is_installed(model) else "not downloaded"
        if not model.enabled:
            state += " (disabled)"
        print(f"{model.key:36} {model.tier:6} {model.credit_cost:>7}  {size:>8}  {state}")
    return 0


def _bar(name: str, progress: hub_download.DownloadProgress) -> str:
    width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 60))
    total = progress.bytes_total or 1
    fraction = min(1.0, progress.bytes_done / total)
    filled = int(fraction * width)
    speed = progress.bytes_per_second
    eta = (total - progress.bytes_done) / speed if speed > 0 else 0
    return (
        f"\r{name[:20]:20} [{'#' * filled}{'-' * (width - filled)}] {fraction * 100:5.1f}% "
        f"{progress.bytes_done / GB:5.2f}/{total / GB:.2f} GB {speed / 1e6:6.1f} MB/s "
        f"eta {int(eta // 60)}m{int(eta % 60):02d}s"
    )


def _pull(settings: Settings, engine: DiffusersEngine, model: AIModel) -> int:
    caps = model.capabilities
    if engine.is_installed(caps):
        print(f"{model.name} is already installed.")
        return 0
    cancel = threading.Event()
    last_draw = 0.0

    def on_progress(progress: hub_download.DownloadProgress) -> None:
        nonlocal last_draw
        now = time.monotonic()
        if now - last_draw >= 0.1 or progress.bytes_done >= progress.bytes_total > 0:
            last_draw = now
            sys.stdout.write(_bar(model.name, progress))
            sys.stdout.flush()

    try:
        hub_download.download_snapshots(
            model_files(caps),
            cache_dir=engine.cache_dir,
            endpoint=settings.hf_endpoint or None,
            on_progress=on_progress,
            cancel=cancel,
        )
    except KeyboardInterrupt:
        cancel.set()
        print("\nDownload paused. Run the same command again to resume where it stopped.")
        return 130
    except (
        hub_download.GatedModelError,
        hub_download.DiskFullError,
        hub_download.DownloadFailed,
    ) as exc:
        print(f"\nlumiku: {exc}", file=sys.stderr)
        return 1
    with write_transaction():  # replace the row: a fresh one, as on both engines
        ModelDownload.delete().where(ModelDownload.model_key == model.key).execute()
        ModelDownload.create(
            model_key=model.key, status="completed", finished_at=utcnow(), updated_at=utcnow()
        )
    print(f"\n{model.name} is installed.")
    return 0


def _remove(engine: DiffusersEngine, model: AIModel) -> int:
    caps = model.capabilities
    repos = repos_of(caps)
    freed = sum(hub_download.remove_from_cache(repo, cache_dir=engine.cache_dir) for repo in repos)
    ModelDownload.delete().where(ModelDownload.model_key == model.key).execute()
    print(f"Removed {model.name}: {freed / GB:.2f} GB freed.")
    return 0
