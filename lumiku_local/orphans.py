"""Files no live row names: moved aside into the quarantine, never deleted at start (DESIGN §2).

A file without a row is not proof of garbage: a database restored from a backup names fewer
files than the folder holds. At start, only temp files and recorded deletions are removed;
other unnamed images go to `files/quarantine/`, and come back by themselves when a row names
them again (the newer database is put back). `lumiku doctor --repair` re-imports the quarantine
as uploads; `lumiku doctor --remove-orphans` deletes it, on request only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import avatars, file_deletions, storage
from .db import tuples, write_transaction
from .models import Avatar, AvatarProject, FileDeletion

log = logging.getLogger("lumiku.files")

QUARANTINE = "quarantine"
RECOVERED_PROJECT = "Recovered images"


def quarantine_dir(files_dir: Path) -> Path:
    return files_dir / QUARANTINE


@dataclass
class SweepReport:
    temp_removed: int = 0
    deletions_done: int = 0
    quarantined: int = 0
    restored: int = 0
    duplicates_removed: int = 0


def live_names() -> set[str]:
    rows = Avatar.select(Avatar.image_file, Avatar.thumbnail_file).where(
        Avatar.purged_at.is_null()  # live or in the trash
    )
    kept = tuples(file_deletions.references_kept())
    return {name for pair in [*tuples(rows), *kept] for name in pair if name}


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _young(path: Path, newer_than: float | None) -> bool:
    """Written after `newer_than` (a time.time()): possibly by a worker whose row is not yet
    committed, so not ours to judge."""
    if newer_than is None:
        return False
    try:
        return path.stat().st_mtime > newer_than
    except FileNotFoundError:
        return True


def sweep(files_dir: Path, min_age_seconds: float | None = None) -> SweepReport:
    """At start, before anything writes: tidy the files folder without losing an image.

    `min_age_seconds`: on a folder other processes write to (several machines), leave alone
    the files younger than this (a lease): their rows may not have committed yet."""
    newer_than = None if min_age_seconds is None else time.time() - min_age_seconds
    report = SweepReport(temp_removed=storage.sweep_temp(files_dir, newer_than))
    report.deletions_done = file_deletions.carry_out(files_dir)
    named = live_names()
    still_recorded = {name for (name,) in tuples(FileDeletion.select(FileDeletion.name))}
    quarantine = quarantine_dir(files_dir)
    for name in list(storage.stored_names(quarantine)):
        if name not in named:
            continue
        if (files_dir / name).exists():  # content-addressed: the same bytes are back already
            (quarantine / name).unlink(missing_ok=True)
            report.duplicates_removed += 1
        else:  # a row names it again (the newer database is back)
            _move(quarantine / name, files_dir / name)
            report.restored += 1
    for name in list(storage.stored_names(files_dir)):
        if name in named or name in still_recorded or _young(files_dir / name, newer_than):
            continue
        target = quarantine / name
        if target.exists():
            (files_dir / name).unlink(missing_ok=True)
        else:
            _move(files_dir / name, target)
        report.quarantined += 1
    if report.quarantined or report.restored:
        log.warning(
            "files: %d file(s) no avatar names were moved to %s (see `lumiku doctor`); "
            "%d came back from it",
            report.quarantined,
            quarantine,
            report.restored,
        )
    return report


def quarantined_images(files_dir: Path) -> list[str]:
    return sorted(
        name for name in storage.stored_names(quarantine_dir(files_dir)) if name.endswith(".png")
    )


def quarantined_count(files_dir: Path) -> int:
    return sum(1 for _ in storage.stored_names(quarantine_dir(files_dir)))


def reimport(files_dir: Path, user_id: int) -> int:
    """Make every quarantined image an uploaded avatar of the project "Recovered images"."""
    quarantine = quarantine_dir(files_dir)
    names = quarantined_images(files_dir)
    if not names:
        return 0
    with write_transaction():
        project = AvatarProject.get_or_none(
            (AvatarProject.name == RECOVERED_PROJECT) & AvatarProject.deleted_at.is_null()
        ) or AvatarProject.create(
            user=user_id,
            name=RECOVERED_PROJECT,
            description="Images found in the data folder that no avatar named.",
        )
    imported = 0
    for name in names:
        try:
            content = (quarantine / name).read_bytes()
            prepared = storage.prepare_png(content)
        except (OSError, ValueError, SyntaxError) as exc:
            log.warning("could not re-import %s: %s", name, exc)
            continue
        stored = prepared.stored
        with write_transaction():
            storage.write(files_dir, prepared)
            avatars.record_upload(
                user_id,
                project,
                f"Recovered {stored.image_file[3:11]}",
                stored,
                "recover",
                {"file": stored.image_file},
            )
        for leftover in (name, name.removesuffix(".png") + ".thumb.webp"):
            (quarantine / leftover).unlink(missing_ok=True)
        imported += 1
    return imported


def remove_quarantine(files_dir: Path) -> int:
    """Delete the quarantine, on the user's explicit request."""
    quarantine = quarantine_dir(files_dir)
    removed = 0
    for name in list(storage.stored_names(quarantine)):
        with contextlib.suppress(FileNotFoundError):
            (quarantine / name).unlink()
            removed += 1
    return removed
