"""Exports: avatars' PNGs and a manifest as one zip, streamed in chunks as it is written.

One code path for both apps: the Pose Generator's batches and chosen avatars, the Avatar
Creator's selections and profile pictures. `plan` (the stored PNGs) and `plan_profile` (PNGs
made at profile sizes, square or round, without their background where the engine can) decide,
before a byte is sent, what can go: a file missing from the data folder is listed in the
manifest, not fatal; nothing at all is a 404. `stream` then writes the zip with the standard
library onto a write buffer whose contents are yielded and cleared, reading each PNG in chunks
and making each profile PNG only when its turn comes, so an export of hundreds of images holds
one image at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import clock, profile_images, storage
from .errors import InvalidInput, NotFound
from .profile_images import Profile, ProfileImage

if TYPE_CHECKING:  # Litestar loads with the app, not with a CLI that only writes a zip
    from litestar.response import Stream

log = logging.getLogger("lumiku.exports")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "lumiku-export/1"
CHUNK_BYTES = 64 * 1024
MAX_AVATARS = 500  # in one export of the Avatar Creator's
_PROJECT_CHARACTERS = 24  # of the project's name in a profile PNG's name
_NOT_IN_A_FILE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')
_SLUG_CHARACTERS = 40  # of a name or a variation key: names stay well under Windows' 255
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@dataclass(frozen=True)
class Entry:
    """One PNG to send: its name in the zip, its file, and what the manifest says of it."""

    name: str
    path: Path
    file_size: int  # of the file as stored (0 for a PNG made while streaming)
    created_at: dt.datetime | None
    details: dict[str, Any]  # the manifest's fields but name, sha256 and bytes
    image: ProfileImage | None = None  # made from the file, not sent as stored


@dataclass(frozen=True)
class Export:
    entries: tuple[Entry, ...]
    missing: tuple[dict[str, Any], ...]  # avatars whose file is not there, with the reason
    profile: Profile | None = None
    filename: str = "avatars.zip"  # what the download is called


def _field(row: Any, name: str) -> Any:
    """A column of a model row or of a `.dicts()` row (whose foreign keys drop the `_id`)."""
    if isinstance(row, Mapping):
        return row.get(name, row.get(name.removesuffix("_id")))
    return getattr(row, name, None)


def slug(text: str | None, fallback: str) -> str:
    """Lower-case ASCII letters, digits and single hyphens: safe in any file system's names."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    words = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    return words[:_SLUG_CHARACTERS].rstrip("-") or fallback


def _details(row: Any) -> dict[str, Any]:
    created_at = _field(row, "created_at")
    return {
        "avatarId": _field(row, "id"),
        "avatarName": _field(row, "name"),
        "generationId": _field(row, "generation_id"),
        "variationKey": _field(row, "variation_key"),
        "poseId": _field(row, "pose_id"),
        "seed": _field(row, "seed"),
        "modelKey": _field(row, "model_key"),
        "prompt": _field(row, "prompt"),
        "style": _field(row, "style"),
        "width": _field(row, "width"),
        "height": _field(row, "height"),
        "createdAt": f"{created_at.isoformat()}Z" if created_at else None,
    }


def _zip_name(number: str, details: dict[str, Any]) -> str:
    """Number, name and variation key: the number makes it unique, the words readable."""
    variation = slug(details["variationKey"], "" if details["generationId"] else "upload")
    words = (number, slug(details["avatarName"], "avatar"), variation)
    return "-".join(word for word in words if word) + ".png"


def plan(files_dir: Path, avatar_rows: Iterable[Any]) -> Export:
    """What an export of these avatars sends; NotFound when not one of their files is there.

    Rows are Avatar models or `.dicts()` rows; a deleted one, or one given twice, is left out.
    """
    rows = [row for row in avatar_rows if _field(row, "deleted_at") is None]
    digits = max(3, len(str(len(rows))))
    entries: list[Entry] = []
    missing: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, row in enumerate(rows, start=1):
        details = _details(row)
        if details["avatarId"] in seen:
            continue
        seen.add(details["avatarId"])
        name = _zip_name(f"{index:0{digits}d}", details)
        try:
            path = storage.resolve(files_dir, _field(row, "image_file"))
            file_size = path.stat().st_size
        except (ValueError, TypeError, OSError):
            missing.append({**details, "reason": "The image file is not in the data folder."})
            continue
        entries.append(Entry(name, path, file_size, _field(row, "created_at"), details))
    if not entries:
        raise NotFound(
            "There is nothing to export: no image file of these avatars is in the data folder."
            if missing
            else "There is nothing to export: no live avatar was chosen."
        )
    return Export(tuple(entries), tuple(missing))


def chosen(avatar_ids: Sequence[str]) -> list[Any]:
    """The live avatars with these ids, in the order given, each once; NotFound naming every
    unknown or deleted one, so nothing is sent."""
    from .models import Avatar

    wanted = list(dict.fromkeys(avatar_ids))
    rows = {row.id: row for row in Avatar.select().where(Avatar.id.in_(wanted))}
    if unknown := [i for i in wanted if i not in rows or rows[i].deleted_at is not None]:
        named = ", ".join(repr(i) for i in unknown[:5]) + (" and more" if unknown[5:] else "")
        noun = "the id" if len(unknown) == 1 else "the ids"
        raise NotFound(f"No live avatar has {noun} {named}; nothing was exported.")
    return [rows[i] for i in wanted]


def for_avatars(files_dir: Path, avatar_ids: Sequence[str], profile: Profile) -> Export:
    """The Avatar Creator's export (the API's and the pages'): 1 to MAX_AVATARS live avatars,
    as stored or as `profile` asks; an avatar that cannot lose its background when asked to
    is refused (422, naming it and why), never sent with it."""
    if not 1 <= len(set(avatar_ids)) <= MAX_AVATARS:
        raise InvalidInput(f"Choose between 1 and {MAX_AVATARS} avatars to export.")
    rows = chosen(avatar_ids)
    export = (
        plan(files_dir, rows) if profile.is_original else plan_profile(files_dir, rows, profile)
    )
    return replace(export, filename=zip_filename(rows, profile))


def plan_profile(files_dir: Path, rows: Sequence[Any], profile: Profile) -> Export:
    """A PNG per avatar and size (or one at its own size), each made while streaming."""
    from .models import AvatarProject

    redraws: dict[str, profile_images.Redraw] = {}
    if profile.background == "transparent":
        refused = []
        for row in rows:
            redraw = profile_images.redraw_for(row, files_dir)
            if isinstance(redraw, str):
                refused.append(f"{row.name!r} ({row.id}) cannot lose its background: {redraw}")
            else:
                redraws[row.id] = redraw
        if refused:
            raise InvalidInput(
                "; ".join(refused[:5])
                + (f"; and {len(refused) - 5} more" if refused[5:] else "")
                + ". Nothing was exported; keep their background or leave them out.",
                code="background_kept",
            )
    project_names = {
        project.id: project.name
        for project in AvatarProject.select().where(
            AvatarProject.id.in_({row.project_id for row in rows})
        )
    }
    by_id = {row.id: row for row in rows}
    base = plan(files_dir, rows)
    entries: list[Entry] = []
    taken: set[str] = set()
    for stored in base.entries:
        row_id = stored.details["avatarId"]
        row = by_id[row_id]
        own_side = min(row.width, row.height)
        for size in profile.sizes or (None,):
            side = size or own_side
            image = ProfileImage(size, profile.shape, redraws.get(row_id), row.face_box)
            name = _unique(
                _profile_name(project_names.get(row.project_id), stored.details, side, profile),
                taken,
            )
            details = {
                **stored.details,
                "width": side,
                "height": side,
                "sourceWidth": row.width,
                "sourceHeight": row.height,
                "shape": profile.shape,
                "background": profile.background,
            }
            entries.append(replace(stored, name=name, file_size=0, details=details, image=image))
    return Export(tuple(entries), base.missing, profile)


def _profile_name(project: str | None, details: dict[str, Any], side: int, profile: Profile) -> str:
    """Project, name, variation and size, in words a file system takes everywhere."""
    project_words = slug(project, "")[:_PROJECT_CHARACTERS].rstrip("-")
    variation = slug(details["variationKey"], "" if details["generationId"] else "upload")
    shape = "circle" if profile.shape == "circle" else ""
    words = (project_words, slug(details["avatarName"], "avatar"), variation, f"{side}px", shape)
    return "-".join(word for word in words if word) + ".png"


def _unique(name: str, taken: set[str]) -> str:
    """The name, or the name with -2, -3... when another file has it (case aside)."""
    stem, candidate, number = name.removesuffix(".png"), name, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{stem}-{number}.png"
    taken.add(candidate.casefold())
    return candidate


def zip_filename(rows: Sequence[Any], profile: Profile) -> str:
    """What the download is called: the project and the avatar, or how many there are."""
    from .models import AvatarProject

    projects = {row.project_id for row in rows}
    project = AvatarProject.get_or_none(AvatarProject.id == next(iter(projects)))
    place = project.name if project is not None and len(projects) == 1 else "Lumiku"
    what = rows[0].name if len(rows) == 1 else f"{len(rows)} avatars"
    kind = " profile pictures" if profile.sizes or not profile.is_original else ""
    readable = _NOT_IN_A_FILE_NAME.sub("-", f"{place} - {what}{kind}").strip(" .-")
    return f"{readable[:120].rstrip(' .-') or 'avatars'}.zip"


class _WriteBuffer(io.RawIOBase):
    """A write-only, non-seekable file for ZipFile: what it is given waits here until taken."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(self._parts[-1])

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _zip_info(name: str, when: dt.datetime | None, file_size: int) -> zipfile.ZipInfo:
    stamp = when.timetuple()[:6] if when else _ZIP_EPOCH
    info = zipfile.ZipInfo(name, date_time=max(stamp, _ZIP_EPOCH))
    info.compress_type = zipfile.ZIP_STORED  # PNGs are compressed already
    info.file_size = file_size  # lets zipfile choose zip64 up front for a huge file
    info.external_attr = 0o644 << 16
    return info


def stream(export: Export) -> Iterator[bytes]:
    """The zip, chunk by chunk: every entry's PNG as stored, then the manifest.

    A file gone since `plan` (deleted meanwhile) or unreadable midway is listed in the
    manifest's "missing" rather than failing a download already under way.
    """
    buffer = _WriteBuffer()
    files: list[dict[str, Any]] = []
    missing = list(export.missing)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for entry in export.entries:
            if entry.image is not None:
                record = _made(archive, entry)
                (missing if "reason" in record else files).append(record)
                yield buffer.take()
                continue
            try:
                source = entry.path.open("rb")
            except OSError:
                missing.append({**entry.details, "reason": "The image file went while exporting."})
                continue
            digest = hashlib.sha256()
            sent = 0
            chunk: bytes | None = b""
            info = _zip_info(entry.name, entry.created_at, entry.file_size)
            with source, archive.open(info, "w") as target:
                while True:
                    try:
                        chunk = source.read(CHUNK_BYTES)
                    except OSError:
                        chunk = None
                    if not chunk:
                        break
                    digest.update(chunk)
                    target.write(chunk)
                    sent += len(chunk)
                    yield buffer.take()
            record = {
                "name": entry.name,
                **entry.details,
                "sha256": digest.hexdigest(),
                "bytes": sent,
            }
            if chunk is None:  # the zip stays valid; the manifest says the file is cut short
                missing.append({**record, "reason": "The image file could not be read to its end."})
            else:
                files.append(record)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "exportedAt": f"{clock.utcnow().isoformat()}Z",
            "count": len(files),
            "files": files,
            "missing": missing,
        }
        if export.profile is not None:
            manifest["profile"] = export.profile.describe()
        archive.writestr(
            _zip_info(MANIFEST, None, 0), json.dumps(manifest, indent=2, ensure_ascii=False)
        )
    yield buffer.take()


def _render(entry: Entry) -> bytes:
    """A profile entry's PNG, its stored parameters and how it was made in its text chunks."""
    assert entry.image is not None
    notes = {
        "lumiku_export_size": str(entry.details["width"]),
        "lumiku_export_shape": entry.image.shape,
        "lumiku_export_background": "transparent" if entry.image.redraw else "keep",
    }
    return profile_images.render(entry.path, entry.image, notes)


def profile_png(files_dir: Path, avatar_id: str, profile: Profile) -> tuple[str, bytes]:
    """One avatar at one size (the page's quick downloads), named and made as in the zip."""
    if len(profile.sizes) != 1:
        raise InvalidInput("Choose one size for a single PNG.")
    (entry,) = plan_profile(files_dir, chosen([avatar_id]), profile).entries
    return entry.name, _render(entry)


def _made(archive: zipfile.ZipFile, entry: Entry) -> dict[str, Any]:
    """Make a profile PNG and add it to the archive: its manifest record, or, when it could not
    be made (its file went, the renderer failed), the record with the reason."""
    try:
        png = _render(entry)
    except Exception as exc:  # a download under way is not failed for one image
        log.warning("export: %s could not be made: %s", entry.name, exc)
        return {"name": entry.name, **entry.details, "reason": "The image could not be made."}
    with archive.open(_zip_info(entry.name, entry.created_at, len(png)), "w") as target:
        for start in range(0, len(png), CHUNK_BYTES):
            target.write(png[start : start + CHUNK_BYTES])
    return {
        "name": entry.name,
        **entry.details,
        "sha256": hashlib.sha256(png).hexdigest(),
        "bytes": len(png),
    }


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII name every browser takes and the UTF-8 one (RFC 6266); a
    name that is not a .png is a .zip."""
    suffix = ".png" if filename.endswith(".png") else ".zip"
    stem = filename.removesuffix(suffix)
    fallback = f"{slug(stem, 'lumiku-export')}{suffix}"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(stem + suffix, safe='')}"


def response(export: Export, filename: str) -> Stream:
    """The zip as a streamed download (no Content-Length: its size is known only at the end)."""
    from litestar.response import Stream

    return Stream(
        stream(export),
        media_type="application/zip",
        headers={"Content-Disposition": content_disposition(filename)},
    )
