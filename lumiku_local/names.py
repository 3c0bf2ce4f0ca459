"""How things are named for people: text cut at a word, variation numbers, download file names."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

ELLIPSIS = "…"
FILE_NAME_CHARACTERS = 120  # well under the 255 of every file system, with room for a folder
_VARIATION = re.compile(r"v(\d+)$")
_NOT_IN_FILE_NAMES = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')  # Windows' list, and controls
_NOT_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._#()+,=@ -]+")
_SPACES = re.compile(r"\s+")
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{d}{n}" for d in ("COM", "LPT") for n in range(10)
}


def shorten(text: str | None, limit: int) -> str:
    """`text` in at most `limit` characters, cut after a whole word with an ellipsis."""
    words = _SPACES.sub(" ", text or "").strip()
    if len(words) <= limit:
        return words
    cut = words[: limit - 1]
    if words[limit - 1] != " " and " " in cut:  # the cut fell inside a word: drop that word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-–—") + ELLIPSIS


def variation_number(variation_key: str | None) -> int | None:
    """The 1-based number people see for a variation key ("v7" is #8), or None."""
    found = _VARIATION.search(variation_key or "")
    return int(found.group(1)) + 1 if found else None


def variation_label(variation_key: str | None) -> str:
    number = variation_number(variation_key)
    return f"#{number}" if number is not None else ""


def _file_words(text: str) -> str:
    """Words safe in a file name on Windows, macOS and Linux (characters, not length)."""
    clean = _NOT_IN_FILE_NAMES.sub(" ", unicodedata.normalize("NFC", text))
    return _SPACES.sub(" ", clean).strip(" .")


def avatar_file_name(
    project_name: str | None, avatar_name: str | None, variation_key: str | None, seed: int | None
) -> str:
    """A readable PNG name: project, avatar name, variation and seed, e.g.
    "Team - Smiling portrait #8 - seed 1234.png"; the variation is left out when the name
    already ends with it."""
    name = _file_words(avatar_name or "") or "Avatar"
    label = variation_label(variation_key)
    parts = [_file_words(project_name or ""), name]
    if label and not name.endswith(label):
        parts.append(label)
    if seed is not None:
        parts.append(f"seed {seed}")
    stem = " - ".join(part for part in parts if part)
    if len(stem) > FILE_NAME_CHARACTERS:
        stem = shorten(stem, FILE_NAME_CHARACTERS).removesuffix(ELLIPSIS).strip(" .-")
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:
        stem = f"Avatar {stem}"
    return f"{stem}.png"


def ascii_file_name(file_name: str) -> str:
    """The same name in plain ASCII, for clients that ignore the UTF-8 one."""
    text = unicodedata.normalize("NFKD", file_name).encode("ascii", "ignore").decode()
    stem, dot, suffix = text.rpartition(".")
    stem = _SPACES.sub(" ", _NOT_ASCII_SAFE.sub(" ", stem if dot else text)).strip(" .-")
    return f"{stem or 'download'}.{suffix}" if dot else stem or "download"


def content_disposition(file_name: str, attachment: bool = True) -> str:
    """The header with an ASCII `filename` every client takes and the UTF-8 `filename*`
    (RFC 6266)."""
    kind = "attachment" if attachment else "inline"
    fallback = ascii_file_name(file_name).replace('"', "")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"
