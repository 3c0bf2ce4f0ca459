"""Image files: content-addressed names we choose, atomic writes, thumbnails, checked paths."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import failpoints
from .errors import InvalidInput, PayloadTooLarge, UnsupportedMedia

if TYPE_CHECKING:  # Pillow loads on first use: start-up stays fast
    from PIL import Image

THUMBNAIL_SIZE = 256
MAX_THUMBNAIL_BYTES = 30_000  # each gallery thumbnail (issue 4: a 500-avatar page stays fast)
ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_NAME = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}(\.png|\.thumb\.webp)$")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")
# one wording for a refused upload, wherever it is noticed (the page's script says it too)
NOT_AN_IMAGE = "That file is not a PNG, JPEG or WebP image."


def too_large(limit_bytes: int, size_bytes: int | None = None) -> str:
    """A file over the upload limit, with its size where it is known."""
    limit = f"{limit_bytes / 2**20:.0f} MB"
    if size_bytes is None:
        return f"The file is larger than the limit of {limit}."
    return f"The file is {size_bytes / 2**20:.1f} MB; the limit is {limit}."


@dataclass(frozen=True)
class StoredImage:
    image_file: str
    thumbnail_file: str
    width: int
    height: int
    file_size: int


def resolve(files_dir: Path, name: str) -> Path:
    """Map a stored name to its path; anything that is not one of our names is refused."""
    if not _NAME.match(name):
        raise ValueError(f"not a stored file name: {name!r}")
    return files_dir / name


def _write_atomically(files_dir: Path, name: str, content: bytes) -> None:
    final = files_dir / name
    if final.exists():  # content-addressed: the same bytes are already there
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=final.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(content)
            temp.flush()
            os.fsync(temp.fileno())
        failpoints.hit("storage.save")
        os.replace(temp_name, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _content_name(content: bytes, suffix: str) -> str:
    digest = hashlib.sha256(content).hexdigest()
    return f"{digest[:2]}/{digest}{suffix}"


@dataclass(frozen=True)
class PreparedImage:
    """A PNG and its thumbnail with their content-addressed names, ready to write."""

    stored: StoredImage
    png: bytes
    thumbnail: bytes


def prepare_png(png: bytes, image: Image.Image | None = None) -> PreparedImage:
    from PIL import Image

    image = image or Image.open(io.BytesIO(png))
    width, height = image.size
    image_file = _content_name(png, ".png")
    thumbnail_file = image_file.removesuffix(".png") + ".thumb.webp"
    stored = StoredImage(image_file, thumbnail_file, width, height, len(png))
    return PreparedImage(stored, png, _thumbnail_bytes(image))


def write(files_dir: Path, prepared: PreparedImage) -> StoredImage:
    """Write both files atomically; a file already there (same content) is kept.

    Identical content shares one file, so call this once before the row's write transaction
    (the slow, fsynced write) and again inside it, right before inserting the row: a delete of
    an identical avatar, whose files are unlinked inside a write transaction after its own
    commit (file_deletions.carry_out), may have removed them.
    """
    _write_atomically(files_dir, prepared.stored.thumbnail_file, prepared.thumbnail)
    _write_atomically(files_dir, prepared.stored.image_file, prepared.png)
    return prepared.stored


def _thumbnail_bytes(image: Image.Image) -> bytes:
    """A WebP of at most THUMBNAIL_SIZE a side; may shrink `image` in place (callers own it)."""
    factor = min(image.width, image.height) // THUMBNAIL_SIZE
    if factor >= 2:
        image = image.reduce(factor)  # box-averaging by a whole factor: fast and clean
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    # a gallery of hundreds must stay light: busy photos are re-encoded until they fit
    for quality in (82, 65, 45, 25):
        out = io.BytesIO()
        image.save(out, "WEBP", quality=quality, method=0)
        if out.tell() <= MAX_THUMBNAIL_BYTES:
            break
    else:
        while out.tell() > MAX_THUMBNAIL_BYTES and image.width > 32:
            image = image.resize((image.width * 3 // 4, image.height * 3 // 4))
            out = io.BytesIO()
            image.save(out, "WEBP", quality=25, method=0)
    return out.getvalue()


def decode_upload(content: bytes, max_bytes: int, max_pixels: int) -> tuple[bytes, Image.Image]:
    """Validate an uploaded image and re-encode it as PNG (dropping metadata); raises 4xx errors."""
    from PIL import Image, ImageOps

    if len(content) > max_bytes:
        raise PayloadTooLarge(too_large(max_bytes, len(content)))
    if not content:
        raise InvalidInput("The file is empty. Choose a PNG, JPEG or WebP image.")
    if not content.startswith(_MAGIC):
        raise UnsupportedMedia(NOT_AN_IMAGE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(content))
            if probe.format not in ALLOWED_FORMATS:
                raise UnsupportedMedia(NOT_AN_IMAGE)
            if probe.width * probe.height > max_pixels:
                raise PayloadTooLarge(
                    f"The image is {probe.width}×{probe.height} pixels; the limit is "
                    f"{max_pixels / 1e6:.0f} megapixels."
                )
            probe.load()
            image = ImageOps.exif_transpose(probe)
    except (UnsupportedMedia, PayloadTooLarge):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge("The image has too many pixels to open safely.") from None
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError):
        raise InvalidInput(
            "The image could not be read; it may be truncated or damaged. Try another file."
        ) from None
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert(
            "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"
        )
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue(), image


def stored_names(files_dir: Path) -> Iterator[str]:
    """Every content-addressed name in the files folder (not temp files, not the quarantine)."""
    if not files_dir.is_dir():
        return
    for path in files_dir.glob("??/*"):
        name = path.relative_to(files_dir).as_posix()
        if _NAME.match(name):
            yield name


def sweep_temp(files_dir: Path, newer_than: float | None = None) -> int:
    """Delete temp files left by a crash mid-write (ours by name); return how many went.

    `newer_than`: keep those written after this time.time() (another process may be writing)."""
    removed = 0
    if not files_dir.is_dir():
        return 0
    for path in files_dir.glob("??/*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if newer_than is not None and path.stat().st_mtime > newer_than:
                continue
            path.unlink()
            removed += 1
    return removed
