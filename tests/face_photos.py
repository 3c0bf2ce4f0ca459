"""Test photos drawn with Pillow: a face OpenCV's Haar cascade finds, and photos without one."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class DrawnFace:
    image: Image.Image
    # the drawn head (hair to chin) and its face (the skin oval), as (left, top, right, bottom)
    head: tuple[float, float, float, float]
    face: tuple[float, float, float, float]

    def png(self) -> bytes:
        out = io.BytesIO()
        self.image.save(out, "PNG")
        return out.getvalue()


def _scaled(colour: RGB, factor: float) -> RGB:
    r, g, b = (min(255, int(channel * factor)) for channel in colour)
    return (r, g, b)


def drawn_face(
    width: int = 640,
    height: int = 480,
    centre: tuple[int, int] | None = None,
    face_width: int = 200,
    skin: RGB = (224, 172, 140),
    hair: RGB = (60, 40, 25),
    background: RGB = (90, 140, 200),
) -> DrawnFace:
    """A frontal face: skin oval, hair behind and over the forehead, lit forehead, nose bridge
    and cheeks, shaded eye sockets, dark brows and eyes, a nose and a mouth, softly blurred
    (what the cascade's features look for: eyes darker than cheeks and the bridge between)."""
    cx, cy = centre or (width // 2, height // 2)
    fw, fh = face_width, int(face_width * 1.3)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse([cx - fw * 0.58, cy - fh * 0.62, cx + fw * 0.58, cy + fh * 0.2], fill=hair)
    draw.ellipse([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], fill=skin)
    draw.chord([cx - fw * 0.52, cy - fh * 0.6, cx + fw * 0.52, cy - fh * 0.3], 180, 360, hair)
    lit = _scaled(skin, 1.15)
    draw.ellipse([cx - fw * 0.3, cy - fh * 0.32, cx + fw * 0.3, cy - fh * 0.16], fill=lit)
    draw.rectangle([cx - fw * 0.06, cy - fh * 0.16, cx + fw * 0.06, cy + fh * 0.05], fill=lit)
    eye_y = cy - fh * 0.08
    for side in (-1, 1):
        cheek_x, eye_x = cx + side * fw * 0.22, cx + side * fw * 0.2
        draw.ellipse([cheek_x - fw * 0.1, cy + fh * 0.02, cheek_x + fw * 0.1, cy + fh * 0.14], lit)
        socket = [eye_x - fw * 0.15, eye_y - fw * 0.16, eye_x + fw * 0.15, eye_y + fw * 0.08]
        draw.ellipse(socket, fill=_scaled(skin, 0.75))
    dark = _scaled(skin, 0.35)
    for side in (-1, 1):
        eye_x = cx + side * fw * 0.2
        draw.ellipse(
            [eye_x - fw * 0.13, eye_y - fw * 0.14, eye_x + fw * 0.13, eye_y - fw * 0.09], dark
        )
        draw.ellipse(
            [eye_x - fw * 0.1, eye_y - fw * 0.05, eye_x + fw * 0.1, eye_y + fw * 0.05], dark
        )
    nose = [(cx, eye_y), (cx - fw * 0.07, cy + fh * 0.12), (cx + fw * 0.07, cy + fh * 0.12)]
    draw.polygon(nose, fill=_scaled(skin, 0.8))
    draw.ellipse([cx - fw * 0.17, cy + fh * 0.22, cx + fw * 0.17, cy + fh * 0.29], (138, 60, 60))
    image = image.filter(ImageFilter.GaussianBlur(max(1, fw * 0.01)))
    head = (cx - fw * 0.58, cy - fh * 0.62, cx + fw * 0.58, cy + fh / 2)
    face = (cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2)
    return DrawnFace(image, head, face)


def landscape(width: int = 640, height: int = 480) -> Image.Image:
    """Sky, sun and hills: edges and blobs, no face."""
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.merge(
        "RGB", [sky.point(lambda v: 80 + v // 3), sky, sky.point(lambda v: 255 - v // 4)]
    )
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.7, height * 0.1, width * 0.85, height * 0.3], fill=(250, 220, 90))
    for n, shade in enumerate(((70, 130, 60), (50, 100, 45), (35, 80, 35))):
        top = height * (0.55 + 0.12 * n)
        draw.polygon(
            [(0, top + 40), (width * 0.4, top), (width, top + 60), (width, height), (0, height)],
            fill=shade,
        )
    return image.filter(ImageFilter.GaussianBlur(2))
