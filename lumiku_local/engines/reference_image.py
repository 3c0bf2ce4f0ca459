"""What a diffusion model sees of a reference photo: the frame it starts from, the face it keeps."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from .base import FaceBox, Reference

if TYPE_CHECKING:
    from PIL import Image

# the frame around the face for img2img, in face sizes: a head-and-shoulders portrait
FRAME_FACES = 2.0


def photo(reference: Reference) -> Image.Image:
    from PIL import Image

    with Image.open(io.BytesIO(reference.png)) as image:
        return image.convert("RGB")


def frame(
    box: FaceBox, image_width: int, image_height: int, width: int, height: int
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): a `width`:`height` rectangle centred on the face, as large
    as FRAME_FACES face sizes, shrunk to fit and moved inside the photo."""
    aspect = width / height
    frame_height = box.size * FRAME_FACES / max(aspect, 1.0)
    frame_height = min(frame_height, image_height, image_width / aspect)
    frame_width = frame_height * aspect
    cx, cy = box.x + box.size / 2, box.y + box.size / 2
    left = min(max(cx - frame_width / 2, 0.0), image_width - frame_width)
    top = min(max(cy - frame_height / 2, 0.0), image_height - frame_height)
    return (round(left), round(top), round(left + frame_width), round(top + frame_height))


def init_image(reference: Reference, width: int, height: int) -> Image.Image:
    """The photo cropped to the job's aspect ratio around the face, at `width` x `height`."""
    from PIL import Image

    image = photo(reference)
    box = frame(reference.face_box, image.width, image.height, width, height)
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box)


def face_crop(reference: Reference) -> Image.Image:
    """The face square itself (what IP-Adapter plus-face was trained on), kept inside the photo."""
    image = photo(reference)
    box = reference.face_box
    size = max(1, min(box.size, image.width, image.height))
    left = min(max(box.x, 0), image.width - size)
    top = min(max(box.y, 0), image.height - size)
    return image.crop((left, top, left + size, top + size))
