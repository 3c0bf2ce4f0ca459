"""The servers the settings name (PostgreSQL, Redis): reachable or not, in words a person can act
on. Checked before a server or worker starts, by `lumiku doctor`, and by /health."""

from __future__ import annotations

from urllib.parse import urlsplit

from .config import Settings, redacted

TEAM_EXTRA = 'pip install "lumiku-local[team]"'


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or ''}".rstrip(":")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def postgres_problem(settings: Settings, timeout: float = 3.0) -> str | None:
    if not settings.uses_postgres:
        return None
    try:
        import psycopg
    except ImportError:
        return f"database_url names PostgreSQL, whose driver is not installed: {TEAM_EXTRA}"
    try:
        with psycopg.connect(settings.database_url, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return (
            f"cannot reach the PostgreSQL server at {_where(settings.database_url)} "
            f"({_first_line(exc)}). Start it, or check database_url "
            f"({redacted(settings.database_url)})."
        )
    return None


def redis_problem(settings: Settings, timeout: float = 3.0) -> str | None:
    if not settings.uses_redis:
        return None
    try:
        import redis
    except ImportError:
        return f"queue_url names Redis, whose client is not installed: {TEAM_EXTRA}"
    client = redis.Redis.from_url(
        settings.queue_url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return (
            f"cannot reach the Redis server at {_where(settings.queue_url)} "
            f"({_first_line(exc)}). Start it, or check queue_url ({redacted(settings.queue_url)})."
        )
    finally:
        client.close()
    return None


def problems(settings: Settings, timeout: float = 3.0) -> list[str]:
    """What keeps the configured servers from being used; [] when both answer (or are unused)."""
    found = [postgres_problem(settings, timeout), redis_problem(settings, timeout)]
    return [problem for problem in found if problem]
