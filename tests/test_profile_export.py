"""Profile-ready exports (POST …/exports): chosen avatars as a streamed zip, as stored or at
profile sizes, square or round, transparent where the Instant engine can draw them again."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import tracemalloc
import zipfile

from conftest import API, png_bytes
from PIL import Image

from lumiku_local import exports, profile_images, storage
from lumiku_local.engines.dicebear import CANNOT_LOSE_BACKGROUND, DiceBearEngine, engine_seed
from lumiku_local.models import Avatar, AvatarProject
from lumiku_local.png_parameters import read_parameters

EXPORTS = f"{API}/exports"
PROFILE_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*-\d+px(-circle)?(-\d+)?\.png$")
WINDOWS_FORBIDDEN = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def unzip(content: bytes) -> tuple[zipfile.ZipFile, dict]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    return archive, json.loads(archive.read(exports.MANIFEST))


def picture(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def generated(client, project: str, count: int = 2, **body) -> list[dict]:
    generation = client.generate(project, count=count, seed=41, **body)["generation"]
    done = client.wait_generation(generation["id"])
    assert done["status"] == "completed", done
    return done["avatars"]


def upload(client, project: str, size=(120, 80), name="Me at the beach") -> dict:
    response = client.post(
        f"{API}/projects/{project}/avatars/upload",
        files={"file": ("me.png", png_bytes(size, "teal"), "image/png")},
        data={"name": name},
    )
    assert response.status_code == 201, response.text
    return response.json()["avatar"]


def export(client, expect: int = 200, **body):
    response = client.post(EXPORTS, json=body)
    assert response.status_code == expect, response.text
    return response


def test_without_sizes_the_stored_pngs_go_as_they_are(client, settings):
    project = client.project("Team portraits")
    avatars = generated(client, project, count=2)
    photo = upload(client, project)
    ids = [photo["id"], avatars[1]["id"], avatars[0]["id"], photo["id"]]  # twice: once

    response = export(client, avatarIds=ids)

    assert response.headers["content-type"] == "application/zip"
    assert "content-length" not in response.headers  # streamed
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="team-portraits-3-avatars.zip"')
    assert "Team%20portraits%20-%203%20avatars.zip" in disposition
    archive, manifest = unzip(response.content)
    assert [file["avatarId"] for file in manifest["files"]] == ids[:3]
    assert manifest["missing"] == [] and "profile" not in manifest
    for file in manifest["files"]:
        row = Avatar.get_by_id(file["avatarId"])
        content = archive.read(file["name"])
        assert content == storage.resolve(settings.files_dir, row.image_file).read_bytes()
        assert file["sha256"] == hashlib.sha256(content).hexdigest()


def test_sizes_make_one_png_per_avatar_and_size_with_parameters(client):
    project = client.project("Zoë’s team")
    avatars = generated(client, project, count=2, style="bottts")
    photo = upload(client, project, size=(300, 200))
    ids = [avatars[0]["id"], avatars[1]["id"], photo["id"]]
    sizes = [1024, 512, 400, 320, 128]

    archive, manifest = unzip(export(client, avatarIds=ids, sizes=sizes).content)

    assert manifest["profile"] == {"sizes": sizes, "shape": "square", "background": "keep"}
    files = manifest["files"]
    assert [(f["avatarId"], f["width"]) for f in files] == [(i, s) for i in ids for s in sizes]
    assert archive.namelist() == [f["name"] for f in files] + ["manifest.json"]
    names = [f["name"] for f in files]
    assert len({name.casefold() for name in names}) == len(names)
    first = Avatar.get_by_id(ids[0])
    assert names[0] == f"zoes-team-{exports.slug(first.name, '')}-{first.variation_key}-1024px.png"
    assert names[-1] == "zoes-team-me-at-the-beach-upload-128px.png"
    for file in files:
        assert PROFILE_NAME.match(file["name"]) and not WINDOWS_FORBIDDEN.search(file["name"])
        content = archive.read(file["name"])
        image = picture(content)
        assert image.size == (file["width"], file["width"]) == (file["height"], file["height"])
        assert (
            file["bytes"] == len(content) and file["sha256"] == hashlib.sha256(content).hexdigest()
        )
        texts = read_parameters(content)
        assert texts["lumiku_export_size"] == str(file["width"])
        assert texts["lumiku_export_shape"] == "square"
        if file["avatarId"] != photo["id"]:  # the generation's parameters, as the PNG had them
            row = Avatar.get_by_id(file["avatarId"])
            assert f"Seed: {row.seed}" in texts["parameters"] and texts["lumiku_style"] == "bottts"
            assert (file["sourceWidth"], file["sourceHeight"]) == (row.width, row.height)
        else:
            assert (file["sourceWidth"], file["sourceHeight"]) == (300, 200)
            assert image.getpixel((0, 0))[:3] == (0, 128, 128)  # the photo's teal, cut square


def test_circle_corners_are_transparent_and_the_middle_is_not(client):
    project = client.project()
    (avatar,) = generated(client, project, count=1)
    photo = upload(client, project)

    archive, manifest = unzip(
        export(
            client, avatarIds=[avatar["id"], photo["id"]], sizes=[256, 64], shape="circle"
        ).content
    )

    assert len(manifest["files"]) == 4
    for file in manifest["files"]:
        assert file["name"].endswith(f"-{file['width']}px-circle.png")
        image = picture(archive.read(file["name"]))
        assert image.mode == "RGBA" and image.size == (file["width"],) * 2
        last = file["width"] - 1
        for corner in ((0, 0), (last, 0), (0, last), (last, last)):
            assert image.getpixel(corner)[3] == 0
        assert image.getpixel((file["width"] // 2, file["width"] // 2))[3] == 255
        assert image.getpixel((file["width"] // 2, 0))[3] > 0  # the circle touches the edge


def test_without_sizes_a_circle_is_cut_at_the_avatars_own_size(client):
    photo = upload(client, client.project(), size=(90, 60))
    archive, manifest = unzip(export(client, avatarIds=[photo["id"]], shape="circle").content)
    (file,) = manifest["files"]
    assert picture(archive.read(file["name"])).size == (60, 60)
    assert file["name"].endswith("-60px-circle.png")


def test_a_transparent_instant_avatar_is_drawn_again_without_its_background(client, settings):
    project = client.project()
    (avatar,) = generated(client, project, count=1, style="adventurer", width=256, height=256)
    row = Avatar.get_by_id(avatar["id"])
    stored = picture(storage.resolve(settings.files_dir, row.image_file).read_bytes())

    archive, manifest = unzip(
        export(client, avatarIds=[row.id], sizes=[256, 512], background="transparent").content
    )

    small, large = (picture(archive.read(f["name"])) for f in manifest["files"])
    assert manifest["files"][0]["background"] == "transparent"
    assert stored.convert("RGBA").getpixel((0, 0))[3] == 255  # the stored one has a background
    for image in (small, large):
        assert image.getpixel((0, 0))[3] == 0 and image.getpixel((image.width - 1, 0))[3] == 0
    assert large.size == (512, 512)
    # the same drawing: where the new one is opaque, the stored one has the same colour
    stored_rgba, same, opaque = stored.convert("RGBA"), 0, 0
    for y in range(0, 256, 2):
        for x in range(0, 256, 2):
            pixel = small.getpixel((x, y))
            if pixel[3] == 255:
                opaque += 1
                same += stored_rgba.getpixel((x, y)) == pixel
    assert opaque > 256 * 256 / 4 / 10 and same / opaque > 0.98
    texts = read_parameters(archive.read(manifest["files"][0]["name"]))
    assert texts["lumiku_export_background"] == "transparent" and "Seed:" in texts["parameters"]


def test_drawing_without_a_background_keeps_every_other_pick():
    engine = DiceBearEngine(processes=1)
    for style in ("adventurer", "bottts", "lorelei", "avataaars"):
        seed = engine_seed("a friendly wizard", 7)
        kept = picture(engine.render_png(style, seed, 96, 96)).convert("RGBA")
        bare = picture(engine.render_png(style, seed, 96, 96, background=False))
        opaque = [(x, y) for y in range(96) for x in range(96) if bare.getpixel((x, y))[3] == 255]
        assert bare.getpixel((0, 0))[3] == 0 and kept.getpixel((0, 0))[3] == 255
        assert opaque and all(kept.getpixel(p) == bare.getpixel(p) for p in opaque), style
    for style in ("initials", "disco"):  # why they are refused: the drawing blends with it
        seed = engine_seed("a friendly wizard", 7)
        kept = picture(engine.render_png(style, seed, 96, 96)).convert("RGBA")
        bare = picture(engine.render_png(style, seed, 96, 96, background=False))
        opaque = [(x, y) for y in range(96) for x in range(96) if bare.getpixel((x, y))[3] == 255]
        assert sum(kept.getpixel(p) != bare.getpixel(p) for p in opaque) > len(opaque) / 2
        assert style in CANNOT_LOSE_BACKGROUND
    engine.close()


def test_transparent_is_refused_by_name_for_what_cannot_lose_its_background(client):
    project = client.project()
    (instant,) = generated(client, project, count=1)
    (initials,) = generated(client, project, count=1, style="initials", prompt="letters")
    photo = upload(client, project, name="Holiday photo")

    response = export(
        client,
        expect=422,
        avatarIds=[instant["id"], photo["id"], initials["id"]],
        sizes=[128],
        background="transparent",
    )

    message = response.json()["error"]["message"]
    assert (
        f"'Holiday photo' ({photo['id']}) cannot lose its background: it is an uploaded photo"
    ) in message
    assert f"'letters' ({initials['id']}) cannot lose its background: the initials style" in message
    assert instant["id"] not in message and "Nothing was exported" in message
    assert export(client, avatarIds=[instant["id"]], background="transparent").status_code == 200


def test_what_the_page_offers_matches_what_the_export_does(client, settings):
    project = client.project()
    (instant,) = generated(client, project, count=1)
    photo = upload(client, project)
    assert isinstance(
        profile_images.redraw_for(Avatar.get_by_id(instant["id"]), settings.files_dir),
        profile_images.Redraw,
    )
    reason = profile_images.redraw_for(Avatar.get_by_id(photo["id"]), settings.files_dir)
    assert isinstance(reason, str) and "uploaded photo" in reason


BAD_INPUT = [
    ({"avatarIds": []}, 422, "between 1 and 500 avatars"),
    ({"avatarIds": [f"id{n}" for n in range(501)]}, 422, "between 1 and 500 avatars"),
    ({"avatarIds": ["AVATAR"], "sizes": []}, 422, "at least one size"),
    ({"avatarIds": ["AVATAR"], "sizes": [15]}, 422, "between 16 and 2048 px; 15"),
    ({"avatarIds": ["AVATAR"], "sizes": [512, 4096]}, 422, "4096 is not"),
    ({"avatarIds": ["AVATAR"], "sizes": list(range(16, 25))}, 422, "at most 8 sizes"),
    ({"avatarIds": ["AVATAR"], "shape": "oval"}, 422, "shape must be square or circle"),
    ({"avatarIds": ["AVATAR"], "background": "none"}, 422, "keep or transparent"),
    ({"avatarIds": ["AVATAR"], "sizes": ["512"]}, 400, "sizes"),
    ({"avatarIds": ["AVATAR"], "size": 512}, 400, "size is not a field"),
    ({"avatarIds": ["AVATAR", "nope", "gone"]}, 404, "'nope', 'gone'; nothing was exported"),
    ({"avatarIds": ["AVATAR", "DELETED"]}, 404, "nothing was exported"),
    ({}, 400, "avatarIds is required"),
]


def test_bad_input_is_a_clear_4xx_and_changes_nothing(client, settings):
    project = client.project()
    avatar, deleted = generated(client, project, count=2)
    assert client.delete(f"{API}/avatars/{deleted['id']}").status_code == 204
    balance = client.balance()
    files = sorted(p.name for p in settings.files_dir.rglob("*") if p.is_file())
    names = {"AVATAR": avatar["id"], "DELETED": deleted["id"]}
    for body, status, words in BAD_INPUT:
        sent = {
            key: [names.get(v, v) for v in value] if key == "avatarIds" else value
            for key, value in body.items()
        }

        response = client.post(EXPORTS, json=sent)

        assert response.status_code == status, (body, response.text)
        assert words in response.json()["error"]["message"], body
        assert response.headers["content-type"].startswith("application/json")
    assert client.balance() == balance
    assert sorted(p.name for p in settings.files_dir.rglob("*") if p.is_file()) == files
    assert AvatarProject.get_by_id(project).deleted_at is None
    assert Avatar.get_by_id(avatar["id"]).deleted_at is None


def test_the_export_is_documented_in_openapi(client):
    schema = client.get("/schema/openapi.json").json()
    operation = schema["paths"][EXPORTS]["post"]
    assert operation["tags"] == ["exports"]
    assert {"200", "400", "404", "422"} <= set(operation["responses"])
    assert "application/zip" in operation["responses"]["200"]["content"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"avatarIds", "sizes", "shape", "background"} <= set(body["properties"])


def noisy_avatars(settings, project_id: str, count: int, side: int) -> list[Avatar]:
    """Avatar rows whose PNGs are noise: a resized copy does not compress to nothing."""
    from lumiku_local.db import write_transaction

    user_id = AvatarProject.get_by_id(project_id).user_id
    rows = []
    with write_transaction():
        for index in range(count):
            image = Image.frombytes(
                "RGB", (side, side), random.Random(index).randbytes(side**2 * 3)
            )
            out = io.BytesIO()
            image.save(out, "PNG", compress_level=1)
            stored = storage.write(settings.files_dir, storage.prepare_png(out.getvalue(), image))
            rows.append(
                Avatar.create(
                    user=user_id,
                    project=project_id,
                    name=f"Noise {index}",
                    source="generated",
                    variation_key=f"v{index}",
                    seed=index,
                    model_key="instant",
                    prompt="noise",
                    image_file=stored.image_file,
                    thumbnail_file=stored.thumbnail_file,
                    width=stored.width,
                    height=stored.height,
                    file_size=stored.file_size,
                )
            )
    return rows


def test_a_profile_export_of_200_avatars_holds_one_image_at_a_time(client, settings):
    rows = noisy_avatars(settings, client.project(), 200, side=160)
    profile = profile_images.choose([128], "circle")
    export_plan = exports.for_avatars(settings.files_dir, [row.id for row in rows], profile)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sizes = [len(chunk) for chunk in exports.stream(export_plan)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    total = sum(sizes)
    assert total > 200 * 128 * 128 * 3 / 2  # 200 noisy PNGs of 128 x 128
    assert max(sizes[:-1]) < 2 * 128 * 128 * 4  # one image at a time (the last: the manifest)
    # the manifest and the zip's directory (some 1 MB for 200 records), never the 200 images
    assert peak < total / 5, f"peak {peak} bytes for a {total}-byte zip"


# ---------------------------------------------------------------- the avatar page's panel


def test_the_page_form_streams_the_same_zip_and_one_size_downloads(client):
    project = client.project("Team")
    (avatar,) = generated(client, project, count=1)
    page = client.get(f"/avatars/{avatar['id']}", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "Export for profiles" in page.text and "data-profile-transparent" in page.text
    form = {"avatarId": avatar["id"], "size": ["512", "128"], "shape": "circle"}
    form["background"] = "transparent"

    answer = client.post("/ui/exports", data=form)

    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    archive, manifest = unzip(answer.content)
    assert manifest["profile"] == {
        "sizes": [512, 128],
        "shape": "circle",
        "background": "transparent",
    }
    assert [picture(archive.read(f["name"])).size for f in manifest["files"]] == [
        (512,) * 2,
        (128,) * 2,
    ]

    one = client.get(f"/ui/avatars/{avatar['id']}/profile.png?size=400&shape=circle")
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    assert picture(one.content).size == (400, 400) and picture(one.content).getpixel((0, 0))[3] == 0
    assert one.headers["content-disposition"].startswith('attachment; filename="team-')
    assert one.headers["content-disposition"].endswith("-400px-circle.png")
    preview = client.get(f"/ui/avatars/{avatar['id']}/profile.png?size=320&download=false")
    assert "content-disposition" not in preview.headers


def test_the_page_says_plainly_when_there_is_no_transparent_background(client):
    photo = upload(client, client.project())
    page = client.get(f"/avatars/{photo['id']}", headers={"accept": "text/html"})
    assert "data-profile-transparent" not in page.text
    assert "No transparent background for this avatar: it is an uploaded photo" in page.text
    refused = client.post(
        "/ui/exports", data={"avatarId": photo["id"], "size": "128", "background": "transparent"}
    )
    assert refused.status_code == 422 and "cannot lose its background" in refused.text
    assert client.post("/ui/exports", data={"avatarId": photo["id"]}).status_code == 422
    bad = client.post("/ui/exports", data={"avatarId": photo["id"], "size": "big"})
    assert bad.status_code == 422 and "whole numbers" in bad.text
    assert client.get(f"/ui/avatars/{photo['id']}/profile.png?size=9999").status_code == 422
    assert client.get("/ui/avatars/nope/profile.png").status_code == 404
