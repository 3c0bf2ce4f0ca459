"""Exports: avatars' PNGs and a manifest as one zip, streamed in chunks as it is written.

`plan` decides, before a byte is sent, what can go (a file missing from the data folder is
listed in the manifest, not fatal; nothing at all is a 404); `stream` then writes the zip with
the standard library onto a write buffer whose contents are yielded and cleared, reading each
PNG in chunks, so an export of hundreds of images holds one chunk at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import clock, storage
from .errors import NotFound

if TYPE_CHECKING:  # Litestar loads with the app, not with a CLI that only writes a zip
    from litestar.response import Stream

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "lumiku-export/1"
CHUNK_BYTES = 64 * 1024
_SLUG_CHARACTERS = 40  # of a name or a variation key: names stay well under Windows' 255
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@dataclass(frozen=True)
class Entry:
    """One PNG to send: its name in the zip, its file, and what the manifest says of it."""

    name: str
    path: Path
    file_size: int
    created_at: dt.datetime | None
    details: dict[str, Any]  # the manifest's fields but name, sha256 and bytes


@dataclass(frozen=True)
class Export:
    entries: tuple[Entry, ...]
    missing: tuple[dict[str, Any], ...]  # avatars whose file is not there, with the reason


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
        manifest = {
            "format": MANIFEST_FORMAT,
            "exportedAt": f"{clock.utcnow().isoformat()}Z",
            "count": len(files),
            "files": files,
            "missing": missing,
        }
        archive.writestr(
            _zip_info(MANIFEST, None, 0), json.dumps(manifest, indent=2, ensure_ascii=False)
        )
    yield buffer.take()


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII name every browser takes and the UTF-8 one (RFC 6266)."""
    stem = filename.removesuffix(".zip")
    fallback = f"{slug(stem, 'lumiku-export')}.zip"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(stem + '.zip', safe='')}"


def response(export: Export, filename: str) -> Stream:
    """The zip as a streamed download (no Content-Length: its size is known only at the end)."""
    from litestar.response import Stream

    return Stream(
        stream(export),
        media_type="application/zip",
        headers={"Content-Disposition": content_disposition(filename)},
    )
