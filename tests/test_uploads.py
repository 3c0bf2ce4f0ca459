"""Uploads: good images are re-encoded with a thumbnail; bad ones get a 4xx and write nothing."""

import io
import random
import struct
import zlib

import pytest
from conftest import API, png_bytes
from PIL import Image

from lumiku_local.models import Avatar


def upload(client, project, content, filename="photo.png", name=None, mime="image/png"):
    data = {"name": name} if name else None
    return client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": (filename, content, mime)},
        data=data,
    )


def files_written(settings):
    return sorted(p for p in settings.files_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_upload_reencodes_and_makes_a_thumbnail(client, fmt, mime):
    project = client.project()
    response = upload(
        client,
        project,
        png_bytes((800, 600), fmt=fmt),
        f"me.{fmt.lower()}",
        name="Me at the beach",
        mime=mime,
    )
    assert response.status_code == 201, response.text
    avatar = response.json()["avatar"]
    assert avatar["source"] == "upload" and avatar["name"] == "Me at the beach"
    assert (avatar["width"], avatar["height"]) == (800, 600)
    image = client.get(avatar["imageUrl"])
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).format == "PNG"
    thumb = Image.open(io.BytesIO(client.get(avatar["thumbnailUrl"]).content))
    assert thumb.format == "WEBP" and max(thumb.size) == 256
    listed = client.get(f"{API}/projects/{project}").json()["project"]["avatars"]
    assert [a["id"] for a in listed] == [avatar["id"]]


def test_upload_strips_metadata(client):
    out = io.BytesIO()
    image = Image.new("RGB", (32, 32), "red")
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # camera make
    image.save(out, "JPEG", exif=exif)
    response = upload(client, client.project(), out.getvalue(), "a.jpg", mime="image/jpeg")
    stored = client.get(response.json()["avatar"]["imageUrl"]).content
    assert b"SecretCam" not in stored


def _bomb_png(width=20_000, height=20_000):
    """A tiny PNG header that claims 400 megapixels."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


BAD_UPLOADS = {
    "not an image": (b"MZ\x90\x00 this is an exe", "tool.png", 415),
    "text claiming to be png": (b"hello world", "hello.png", 415),
    "gif": (b"GIF89a" + b"\x00" * 64, "anim.gif", 415),
    "truncated": (png_bytes((300, 300), color="blue")[:200], "cut.png", 422),
    "decompression bomb": (_bomb_png(), "bomb.png", 413),
    "path-like name": (png_bytes(), "../../etc/passwd.png", 422),
    "windows path name": (png_bytes(), "..\\..\\boot.png", 422),
    "empty": (b"", "empty.png", 422),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_upload_is_4xx_and_writes_nothing(client, settings, case):
    content, filename, status = BAD_UPLOADS[case]
    project = client.project()
    response = upload(client, project, content, filename)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert files_written(settings) == []
    assert Avatar.select().count() == 0


def test_fifty_megabyte_body_is_413_and_writes_nothing(client, settings):
    project = client.project()
    content = b"\x89PNG\r\n\x1a\n" + b"\x00" * (50 * 1024 * 1024)
    response = upload(client, project, content, "huge.png")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert files_written(settings) == []
    assert Avatar.select().count() == 0


def test_upload_over_the_configured_limit_is_413(app_client, settings):
    client = app_client(settings.with_changes(max_upload_bytes=10_000))
    big = png_bytes((400, 400))
    noisy = io.BytesIO()
    Image.effect_noise((400, 400), 64).save(noisy, "PNG")
    response = upload(client, client.project(), noisy.getvalue(), "noise.png")
    assert len(noisy.getvalue()) > 10_000 and big
    assert response.status_code == 413


def test_upload_into_missing_project_is_404(client, settings):
    response = upload(client, "missing", png_bytes())
    assert response.status_code == 404
    assert files_written(settings) == []


def test_upload_without_file_is_400(client):
    response = client.post(f"{API}/projects/{client.project()}/avatars/upload", data={"name": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_busy_photo_still_gets_a_thumbnail_of_at_most_30_kb(client):
    """Pure noise is the worst case for WebP; a gallery of hundreds must stay light."""
    noise = Image.frombytes("RGB", (400, 400), random.Random(1).randbytes(400 * 400 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG")
    project = client.project()
    response = upload(client, project, out.getvalue(), "noise.png")
    assert response.status_code == 201, response.text
    thumbnail = client.get(response.json()["avatar"]["thumbnailUrl"]).content
    assert len(thumbnail) <= 30_000
    assert Image.open(io.BytesIO(thumbnail)).format == "WEBP"
