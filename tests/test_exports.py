"""Exports: a streamed zip of avatars' PNGs, byte for byte, with a manifest of their rows."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tracemalloc
import zipfile

import pytest
from conftest import API, png_bytes
from litestar import Litestar, get
from litestar.response import Stream
from litestar.testing import TestClient
from PIL import Image

from lumiku_local import exports, storage
from lumiku_local.db import write_transaction
from lumiku_local.errors import NotFound
from lumiku_local.models import Avatar, AvatarProject
from lumiku_local.png_parameters import read_parameters

WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\.|$)", re.IGNORECASE)
SAFE_NAME = re.compile(r"^\d{3,}-[a-z0-9]+(-[a-z0-9]+)*\.png$")


def project_rows(project_id: str) -> list[Avatar]:
    return list(
        Avatar.select().where(Avatar.project == project_id).order_by(Avatar.created_at, Avatar.id)
    )


def unzip(content: bytes) -> tuple[zipfile.ZipFile, dict]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    return archive, json.loads(archive.read(exports.MANIFEST))


def generated_project(client, count: int = 3) -> str:
    project = client.project()
    generation = client.generate(project, count=count, seed=41)["generation"]
    assert client.wait_generation(generation["id"])["status"] == "completed"
    return project


def insert_avatars(settings, project_id: str, names: list[str], side: int = 0) -> list[Avatar]:
    """Avatar rows with files written by storage; distinct colours make distinct files, and a
    PNG saved uncompressed is side x side x 3 bytes, whatever its colour."""
    user_id = AvatarProject.get_by_id(project_id).user_id
    rows = []
    with write_transaction():
        for index, name in enumerate(names):
            colour = (index % 256, index // 256, 200)
            image = Image.new("RGB", (side or 32, side or 32), colour)
            out = io.BytesIO()
            image.save(out, "PNG", compress_level=0)
            stored = storage.write(settings.files_dir, storage.prepare_png(out.getvalue(), image))
            rows.append(
                Avatar.create(
                    user=user_id,
                    project=project_id,
                    name=name,
                    source="generated",
                    variation_key=f"v{index}",
                    seed=1000 + index,
                    model_key="instant",
                    prompt=f"avatar {index}",
                    image_file=stored.image_file,
                    thumbnail_file=stored.thumbnail_file,
                    width=stored.width,
                    height=stored.height,
                    file_size=stored.file_size,
                )
            )
    return rows


def test_every_png_is_in_the_zip_as_stored_and_the_manifest_matches_the_rows(client, settings):
    project = generated_project(client, count=3)
    photo = client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": ("me.png", png_bytes((80, 60), "teal"), "image/png")},
        data={"name": "Me at the beach"},
    )
    assert photo.status_code == 201, photo.text
    rows = project_rows(project)
    assert len(rows) == 4

    archive, manifest = unzip(b"".join(exports.stream(exports.plan(settings.files_dir, rows))))

    assert manifest["missing"] == [] and manifest["count"] == 4
    assert archive.namelist() == [file["name"] for file in manifest["files"]] + ["manifest.json"]
    for row, file in zip(rows, manifest["files"], strict=True):
        content = archive.read(file["name"])
        assert content == storage.resolve(settings.files_dir, row.image_file).read_bytes()
        assert content == client.get(f"{API}/avatars/{row.id}/image").content
        assert file["sha256"] == hashlib.sha256(content).hexdigest() == row.image_file[3:-4]
        assert file["bytes"] == row.file_size
        expected = {
            "avatarId": row.id,
            "avatarName": row.name,
            "generationId": row.generation_id,
            "variationKey": row.variation_key,
            "poseId": None,
            "seed": row.seed,
            "modelKey": row.model_key,
            "prompt": row.prompt,
            "style": row.style,
            "width": row.width,
            "height": row.height,
            "createdAt": row.created_at.isoformat() + "Z",
        }
        assert {key: file[key] for key in expected} == expected
        if row.source == "generated":  # the stored PNG carries its parameters
            assert f"Seed: {row.seed}" in read_parameters(content)["parameters"]


def test_dicts_rows_and_a_pose_id_go_into_the_manifest(client, settings):
    project = generated_project(client, count=1)
    row = Avatar.select().where(Avatar.project == project).dicts().get()
    row["pose_id"] = "standing-arms-crossed"  # the column the Pose Generator adds

    archive, manifest = unzip(b"".join(exports.stream(exports.plan(settings.files_dir, [row]))))

    (file,) = manifest["files"]
    assert file["poseId"] == "standing-arms-crossed"
    assert file["generationId"] == row["generation"] and file["avatarId"] == row["id"]
    assert (
        archive.read(file["name"])
        == storage.resolve(settings.files_dir, row["image_file"]).read_bytes()
    )


NASTY_NAMES = [
    "CON",
    "nul",
    "com1.txt",
    "../../etc/passwd",
    'a:b*c?"<>|\\d',
    "name with trailing dot. ",
    "Zoë Ñandú",
    "🙂🙂🙂",
    "",
    "   ",
    "x" * 500,
    "Wizard",
    "wizard",
    "Wizard",
]


def test_names_are_unique_and_safe_for_nasty_avatar_names(client, settings):
    rows = insert_avatars(settings, client.project(), NASTY_NAMES)
    rows[11].variation_key = rows[12].variation_key = "AUX/../v1"  # as odd as names
    rows[11].generation_id = rows[12].generation_id = None

    export = exports.plan(settings.files_dir, rows + rows[:2])  # a row given twice goes once
    archive, manifest = unzip(b"".join(exports.stream(export)))

    names = [file["name"] for file in manifest["files"]]
    assert len(names) == len(NASTY_NAMES)
    assert len({name.casefold() for name in names}) == len(names)
    for name in names:
        assert SAFE_NAME.match(name), name
        assert len(name) <= 100 and not WINDOWS_RESERVED.match(name)
    assert names[6] == "007-zoe-nandu-v6.png" and names[11] == "012-wizard-aux-v1.png"
    assert names[7] == "008-avatar-v7.png"  # nothing left of the name: a word that says what
    assert set(archive.namelist()) == {*names, "manifest.json"}


def test_missing_files_are_listed_and_deleted_avatars_left_out(client, settings):
    project = generated_project(client, count=3)
    gone, deleted, kept = project_rows(project)
    storage.resolve(settings.files_dir, gone.image_file).unlink()
    assert client.delete(f"{API}/avatars/{deleted.id}").status_code == 204

    archive, manifest = unzip(
        b"".join(exports.stream(exports.plan(settings.files_dir, project_rows(project))))
    )

    assert [file["avatarId"] for file in manifest["files"]] == [kept.id]
    assert [(m["avatarId"], m["variationKey"]) for m in manifest["missing"]] == [
        (gone.id, gone.variation_key)
    ]
    assert "not in the data folder" in manifest["missing"][0]["reason"]
    assert len(archive.namelist()) == 2


def test_nothing_to_export_is_not_found(client, settings):
    project = generated_project(client, count=2)
    rows = project_rows(project)
    for row in rows:
        storage.resolve(settings.files_dir, row.image_file).unlink()
    with pytest.raises(NotFound, match="no image file"):
        exports.plan(settings.files_dir, rows)
    with pytest.raises(NotFound, match="no live avatar"):
        exports.plan(settings.files_dir, [])


def test_a_200_image_export_streams_without_holding_it_in_memory(client, settings, tmp_path):
    rows = insert_avatars(settings, client.project(), [f"Pose {n}" for n in range(200)], side=260)
    paths = [storage.resolve(settings.files_dir, row.image_file) for row in rows]
    total = sum(path.stat().st_size for path in paths)
    assert len(set(paths)) == 200 and total > 200 * 200_000
    export = exports.plan(settings.files_dir, rows)
    zip_path = tmp_path / "export.zip"

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        chunks = exports.stream(export)
        with zip_path.open("wb") as out:
            out.write(next(chunks))
            # the stream has begun: the last file, not read yet, goes now and is reported
            paths[-1].unlink()
            for chunk in chunks:
                out.write(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < total / 10, f"peak {peak} bytes for a {total}-byte export"
    archive, manifest = unzip(zip_path.read_bytes())
    assert [m["avatarId"] for m in manifest["missing"]] == [rows[-1].id]
    assert "went while exporting" in manifest["missing"][0]["reason"]
    assert len(manifest["files"]) == 199
    for path, file in zip(paths, manifest["files"], strict=False):
        assert archive.read(file["name"]) == path.read_bytes()


def test_the_download_response_streams_a_zip_attachment(client, settings):
    project = generated_project(client, count=2)
    export = exports.plan(settings.files_dir, project_rows(project))

    @get("/export", sync_to_thread=False)
    def download() -> Stream:
        return exports.response(export, "Poses – Zoë.zip")

    with TestClient(Litestar([download])) as tiny:
        answer = tiny.get("/export")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert "content-length" not in answer.headers
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"poses-zoe.zip\"; filename*=UTF-8''Poses%20%E2%80%93%20Zo%C3%AB.zip"
    )
    archive, manifest = unzip(answer.content)
    assert [file["name"] for file in manifest["files"]] == [entry.name for entry in export.entries]
    for entry in export.entries:
        assert archive.read(entry.name) == entry.path.read_bytes()
