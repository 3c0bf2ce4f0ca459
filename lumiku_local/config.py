"""Settings: resolved once (flag > environment LUMIKU_* > config.toml > default), passed down."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "Lumiku"
ENV_PREFIX = "LUMIKU_"
CONFIG_FILE = "config.toml"


SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
REDIS_PREFIXES = ("redis://", "rediss://")


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every knob of the app. Each field is documented in README.md (a test checks)."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 2
    open_browser: bool = True
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 1.0
    reconcile_seconds: float = 30.0
    retry_backoff_seconds: float = 2.0
    max_attempts: int = 3
    wake_timeout_seconds: float = 1.0
    worker_check_seconds: float = 1.0
    worker_restart_seconds: float = 10.0
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    busy_timeout_seconds: float = 10.0
    device: str = "auto"
    hf_cache_dir: str = ""
    hf_endpoint: str = ""
    # remote generation on Hugging Face Inference Providers (engines/remote.py)
    hf_inference_endpoint: str = ""  # "": the router, https://router.huggingface.co
    hf_inference_provider: str = "auto"  # auto: the first live provider of the model's mapping
    hf_inference_concurrency: int = 2  # requests in flight at once, over every generation
    hf_inference_timeout_seconds: float = 120.0  # for one image
    pipeline_idle_minutes: float = 10.0
    failpoints: str = ""
    log_level: str = "info"
    tray: bool = True
    access_token: str = ""
    trash_days: float = 30.0
    # where the data, the queue and the files live: by default all in the data folder (one
    # machine); PostgreSQL, Redis and a shared folder for several (README "Running on several
    # machines")
    database_url: str = ""  # "" (lumiku.db here), sqlite:///path or postgresql://…
    queue_url: str = ""  # "" (queue.db here) or redis://host:port/db
    files_dir: Path = Path()  # Path(): the data folder's files/
    # this process runs generation workers (`lumiku serve --no-workers`: an API server only)
    run_workers: bool = True
    worker_models: str = ""  # comma-separated model keys a worker process runs; "" runs all

    def __post_init__(self) -> None:
        if self.files_dir == Path():
            object.__setattr__(self, "files_dir", self.home / "files")

    @property
    def database_path(self) -> Path:
        """The SQLite file (meaningless on PostgreSQL: see uses_postgres)."""
        if self.database_url.startswith(SQLITE_PREFIX):
            return Path(self.database_url[len(SQLITE_PREFIX) :]).expanduser()
        return self.home / "lumiku.db"

    @property
    def queue_path(self) -> Path:
        return self.home / "queue.db"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(POSTGRES_PREFIXES)

    @property
    def uses_redis(self) -> bool:
        return self.queue_url.startswith(REDIS_PREFIXES)

    @property
    def embedded(self) -> bool:
        """One machine, one process: SQLite and queue.db in the data folder (the default)."""
        return not self.uses_postgres and not self.uses_redis

    @property
    def model_filter(self) -> frozenset[str]:
        """The model keys this process's workers run; empty: every model."""
        return frozenset(key.strip() for key in self.worker_models.split(",") if key.strip())

    @property
    def logs_dir(self) -> Path:
        """The platform's log folder for the default data folder; `logs/` inside any other
        (so LUMIKU_HOME and --home keep everything, tests included, in one place)."""
        if self.home == default_home().resolve():
            return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "lumiku.log"

    @property
    def hf_cache(self) -> Path:
        """The Hugging Face hub cache: shared with other HF tools unless hf_cache_dir is set."""
        if self.hf_cache_dir:
            return Path(self.hf_cache_dir).expanduser()
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")

    def with_changes(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def setting_names() -> list[str]:
    return [field.name for field in dataclasses.fields(Settings)]


def default_home() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{name} must be true or false, not {raw!r}")
    if kind is Path:
        return Path(str(raw)).expanduser()
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a {kind.__name__}, not {raw!r}") from None


def _field_types() -> dict[str, type]:
    types = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}
    return {field.name: types[str(field.type)] for field in dataclasses.fields(Settings)}


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve settings: flags win over LUMIKU_* variables, which win over config.toml."""
    flags = {key: value for key, value in (flags or {}).items() if value is not None}
    environ = os.environ if environ is None else environ
    types = _field_types()

    home_raw = flags.get("home") or environ.get(ENV_PREFIX + "HOME") or default_home()
    home = Path(home_raw).expanduser().resolve()

    values: dict[str, Any] = {}
    config_file = home / CONFIG_FILE
    if config_file.is_file():
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config_file} is not valid TOML: {exc}") from None
        unknown = sorted(set(file_values) - set(types))
        if unknown:
            raise SettingsError(f"{config_file} has unknown settings: {', '.join(unknown)}")
        values.update(file_values)
    for name in types:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None and name != "home":
            values[name] = env_value
    values.update({key: value for key, value in flags.items() if key != "home"})

    resolved = {name: _coerce(name, value, types[name]) for name, value in values.items()}
    settings = Settings(home=home, **resolved)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if not 1 <= settings.workers <= 16:
        raise SettingsError("workers must be between 1 and 16")
    if not 0 <= settings.port <= 65535:
        raise SettingsError("port must be between 0 and 65535")
    if settings.device not in ("auto", "cuda", "mps", "cpu") and not settings.device.startswith(
        "cuda:"
    ):
        raise SettingsError("device must be auto, cuda, cuda:N, mps or cpu")
    if not 0 <= settings.trash_days <= 3650:
        raise SettingsError("trash_days must be between 0 and 3650")
    if settings.max_attempts < 1:
        raise SettingsError("max_attempts must be at least 1")
    if not 1 <= settings.hf_inference_concurrency <= 16:
        raise SettingsError("hf_inference_concurrency must be between 1 and 16")
    if settings.hf_inference_timeout_seconds <= 0:
        raise SettingsError("hf_inference_timeout_seconds must be greater than 0")
    if not settings.hf_inference_provider.strip():
        raise SettingsError("hf_inference_provider must be auto or a provider name (together)")
    url = settings.database_url
    if url and not url.startswith((SQLITE_PREFIX, *POSTGRES_PREFIXES)):
        raise SettingsError(
            "database_url must be empty (lumiku.db in the data folder), sqlite:///path/to/file.db "
            f"or postgresql://user:password@host:port/database, not {redacted(url)!r}"
        )
    if settings.queue_url and not settings.uses_redis:
        raise SettingsError(
            "queue_url must be empty (queue.db in the data folder) or redis://host:port/db, "
            f"not {redacted(settings.queue_url)!r}"
        )
    if settings.uses_redis and not settings.uses_postgres:
        raise SettingsError(
            "queue_url names Redis, so the database must be shared too: set database_url to "
            "postgresql://… (SQLite is one machine's file)"
        )
    if settings.worker_models and not settings.uses_redis:
        raise SettingsError(
            "worker_models (lumiku worker --models) needs the Redis queue: set queue_url to "
            "redis://… (queue.db has one queue for every model)"
        )
    for name in ("lease_seconds", "reconcile_seconds", "wake_timeout_seconds"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be greater than 0")


def redacted(url: str) -> str:
    """A URL without its password, for messages and logs."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
