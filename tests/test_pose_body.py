"""The Instant pose engine: the source avatar's head on a drawn body in each variation's pose,
through the real engine and its render processes, deterministic from the pose and the seed."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import pytest
from face_photos import drawn_face
from PIL import Image, ImageChops, ImageDraw

from lumiku_local import face_box, pose_body, pose_library
from lumiku_local.engines import DiceBearEngine, EngineJob, Reference, Variation
from lumiku_local.engines.base import FaceBox
from lumiku_local.engines.dicebear import engine_seed
from lumiku_local.png_parameters import read_parameters
from lumiku_local.storage import PreparedImage

SIDE = 256
MODEL_KEY = "pose-generator:instant"
GALLERY = ["standing-neutral", "gesture-wave", "sitting-chair"]
PORTRAITS = ["portrait-headshot", "portrait-waist-up-arms-crossed", "portrait-profile"]
SKIN, HAIR, BACKDROP = (246, 214, 194), (196, 72, 30), (80, 130, 200)
RIGHT_WRIST, NOSE, EYES_AND_EARS = 4, 0, (14, 15, 16, 17)


def photo_reference(flat: bool = False) -> Reference:
    """A drawn portrait; not `flat`: a dark corner (a window frame) as a photo's corners differ."""
    drawn = drawn_face(skin=SKIN, hair=HAIR, background=BACKDROP)
    image = drawn.image.copy()
    if not flat:
        ImageDraw.Draw(image).rectangle((0, 0, 60, 60), fill=(30, 30, 30))
    out = io.BytesIO()
    image.save(out, "PNG")
    png = out.getvalue()
    box = face_box.detect(drawn.image)
    width, height = image.size
    return Reference(png, hashlib.sha256(png).hexdigest(), width, height, box, 1.0, "pose")


def avatar_reference(engine: DiceBearEngine) -> Reference:
    png = engine.render_png("adventurer", engine_seed("a friendly wizard", 7), 512, 512)
    box = FaceBox(0, 0, 512, "user")  # all of it: a photo's circle would show its background
    return Reference(png, hashlib.sha256(png).hexdigest(), 512, 512, box, 0.8, "pose")


def job(reference: Reference | None, variations: list[Variation]) -> EngineJob:
    pose_ids = {variation.pose_id for variation in variations if variation.pose_id}
    return EngineJob(
        generation_id="g",
        model_key=MODEL_KEY,
        capabilities={"defaultStyle": "adventurer"},
        prompt="a friendly wizard",
        width=SIDE,
        height=SIDE,
        variations=variations,
        options={"mode": "gallery", "poseIds": sorted(pose_ids), "width": SIDE, "height": SIDE},
        reference=reference,
        poses={pose_id: keypoints(pose_id) for pose_id in pose_ids},
    )


def gallery(pose_ids: list[str], count: int, seed: int = 40) -> list[Variation]:
    return [
        Variation(key=f"{pose_id}-v{n}", seed=seed + index * count + n, pose_id=pose_id)
        for index, pose_id in enumerate(pose_ids)
        for n in range(1, count + 1)
    ]


def keypoints(pose_id: str) -> list[list[float]]:
    pose = pose_library.find(pose_id)
    assert pose is not None, pose_id
    return [list(point) for point in pose.keypoints]


def made(engine: DiceBearEngine, this_job: EngineJob) -> dict[str, PreparedImage]:
    images: dict[str, PreparedImage] = {}
    engine.generate(
        this_job,
        lambda variation, prepared: images.__setitem__(variation.key, prepared),
        lambda fraction, message: None,
        lambda: False,
    )
    assert list(images) == [variation.key for variation in this_job.variations]
    return images


def picture(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def at(pose_id: str, index: int) -> tuple[int, int]:
    x, y, visible = keypoints(pose_id)[index]
    assert visible, (pose_id, index)
    return (min(int(x * SIDE), SIDE - 1), min(int(y * SIDE), SIDE - 1))


def head_centre(pose_id: str) -> tuple[int, int]:
    points = [keypoints(pose_id)[index] for index in EYES_AND_EARS]
    visible = [(x, y) for x, y, shown in points if shown]
    return (
        int(sum(x for x, _ in visible) / len(visible) * SIDE),
        int(sum(y for _, y in visible) / len(visible) * SIDE),
    )


def share_near(image: Image.Image, box: tuple[int, int, int, int], colour, within=12) -> float:
    """The fraction of the box's pixels within `within` of `colour` on every channel."""
    data = image.crop(box).tobytes()
    rgb = [data[i : i + 3] for i in range(0, len(data), 3)]
    near = sum(all(abs(p - q) <= within for p, q in zip(px, colour, strict=True)) for px in rgb)
    return near / len(rgb)


def around(centre: tuple[int, int], half: int) -> tuple[int, int, int, int]:
    x, y = centre
    return (max(x - half, 0), max(y - half, 0), min(x + half, SIDE), min(y + half, SIDE))


def close(a, b, within: int = 12) -> bool:
    return all(abs(p - q) <= within for p, q in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def engine():
    engine = DiceBearEngine(processes=2)
    yield engine
    engine.close()


def test_three_poses_by_two_variations_are_six_images_each_the_same_made_alone(engine):
    reference = photo_reference()
    variations = gallery(GALLERY, 2)
    batch = made(engine, job(reference, variations))
    assert len({picture(prepared.png).tobytes() for prepared in batch.values()}) == 6
    for variation in variations:
        alone = made(engine, job(reference, [variation]))
        assert alone[variation.key].png == batch[variation.key].png, variation.key


def test_the_limbs_follow_the_pose(engine):
    reference = photo_reference()
    hand = pose_body.skin_of(pose_body.head_from_reference(reference))
    assert hand is not None
    standing, waving = (
        Variation(f"{pose}-v1", 5, pose) for pose in ("standing-neutral", "gesture-wave")
    )
    images = made(engine, job(reference, [standing, waving]))
    stood, waved = picture(images[standing.key].png), picture(images[waving.key].png)
    raised_hand, lowered_hand = at("gesture-wave", RIGHT_WRIST), at("standing-neutral", RIGHT_WRIST)
    # the same seed's colours: the hand is where each pose puts its wrist, and only there
    assert close(waved.getpixel(raised_hand), hand)
    assert close(stood.getpixel(lowered_hand), hand)
    assert not close(stood.getpixel(raised_hand), hand)
    assert not close(waved.getpixel(lowered_hand), hand)
    assert stood.getpixel(raised_hand) == stood.getpixel((2, 2))  # the background


def test_the_head_is_the_photos_face(engine):
    reference = photo_reference()
    variations = gallery(["standing-neutral", "portrait-headshot"], 1)
    images = made(engine, job(reference, variations))
    for variation in variations:
        assert variation.pose_id is not None
        image = picture(images[variation.key].png)
        head = around(head_centre(variation.pose_id), SIDE // 25)
        assert share_near(image, head, SKIN) > 0.15, variation.key
        x, y = head_centre(variation.pose_id)
        assert share_near(image, (x - 10, 0, x + 10, y), HAIR) > 0.05, variation.key  # above


def test_a_photo_with_one_flat_backdrop_is_cut_out_like_an_illustration(engine):
    reference = photo_reference(flat=True)
    variation = Variation("standing-neutral-v1", 3, "standing-neutral")
    image = picture(made(engine, job(reference, [variation]))[variation.key].png)
    head = around(head_centre("standing-neutral"), SIDE // 10)
    assert share_near(image, head, SKIN) > 0.1
    assert share_near(image, head, BACKDROP, within=6) == 0


def test_an_illustrated_avatars_head_comes_without_its_background_square(engine):
    reference = avatar_reference(engine)
    avatar = picture(reference.png)
    backdrop = avatar.getpixel((0, 0))
    # of the avatar's most common colours, the first that is not its background: its skin or
    # hair, which the posed head must show
    colours = sorted(avatar.getcolors(512 * 512) or [], reverse=True)
    own = next(rgb for _, rgb in colours if not close(rgb, backdrop, 30))
    # the cut head is the whole drawing, as wide and tall as it, its background gone
    cut = pose_body.head_from_reference(reference)
    drawing = ImageChops.difference(avatar, Image.new("RGB", avatar.size, backdrop)).getbbox()
    assert drawing is not None
    drawn_aspect = (drawing[2] - drawing[0]) / (drawing[3] - drawing[1])
    assert cut.width / cut.height == pytest.approx(drawn_aspect, rel=0.04)
    opaque = Image.new("RGB", cut.size, (0, 0, 0))
    opaque.paste(cut, mask=cut.getchannel("A").point(lambda value: 255 if value == 255 else 0))
    box = (0, 0, *cut.size)
    assert share_near(opaque, box, backdrop, within=4) < 0.005
    assert cut.getpixel((0, 0))[3] == 0  # type: ignore[index]
    variations = [Variation(f"standing-neutral-v{n}", n, "standing-neutral") for n in range(1, 9)]
    images = made(engine, job(reference, variations))
    checked = 0
    for variation in variations:
        image = picture(images[variation.key].png)
        if close(image.getpixel((2, 2)), backdrop, 30):
            continue  # this seed's background is the avatar's: nothing to tell apart
        checked += 1
        head = around(head_centre("standing-neutral"), SIDE // 10)
        assert share_near(image, head, own, within=6) > 0.05, variation.key
        assert share_near(image, head, backdrop, within=4) < 0.01, variation.key
    assert checked >= 3


def test_portrait_poses_are_busts(engine):
    reference = photo_reference()
    variations = gallery(PORTRAITS, 1)
    images = made(engine, job(reference, variations))
    assert len({picture(prepared.png).tobytes() for prepared in images.values()}) == 3
    for variation in variations:
        assert variation.pose_id is not None
        image = picture(images[variation.key].png)
        background = image.getpixel((0, 0))
        neck_x, _ = at(variation.pose_id, 1)
        # the torso runs out of the picture's bottom edge below the neck
        assert not close(image.getpixel((neck_x, SIDE - 2)), background), variation.key
        head = around(head_centre(variation.pose_id), SIDE // 25)
        assert share_near(image, head, SKIN) > 0.15, variation.key


def test_every_pose_png_names_its_pose(engine):
    reference = photo_reference()
    variation = Variation("gesture-wave-v2", 123, "gesture-wave")
    prepared = made(engine, job(reference, [variation]))[variation.key]
    parameters = read_parameters(prepared.png)
    assert parameters["lumiku_pose_id"] == "gesture-wave"
    assert parameters["lumiku_variation"] == "gesture-wave-v2"
    assert parameters["seed"] == "123"
    assert parameters["prompt"] == "a friendly wizard"
    assert parameters["lumiku_model_key"] == MODEL_KEY
    assert parameters["lumiku_reference_sha256"] == reference.sha256
    assert "Seed: 123" in parameters["parameters"]
    assert picture(prepared.png).size == (SIDE, SIDE)


def test_the_head_is_cut_once_per_generation(engine, monkeypatch):
    calls = []
    real = pose_body.head_from_reference

    def counted(reference):
        calls.append(reference.sha256)
        return real(reference)

    monkeypatch.setattr(pose_body, "head_from_reference", counted)
    made(engine, job(photo_reference(), gallery(GALLERY, 2)))
    assert len(calls) == 1


def test_a_pose_without_a_reference_gets_a_drawn_head(engine):
    variations = gallery(["standing-neutral"], 2)
    images = made(engine, job(None, variations))
    assert len({prepared.png for prepared in images.values()}) == 2
    image = picture(images[variations[0].key].png)
    head = around(head_centre("standing-neutral"), SIDE // 25)
    assert share_near(image, head, pose_body.SKIN_TONES[1]) > 0.3


def test_a_wide_picture_keeps_the_pose_centred(engine):
    reference = photo_reference()
    variation = Variation("standing-neutral-v1", 9, "standing-neutral")
    wide = dataclasses.replace(job(reference, [variation]), width=SIDE * 2, height=SIDE)
    image = picture(made(engine, wide)[variation.key].png)
    assert image.size == (SIDE * 2, SIDE)
    x, y = head_centre("standing-neutral")
    head = (x + SIDE // 2 - SIDE // 25, y - SIDE // 25, x + SIDE // 2 + SIDE // 25, y + SIDE // 25)
    assert share_near(image, head, SKIN) > 0.3
