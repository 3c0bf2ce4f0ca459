"""The skeleton drawing: OpenPose's limb pairs and colours, limbs blended at 60 % over the
joints as the ControlNet annotator draws them, nothing drawn for a keypoint not seen."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lumiku_local import pose_library, skeleton
from lumiku_local.errors import InvalidInput

# lllyasviel's annotator (ControlNet-v1-1-nightly, annotator/openpose/util.py, draw_bodypose),
# as it writes them: limbSeq 1-based, limb i and keypoint i drawn in colors[i]
LIMB_SEQ = [
    [2, 3],
    [2, 6],
    [3, 4],
    [4, 5],
    [6, 7],
    [7, 8],
    [2, 9],
    [9, 10],
    [10, 11],
    [2, 12],
    [12, 13],
    [13, 14],
    [2, 1],
    [1, 15],
    [15, 17],
    [1, 16],
    [16, 18],
]
OPENPOSE_COLOURS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0],
                    [85, 255, 0], [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255],
                    [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255], [170, 0, 255],
                    [255, 0, 255], [255, 0, 170], [255, 0, 85]]  # fmt: skip
NECK, R_SHOULDER, R_ELBOW, R_WRIST = 1, 2, 3, 4


def on_black(colour):
    """What cv2.addWeighted(canvas, 0.4, with_limb, 0.6, 0) leaves on black."""
    return tuple(round(0.6 * channel) for channel in colour)


def midpoint(keypoints, a, b, size):
    """The limb's centre pixel, as the annotator places its ellipse."""
    (x1, y1, _), (x2, y2, _) = keypoints[a], keypoints[b]
    return int((x1 + x2) / 2 * size), int((y1 + y2) / 2 * size)


def standing():
    return [list(keypoint) for keypoint in pose_library.find("standing-neutral").keypoints]


def test_the_neck_to_right_shoulder_limb_is_openpose_red_at_sixty_percent():
    keypoints = standing()
    image = skeleton.draw(keypoints, 512)
    assert image.size == (512, 512) and image.mode == "RGB"
    assert image.getpixel(midpoint(keypoints, NECK, R_SHOULDER, 512)) == (153, 0, 0)
    assert image.getpixel(midpoint(keypoints, R_ELBOW, R_WRIST, 512)) == (153, 153, 0)
    assert image.getpixel((5, 5)) == (0, 0, 0)  # the background


@pytest.mark.parametrize("limb", range(17))
def test_each_limb_has_its_openpose_colour_between_its_two_keypoints(limb):
    """Each limb drawn alone, between two keypoints far apart: its midpoint is its colour."""
    start, end = (index - 1 for index in LIMB_SEQ[limb])
    keypoints = [[0, 0, 0] for _ in range(18)]
    keypoints[start], keypoints[end] = [0.2, 0.3, 1], [0.7, 0.6, 1]
    image = skeleton.draw(keypoints, 400)
    assert image.getpixel(midpoint(keypoints, start, end, 400)) == on_black(OPENPOSE_COLOURS[limb])
    # and its two joints at full strength, beside the limb where no limb covers them
    assert image.getpixel((80, 120 - 2)) == tuple(OPENPOSE_COLOURS[start])
    assert image.getpixel((280, 240 + 2)) == tuple(OPENPOSE_COLOURS[end])


def test_a_limb_blends_over_the_background_as_addweighted_does():
    keypoints = standing()
    image = skeleton.draw(keypoints, 512, background=(255, 255, 255))
    # 0.4 × 255 + 0.6 × (255, 0, 0)
    assert image.getpixel(midpoint(keypoints, NECK, R_SHOULDER, 512)) == (255, 102, 102)
    grey = skeleton.draw(keypoints, 512, background=(101, 101, 101))
    expected = tuple(round(0.4 * 101 + 0.6 * channel) for channel in (0, 0, 255))  # neck-nose
    assert grey.getpixel(midpoint(keypoints, NECK, 0, 512)) == expected


def test_where_limbs_cross_the_later_one_blends_over_the_earlier():
    keypoints = [[0, 0, 0] for _ in range(18)]
    # the right upper arm (limb 2) and forearm (limb 3) folded back over each other
    keypoints[R_SHOULDER], keypoints[R_ELBOW] = [0.3, 0.5, 1], [0.7, 0.5, 1]
    keypoints[R_WRIST] = [0.3, 0.5, 1]
    image = skeleton.draw(keypoints, 500)
    upper_arm, forearm = OPENPOSE_COLOURS[2], OPENPOSE_COLOURS[3]
    once = [round(0.6 * channel) for channel in upper_arm]
    twice = tuple(round(0.4 * a + 0.6 * b) for a, b in zip(once, forearm, strict=True))
    assert image.getpixel((250, 250)) == twice


def test_limbs_are_blended_over_the_joints_drawn_before_them():
    """The annotator draws the circles first and blends each limb over them (controlnet_aux's
    later drawing puts the circles on top: not what the v1.1 OpenPose ControlNet saw)."""
    keypoints = [[0, 0, 0] for _ in range(18)]
    keypoints[NECK], keypoints[R_SHOULDER] = [0.3, 0.5, 1], [0.7, 0.5, 1]
    image = skeleton.draw(keypoints, 512)
    neck, limb = OPENPOSE_COLOURS[NECK], OPENPOSE_COLOURS[0]
    # 3 px from the neck's centre, on the limb's axis: inside both the circle and the ellipse
    expected = tuple(round(0.4 * j + 0.6 * c) for j, c in zip(neck, limb, strict=True))
    assert image.getpixel((153 + 3, 256)) == expected == (255, 34, 0)
    assert image.getpixel((153, 256 - 3)) == tuple(neck)  # beside the ellipse's tip


def test_a_joint_is_a_circle_of_its_own_colour():
    keypoints = [[0, 0, 0] for _ in range(18)]
    keypoints[R_WRIST] = [0.5, 0.25, 1]  # its elbow not seen: no limb over it
    image = skeleton.draw(keypoints, 512)
    assert image.getpixel((256, 128)) == (170, 255, 0)
    assert image.getpixel((256 + 3, 128)) == (170, 255, 0)  # radius 4 at 512
    assert image.getpixel((256 + 6, 128)) == (0, 0, 0)
    large = skeleton.draw(keypoints, 1024)  # the radius grows with the size
    assert large.getpixel((512 + 7, 256)) == (170, 255, 0)
    assert large.getpixel((512 + 11, 256)) == (0, 0, 0)


def test_a_keypoint_not_seen_takes_its_limbs_away_and_nothing_else():
    keypoints = standing()
    shown = skeleton.draw(keypoints, 512)
    elbow = (int(keypoints[R_ELBOW][0] * 512), int(keypoints[R_ELBOW][1] * 512))
    upper_arm = midpoint(keypoints, R_SHOULDER, R_ELBOW, 512)
    forearm = midpoint(keypoints, R_ELBOW, R_WRIST, 512)
    assert shown.getpixel(upper_arm) != (0, 0, 0) and shown.getpixel(forearm) != (0, 0, 0)
    keypoints[R_ELBOW][2] = 0
    hidden = skeleton.draw(keypoints, 512)
    for point in (elbow, upper_arm, forearm):
        assert hidden.getpixel(point) == (0, 0, 0), point
    wrist = (int(keypoints[R_WRIST][0] * 512) + 3, int(keypoints[R_WRIST][1] * 512))
    assert hidden.getpixel(wrist) == tuple(OPENPOSE_COLOURS[R_WRIST])  # its joint stays
    assert hidden.getpixel(midpoint(keypoints, NECK, R_SHOULDER, 512)) == (153, 0, 0)


@pytest.mark.parametrize("size", [64, 100, 256, 512, 777, 1024])
def test_every_size_from_64_to_1024_draws_the_same_skeleton(size):
    keypoints = standing()
    image = skeleton.draw(keypoints, size)
    assert image.size == (size, size)
    assert image.getpixel(midpoint(keypoints, NECK, R_SHOULDER, size)) == (153, 0, 0)
    assert image.getpixel(midpoint(keypoints, 8, 9, size)) == on_black(OPENPOSE_COLOURS[7])


@pytest.mark.parametrize("size", [8, 15, 2049, 4096, 256.0, "256"])
def test_a_size_out_of_range_is_refused(size):
    with pytest.raises(InvalidInput, match="pixels wide"):
        skeleton.draw(standing(), size)


def test_a_pose_without_18_keypoints_is_refused():
    with pytest.raises(InvalidInput, match="18 keypoints"):
        skeleton.draw(standing()[:17], 256)


def test_the_png_is_the_drawing():
    """Its speed (a few ms a thumbnail) is measured by bench/poses.py, not asserted here."""
    keypoints = standing()
    with Image.open(io.BytesIO(skeleton.png(keypoints, 256))) as decoded:
        assert decoded.format == "PNG" and decoded.size == (256, 256)
        assert decoded.convert("RGB").tobytes() == skeleton.draw(keypoints, 256).tobytes()
