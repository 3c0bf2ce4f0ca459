"""The data folder at start: a database that is missing, empty or damaged next to images of an
earlier run is a refusal to start that says what to do, never a silent first run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import storage
from .config import Settings


class DataFolderProblem(Exception):
    """Lumiku must not start on this data folder as it is; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def database_state(path: Path) -> tuple[str, str]:
    """("ok" | "missing" | "empty" | "damaged", detail) of the SQLite file at `path`."""
    if not path.exists():
        return "missing", "it does not exist"
    if path.stat().st_size == 0 and not Path(f"{path}-wal").exists():
        return "empty", "it is an empty file"
    if _truncated(path):
        return "damaged", "the file is shorter than its own header says: it was cut off"
    try:
        conn = sqlite3.connect(path, timeout=10)  # it exists: connecting creates nothing
    except sqlite3.Error as exc:
        return "damaged", str(exc)
    try:
        tables = {name for (name,) in conn.execute("select name from sqlite_master")}
        if "migrations" not in tables or "user" not in tables:
            return "empty", "it holds no Lumiku data"
        conn.execute("select count(*) from migrations").fetchone()
        if not conn.execute("select count(*) from user").fetchone()[0]:
            return "empty", "it holds no Lumiku data"
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):  # another program writes it: not damage
            return "ok", "in use"
        return "damaged", str(exc)
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        return "damaged", str(exc)
    finally:
        conn.close()
    return "ok", str(path)


def _truncated(path: Path) -> bool:
    """SQLite's header records the database's size in pages: a shorter file lost its end.

    Pages not yet checkpointed live in the -wal file, so a non-empty one proves nothing.
    """
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size:
        return False
    with path.open("rb") as file:
        header = file.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return False  # not SQLite at all: connecting says so
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the recorded size is valid only while the change counter matches its "valid for" field
    if header[24:28] != header[92:96]:
        return False
    return pages * page_size > path.stat().st_size


def image_count(settings: Settings) -> int:
    """Images of an earlier run in the files folder and its quarantine."""
    from .orphans import quarantine_dir  # orphans imports the schema; this module stays light

    names = list(storage.stored_names(settings.files_dir))
    names += storage.stored_names(quarantine_dir(settings.files_dir))
    return sum(1 for name in names if name.endswith(".png"))


def check(settings: Settings) -> None:
    """Raise DataFolderProblem when starting would hide or lose earlier work."""
    path = settings.database_path
    state, detail = database_state(path)
    if state == "damaged":
        raise DataFolderProblem(
            f"Lumiku's database {path} is damaged ({detail}). Nothing was changed. Restore it "
            "from a backup, or run `lumiku doctor --repair` to set it aside, start a new "
            "database and re-import your images."
        )
    if state in ("missing", "empty"):
        images = image_count(settings)
        if images:
            raise DataFolderProblem(
                f"Lumiku's database {path} is {state} ({detail}), but the data folder holds "
                f"{images} images from an earlier run. Nothing was changed. Put your lumiku.db "
                "back from a backup, or run `lumiku doctor --repair` to start a new database "
                "and re-import the images, or choose an empty folder with --home."
            )
