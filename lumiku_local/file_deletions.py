"""Files follow rows: a file is removed only after the rows naming it are committed as deleted.

The transaction that soft-deletes rows records their files (`record`); once it has committed,
`carry_out` removes them. A crash in between leaves a recorded file to remove at the next start,
never a row without its file; and a file is never removed just because no row names it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import failpoints, storage
from .db import tuples, write_transaction
from .models import (
    UNFINISHED_STATUSES,
    Avatar,
    AvatarGeneration,
    AvatarProject,
    FileDeletion,
)

log = logging.getLogger("lumiku.files")

BATCH = 200  # names removed per write transaction: short lock holds for a large project
_IN_CHUNK = 400  # names per IN (...) list: below SQLite's variable limit


def _chunks(names: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(names), size):
        yield names[start : start + size]


def names_in_use(names: Iterable[str]) -> set[str]:
    """The names among `names` that an avatar row still uses (live or in the trash; identical
    content shares), or a generation of a live project keeps as its reference photo."""
    wanted = sorted(set(names))
    used: set[str] = set()
    for chunk in _chunks(wanted, _IN_CHUNK):
        live = Avatar.purged_at.is_null()  # the trash keeps its files
        for image, thumbnail in tuples(
            Avatar.select(Avatar.image_file, Avatar.thumbnail_file).where(
                live & (Avatar.image_file.in_(chunk) | Avatar.thumbnail_file.in_(chunk))
            )
        ):
            used.update((image, thumbnail))
        for image, thumbnail in tuples(
            references_kept().where(
                AvatarGeneration.reference_file.in_(chunk)
                | AvatarGeneration.reference_thumbnail.in_(chunk)
            )
        ):
            used.update((image, thumbnail))
    return used & set(wanted)


def references_kept() -> Any:
    """(reference_file, reference_thumbnail) of the unfinished generations of live projects: a
    generation's own copy of its photo, kept until it has made its images whatever happens to
    the avatar it came from (a deleted photo goes once no generation still needs it)."""
    return (
        AvatarGeneration.select(
            AvatarGeneration.reference_file, AvatarGeneration.reference_thumbnail
        )
        .join(AvatarProject)
        .where(
            AvatarGeneration.reference_file.is_null(False)
            & AvatarGeneration.status.in_(UNFINISHED_STATUSES)
            & AvatarProject.deleted_at.is_null()
        )
    )


def record(images: Iterable[storage.StoredImage]) -> int:
    """Inside the write transaction that lets go of these images: note their files for removal.

    Call it after the rows are marked deleted in the same transaction; names a live row still
    uses are kept. Returns how many names were recorded.
    """
    names = {name for image in images for name in (image.image_file, image.thumbnail_file)}
    doomed = sorted(names - names_in_use(names))
    for chunk in _chunks(doomed, _IN_CHUNK // 2):
        FileDeletion.insert_many([{"name": name} for name in chunk]).on_conflict_ignore().execute()
    return len(doomed)


def carry_out(files_dir: Path) -> int:
    """Remove every recorded file that no live row uses; return how many files went.

    Each batch runs in a write transaction, so no upload or generation can commit a row naming
    a file between the check and the unlink. A file that cannot be removed now (held open on
    Windows, a read-only folder) keeps its record and is tried again at the next start.
    """
    removed = 0
    after = ""
    while True:
        with write_transaction():
            batch = [
                name
                for (name,) in tuples(
                    FileDeletion.select(FileDeletion.name)
                    .where(FileDeletion.name > after)
                    .order_by(FileDeletion.name)
                    .limit(BATCH)
                )
            ]
            if not batch:
                return removed
            after = batch[-1]
            in_use = names_in_use(batch)
            done = []
            for name in batch:
                if name not in in_use:
                    failpoints.hit("files.delete")
                    try:
                        with contextlib.suppress(FileNotFoundError):
                            storage.resolve(files_dir, name).unlink()
                            removed += 1
                    except ValueError:  # not one of our names: never touch it
                        pass
                    except OSError as exc:
                        log.warning("could not remove %s now (%s); will retry", name, exc)
                        continue
                done.append(name)
            FileDeletion.delete().where(FileDeletion.name.in_(done)).execute()


def carry_out_quietly(files_dir: Path) -> None:
    """After a delete has committed: remove its files, or leave them for the next start."""
    try:
        carry_out(files_dir)
    except Exception:  # the delete itself is done; the records make the next start finish it
        log.warning("file removal deferred to the next start", exc_info=True)
