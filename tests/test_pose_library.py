"""The pose library: at least 40 poses in 6 categories on one body, the pose for a description
in words, and OpenPose JSON files read back as they were written, bad ones refused."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lumiku_local import pose_library
from lumiku_local.errors import InvalidInput, PayloadTooLarge

ROOT = Path(__file__).resolve().parent.parent
# a 7.5-head figure's limbs, in head heights, by COCO-18 keypoint pairs
BONES = {
    (2, 3): 1.35, (5, 6): 1.35,  # upper arms
    (3, 4): 1.2, (6, 7): 1.2,  # forearms
    (8, 9): 1.85, (11, 12): 1.85,  # thighs
    (9, 10): 1.75, (12, 13): 1.75,  # shins
    (1, 8): 2.7, (1, 11): 2.7,  # neck to hips
}  # fmt: skip


def test_the_library_has_at_least_40_poses_in_6_categories_with_stable_unique_ids():
    poses = pose_library.poses()
    assert len(poses) >= 40
    assert len({pose.id for pose in poses}) == len(poses)
    assert {pose.category for pose in poses} == set(pose_library.CATEGORIES)
    assert len(pose_library.CATEGORIES) >= 6
    for pose in poses:
        assert pose.id == pose.id.lower() and " " not in pose.id, pose.id  # a slug
        assert pose.name and pose.tags, pose.id
        assert pose_library.find(pose.id) == pose
    assert pose_library.find("no-such-pose") is None
    assert pose_library.find(pose_library.DEFAULT_POSE_ID) is not None


def test_every_pose_has_18_keypoints_on_the_canvas():
    for pose in pose_library.poses():
        assert len(pose.keypoints) == len(pose_library.KEYPOINT_NAMES) == 18, pose.id
        for x, y, visible in pose.keypoints:
            assert visible in (0, 1), pose.id
            if visible:
                assert 0 <= x <= 1 and 0 <= y <= 1, (pose.id, x, y)
            else:
                assert (x, y) == (0, 0), pose.id  # as OpenPose writes a keypoint not seen
        assert pose.keypoints[1][2] == 1, pose.id  # every pose shows its neck
        assert sum(visible for _, _, visible in pose.keypoints) >= pose_library.MIN_VISIBLE


def test_each_pose_is_one_body_its_limbs_in_proportion():
    """A limb seen at an angle looks shorter, never longer. Measured against the torso (neck
    to hips, upright or leaning, never pointing at the camera), no limb is longer than a
    7.5-head body's, nor shortened past a quarter of it."""
    for pose in pose_library.poses():
        points = pose.keypoints
        if not (points[8][2] and points[11][2]):  # a close portrait: no torso to measure by
            assert pose.category == "portrait", pose.id
            continue
        head = (
            math.dist(points[1][:2], points[8][:2]) + math.dist(points[1][:2], points[11][:2])
        ) / (2 * BONES[(1, 8)])  # canvas units per head height
        if pose.category != "portrait":  # a whole body fills most of the canvas
            assert 0.06 < head < 0.2, (pose.id, head)
        for (a, b), length in BONES.items():
            if points[a][2] and points[b][2]:
                ratio = math.dist(points[a][:2], points[b][:2]) / (length * head)
                assert 0.25 <= ratio <= 1.05, (pose.id, pose_library.KEYPOINT_NAMES[b], ratio)


def test_portraits_frame_the_upper_body_and_leave_the_legs_out():
    portraits = [pose for pose in pose_library.poses() if pose.category == "portrait"]
    assert len(portraits) >= 6
    for pose in portraits:
        ankles_and_knees = [pose.keypoints[i][2] for i in (9, 10, 12, 13)]
        assert not any(ankles_and_knees), pose.id
        assert pose.keypoints[0][2] or pose.keypoints[16][2], pose.id  # the head is in it


def test_the_build_script_agrees_the_library_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "build" / "make_poses.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("text", "pose_id", "words"),
    [
        ("waving hello", "gesture-wave", ["waving", "hello"]),
        ("A girl Jumping for joy!", "action-jumping", ["jumping", "joy"]),
        ("sitting cross-legged, meditating", "sitting-cross-legged",
         ["sitting", "cross", "legged", "meditating"]),
        ("arms crossed", "standing-arms-crossed", ["arms", "crossed"]),
        ("he is running fast", "action-running", ["running", "fast"]),
        ("thumbs up", "gesture-thumbs-up", ["thumbs", "up"]),
    ],
)  # fmt: skip
def test_a_description_gets_the_pose_whose_tags_it_matches_and_says_which_words(
    text, pose_id, words
):
    pose, matched = pose_library.best_match(text)
    assert (pose.id, matched) == (pose_id, words)
    assert pose_library.best_match(text) == (pose, matched)  # the same every time


@pytest.mark.parametrize("text", ["", "   ", "zxqv blorp", "the a of with"])
def test_a_description_matching_nothing_gets_the_default_pose_and_no_words(text):
    pose, matched = pose_library.best_match(text)
    assert pose.id == pose_library.DEFAULT_POSE_ID
    assert matched == []


def openpose_file(keypoints, width, height, *, canvas=True, **extra) -> bytes:
    """A file as OpenPose and the pose editors write it: pixels, confidence, 0 0 0 unseen."""
    values: list[float] = []
    for x, y, visible in keypoints:
        values += [x * width, y * height, 0.93] if visible else [0.0, 0.0, 0.0]
    document = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": values}]}
    if canvas:
        document |= {"canvas_width": width, "canvas_height": height}
    return json.dumps(document | extra).encode()


def close(keypoints, expected, tolerance=1e-4):
    return all(
        v == ev and abs(x - ex) <= tolerance and abs(y - ey) <= tolerance
        for (x, y, v), (ex, ey, ev) in zip(keypoints, expected, strict=True)
    )


@pytest.mark.parametrize("pose_id", ["standing-neutral", "action-kick", "portrait-profile"])
def test_an_openpose_file_of_a_library_pose_reads_back_as_that_pose(pose_id):
    pose = pose_library.find(pose_id)
    for size in (512, 768, 1000):
        keypoints = pose_library.parse_openpose(openpose_file(pose.keypoints, size, size))
        assert len(keypoints) == 18
        assert close(keypoints, pose.keypoints), (size, keypoints)


def test_a_wide_canvas_is_fitted_into_the_square_centred():
    pose = pose_library.find("standing-neutral")
    keypoints = pose_library.parse_openpose(openpose_file(pose.keypoints, 1000, 500))
    # x spans the square; y, half as tall, is squeezed into its middle half
    expected = [(x, 0.25 + y / 2, v) if v else (0, 0, 0) for x, y, v in pose.keypoints]
    assert close(keypoints, expected)


def test_a_body_25_file_keeps_the_coco_keypoints():
    pose = pose_library.find("walking-side")
    coco_of = {body: coco for coco, body in enumerate(pose_library.BODY_25_TO_COCO_18)}
    values: list[float] = []
    for index in range(25):
        coco = coco_of.get(index)
        if coco is None:  # the mid-hip and the feet: somewhere on the canvas
            values += [300.0, 580.0, 0.8]
        else:
            x, y, visible = pose.keypoints[coco]
            values += [x * 640, y * 640, 0.9] if visible else [0.0, 0.0, 0.0]
    content = json.dumps(
        {"people": [{"pose_keypoints_2d": values}], "canvas_width": 640, "canvas_height": 640}
    ).encode()
    assert close(pose_library.parse_openpose(content), pose.keypoints)


def test_a_file_without_a_canvas_keeps_the_figure_fitted_to_the_square():
    pose = pose_library.find("gesture-wave")
    moved = [(x * 3 + 0.2, y * 3 + 0.7, v) for x, y, v in pose.keypoints]  # anywhere, any size
    keypoints = pose_library.parse_openpose(openpose_file(moved, 400, 400, canvas=False))
    visible = [(x, y) for x, y, v in keypoints if v]
    xs, ys = [x for x, _ in visible], [y for _, y in visible]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    assert max(width, height) == pytest.approx(pose_library.IMPORT_FILL, abs=2e-4)
    assert (max(xs) + min(xs)) / 2 == pytest.approx(0.5, abs=2e-4)  # centred
    assert (max(ys) + min(ys)) / 2 == pytest.approx(0.5, abs=2e-4)
    # the same shape: every keypoint where the original is, up to one scale and shift
    original = [(x, y) for x, y, v in pose.keypoints if v]
    scale = max(width, height) / max(
        max(x for x, _ in original) - min(x for x, _ in original),
        max(y for _, y in original) - min(y for _, y in original),
    )
    for (x, y), (ox, oy) in zip(visible, original, strict=True):
        assert x - visible[0][0] == pytest.approx((ox - original[0][0]) * scale, abs=3e-4)
        assert y - visible[0][1] == pytest.approx((oy - original[0][1]) * scale, abs=3e-4)
    assert [v for _, _, v in keypoints] == [v for _, _, v in pose.keypoints]


def test_confidence_zero_is_a_keypoint_not_seen_whatever_its_coordinates():
    pose = pose_library.find("standing-neutral")
    values: list[float] = []
    for index, (x, y, _) in enumerate(pose.keypoints):
        values += [x * 512, y * 512, 0.0 if index == 4 else 0.5]
    values[12:14] = [-1.0, -1.0]  # the right wrist: some tools write -1 for "not seen"
    content = json.dumps(
        {"people": [{"pose_keypoints_2d": values}], "canvas_width": 512, "canvas_height": 512}
    ).encode()
    keypoints = pose_library.parse_openpose(content)
    assert keypoints[4] == (0.0, 0.0, 0)
    assert sum(v for _, _, v in keypoints) == 17


def _values(count=54, **changes) -> list:
    pose = pose_library.find("standing-neutral")
    values: list = []
    for x, y, _ in pose.keypoints:
        values += [x * 512, y * 512, 0.9]
    values = (values + [100.0, 100.0, 0.5] * 10)[:count]
    for index, value in changes.items():
        values[int(index.removeprefix("at"))] = value
    return values


def _file(values, **document) -> bytes:
    return json.dumps(
        {"people": [{"pose_keypoints_2d": values}], "canvas_width": 512, "canvas_height": 512}
        | document
    ).encode()


BAD_FILES = {
    "not JSON": (b'{"people": [', "not valid JSON"),
    "not UTF-8": (b"\xff\xfe\x00{", "not UTF-8"),
    "a list": (b"[1, 2, 3]", "JSON object"),
    "no people key": (b'{"canvas_width": 512}', "no people"),
    "no people": (b'{"people": []}', "no people"),
    "person without keypoints": (b'{"people": [{"face_keypoints_2d": []}]}',
                                 "pose_keypoints_2d"),
    "keypoints not a list": (_file("1, 2, 3"), "pose_keypoints_2d"),
    "COCO-17": (_file(_values(51)), "holds 51 numbers"),
    "one short": (_file(_values(53)), "holds 53 numbers"),
    "a string": (_file(_values(at7="12")), "[7] is not a number"),
    "a boolean": (_file(_values(at9=True)), "[9] is not a number"),
    "null": (_file(_values(at0=None)), "[0] is not a number"),
    "NaN": (_file(_values()).replace(b"0.9,", b"NaN,", 1), "NaN"),
    "Infinity": (_file(_values()).replace(b"0.9,", b"-Infinity,", 1), "Infinity"),
    "overflow": (_file(_values()).replace(b"0.9,", b"1e999,", 1), "not a finite number"),
    "negative x": (_file(_values(at3=-4.0)), "outside the 512×512 canvas"),
    "beyond the canvas": (_file(_values(at4=512.5)), "outside the 512×512 canvas"),
    "negative without a canvas": (
        json.dumps({"people": [{"pose_keypoints_2d": _values(at3=-4.0)}]}).encode(),
        "negative",
    ),
    "negative confidence": (_file(_values(at5=-0.5)), "confidence is negative"),
    "one canvas side": (
        json.dumps({"people": [{"pose_keypoints_2d": _values()}], "canvas_width": 512}).encode(),
        "canvas_height",
    ),
    "zero canvas": (_file(_values(), canvas_width=0), "canvas_width"),
    "huge canvas": (_file(_values(), canvas_height=1e9), "canvas_height"),
    "canvas as text": (_file(_values(), canvas_width="512"), "canvas_width"),
    "three visible": (_file([v if i % 3 != 2 or i < 9 else 0 for i, v in enumerate(_values())]),
                      "3 visible keypoints"),
    "all at one place": (
        json.dumps({"people": [{"pose_keypoints_2d": [7.0, 7.0, 1.0] * 18}]}).encode(),
        "same place",
    ),
    "nested too deeply": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_openpose_file_is_refused_saying_why(case):
    content, message = BAD_FILES[case]
    with pytest.raises(InvalidInput) as refused:
        pose_library.parse_openpose(content)
    assert message in refused.value.message, refused.value.message
    assert refused.value.status_code == 422


def test_a_good_file_is_valid_so_the_bad_ones_fail_for_their_own_reason():
    keypoints = pose_library.parse_openpose(_file(_values()))
    assert sum(v for _, _, v in keypoints) == 18


def test_a_file_too_large_is_refused_before_it_is_read():
    pose = pose_library.find("standing-neutral")
    content = openpose_file(pose.keypoints, 512, 512)
    assert pose_library.parse_openpose(content, max_bytes=len(content))
    with pytest.raises(PayloadTooLarge) as refused:
        pose_library.parse_openpose(content, max_bytes=len(content) - 1)
    assert f"at most {len(content) - 1:,}" in refused.value.message
    padded = content + b" " * pose_library.MAX_IMPORT_BYTES  # valid JSON, too many bytes
    with pytest.raises(PayloadTooLarge) as refused:
        pose_library.parse_openpose(padded)
    assert refused.value.status_code == 413
