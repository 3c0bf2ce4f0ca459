"""Generation parameters in PNG text chunks, as A1111, ComfyUI and InvokeAI write them."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def a1111_text(parameters: dict[str, Any]) -> str:
    """The `parameters` chunk A1111 writes and most tools read back ("PNG info")."""
    negative = parameters.get("negative_prompt") or ""
    fields = [
        ("Steps", parameters.get("steps")),
        ("Sampler", parameters.get("sampler")),
        ("CFG scale", parameters.get("guidance")),
        ("Seed", parameters.get("seed")),
        ("Size", _size(parameters)),
        ("Model", parameters.get("model")),
        ("Denoising strength", parameters.get("strength")),
        ("Likeness", parameters.get("lumiku_likeness")),
        ("Reference", parameters.get("lumiku_reference_sha256")),
    ]
    return (
        f"{parameters.get('prompt', '')}\n"
        + (f"Negative prompt: {negative}\n" if negative else "")
        + ", ".join(f"{name}: {value}" for name, value in fields if value is not None)
    )


def _size(parameters: dict[str, Any]) -> str | None:
    width, height = parameters.get("width"), parameters.get("height")
    return f"{width}x{height}" if width and height else None


def png_with_parameters(image: Any, parameters: dict[str, Any]) -> bytes:
    """Encode a PIL image as PNG carrying the parameters as text chunks, A1111's too."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in _texts(parameters).items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def add_parameters(png: bytes, parameters: dict[str, Any]) -> bytes:
    """The same PNG with the parameters' text chunks added before IEND: no re-encoding, so the
    pixels and their cost stay the same (the Instant engine's renders)."""
    if not png.startswith(_SIGNATURE) or not png.endswith(_IEND):
        raise ValueError("not a complete PNG")
    chunks = b"".join(_text_chunk(key, value) for key, value in _texts(parameters).items())
    return png[: -len(_IEND)] + chunks + _IEND


def read_parameters(png: bytes) -> dict[str, str]:
    """The text chunks of a PNG (what the tests and `lumiku` exports read back)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return {str(key): str(value) for key, value in getattr(image, "text", {}).items()}


def _texts(parameters: dict[str, Any]) -> dict[str, str]:
    texts = {key: str(value) for key, value in parameters.items() if value is not None}
    texts["parameters"] = a1111_text(parameters)
    return texts


def _text_chunk(key: str, value: str) -> bytes:
    """An iTXt chunk (UTF-8: prompts are not Latin-1), uncompressed."""
    data = key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + value.encode("utf-8")
    body = b"iTXt" + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
