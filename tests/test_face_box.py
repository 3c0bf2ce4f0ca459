"""The face square of a photo: OpenCV's Haar cascade boxes a drawn head, a photo without a face
and an install without OpenCV get the centre square saying why, and a square the user draws is
checked."""

from __future__ import annotations

import sys

import pytest
from face_photos import DrawnFace, drawn_face, landscape
from PIL import Image

from lumiku_local import face_box
from lumiku_local.engines.base import FaceBox
from lumiku_local.errors import InvalidInput


def assert_boxes_the_head(box: FaceBox, drawn: DrawnFace, photo: Image.Image) -> None:
    left, top, right, bottom = drawn.head
    face_width = drawn.face[2] - drawn.face[0]
    assert box.source == "detected", box
    assert box.x >= 0 and box.y >= 0, box  # inside the photo
    assert box.x + box.size <= photo.width and box.y + box.size <= photo.height, box
    assert box.x <= left and box.y <= top, (box, drawn.head)  # the whole head, hair to chin
    assert box.x + box.size >= right and box.y + box.size >= bottom, (box, drawn.head)
    centre_x, centre_y = box.x + box.size / 2, box.y + box.size / 2
    assert abs(centre_x - (left + right) / 2) <= 0.2 * face_width, box
    assert abs(centre_y - (top + bottom) / 2) <= 0.2 * face_width, box
    assert box.size <= 2.6 * face_width, box  # the head, not the photo


@pytest.mark.parametrize(
    ("size", "centre", "face_width", "skin", "hair", "background"),
    [
        ((640, 480), (250, 260), 200, (224, 172, 140), (60, 40, 25), (90, 140, 200)),
        ((1200, 800), (850, 380), 160, (80, 50, 35), (20, 20, 20), (230, 230, 230)),
        ((1000, 700), (300, 420), 100, (250, 220, 200), (60, 40, 25), (40, 40, 40)),
        ((900, 1200), (450, 500), 360, (120, 75, 50), (20, 20, 20), (60, 120, 60)),
    ],
    ids=["light-skin", "dark-skin-right", "small-face-low", "portrait-close-up"],
)
def test_a_drawn_face_is_boxed_around_its_head(size, centre, face_width, skin, hair, background):
    drawn = drawn_face(*size, centre, face_width, skin, hair, background)
    assert_boxes_the_head(face_box.detect(drawn.image), drawn, drawn.image)


def test_the_largest_of_two_faces_is_the_one_boxed():
    big = drawn_face(1200, 700, (350, 360), 240)
    small = drawn_face(1200, 700, (950, 300), 120, skin=(120, 75, 50), hair=(20, 20, 20))
    photo = big.image.copy()
    left, top, right, bottom = (round(edge) for edge in small.head)
    photo.paste(
        small.image.crop((left - 20, top - 20, right + 20, bottom + 20)), (left - 20, top - 20)
    )
    box = face_box.detect(photo)
    assert_boxes_the_head(box, big, photo)
    assert box.x + box.size < small.head[0], "the square stays off the small face"


def test_a_face_at_the_edge_gets_a_square_clamped_inside_the_photo():
    drawn = drawn_face(800, 600, (150, 190), 220)  # the head's square would start above the top
    box = face_box.detect(drawn.image)
    assert box.source == "detected"
    assert box.y == 0 and box.x >= 0 and box.x + box.size <= 800 and box.size <= 600
    assert box.x <= drawn.face[0] and box.x + box.size >= drawn.face[2]


def test_a_4000_pixel_photo_is_searched_on_a_small_copy_and_boxed_in_its_own_pixels():
    """The search runs on a copy at most 480 px wide (bench/face_box.py times it), and the
    square comes back in the full photo's pixels."""
    drawn = drawn_face(4000, 3000, (1800, 1400), 1000)
    assert_boxes_the_head(face_box.detect(drawn.image), drawn, drawn.image)


@pytest.mark.parametrize(
    "photo",
    [landscape(), landscape(1600, 900), Image.linear_gradient("L").resize((500, 700))],
    ids=["landscape", "wide-landscape", "grey-gradient"],
)
def test_a_photo_without_a_face_gets_the_centre_square_saying_so(photo):
    box = face_box.detect(photo)
    assert box == face_box.center(photo.width, photo.height, "no_face")
    assert box.source == "no_face"
    side = min(photo.width, photo.height) * 2 // 3
    assert box == FaceBox((photo.width - side) // 2, (photo.height - side) // 2, side, "no_face")


def test_without_opencv_the_centre_square_says_no_detector(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    drawn = drawn_face()
    box = face_box.detect(drawn.image)
    assert box == FaceBox(160, 80, 320, "no_detector")


def test_a_square_the_user_draws_is_checked():
    assert face_box.from_user({"x": 10, "y": 20, "size": 100}, 640, 480) == FaceBox(
        10, 20, 100, "user"
    )
    assert face_box.from_user({"x": "540", "y": 380.0, "size": 100}, 640, 480) == FaceBox(
        540, 380, 100, "user"
    )  # the right and bottom edges themselves are inside
    bad = [
        ({"x": 10, "y": 20}, "whole-pixel"),
        ({"x": "left", "y": 20, "size": 100}, "whole-pixel"),
        ({"x": None, "y": 20, "size": 100}, "whole-pixel"),
        ({"x": 10, "y": 20, "size": 15}, "at least 16"),
        ({"x": -1, "y": 20, "size": 100}, "inside the 640×480"),
        ({"x": 541, "y": 20, "size": 100}, "inside the 640×480"),
        ({"x": 10, "y": 381, "size": 100}, "inside the 640×480"),
    ]
    for value, message in bad:
        with pytest.raises(InvalidInput, match=message):
            face_box.from_user(value, 640, 480)


def test_a_stored_square_reads_back_as_it_was():
    box = face_box.detect(drawn_face(800, 600, (500, 300), 180).image)
    stored = face_box.as_json(box)
    assert stored == {"x": box.x, "y": box.y, "size": box.size, "source": "detected"}
    assert face_box.from_json(stored, 800, 600) == box
    assert face_box.from_json(None, 800, 600) is None
