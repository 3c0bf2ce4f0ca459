"""The Pose Generator's pose library: the poses (data/poses.json), the pose for a description
in words, and custom poses read from OpenPose JSON files."""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .errors import InvalidInput, PayloadTooLarge

# OpenPose's COCO-18 body, the order of every pose's keypoints
KEYPOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
CATEGORIES = {
    "standing": "Standing",
    "sitting": "Sitting",
    "walking": "Walking",
    "gestures": "Hands and gestures",
    "action": "Action",
    "portrait": "Portrait framing",
}
DEFAULT_POSE_ID = "standing-neutral"  # what a description matching no pose gets
MAX_IMPORT_BYTES = 1_000_000  # an OpenPose file of one person is a few kB, with hands ~20 kB
MIN_VISIBLE = 4  # keypoints: fewer is not a pose anything can follow
MAX_CANVAS = 16384  # pixels
IMPORT_FILL = 0.8  # of the square: a file without a canvas has its figure fitted to this
# BODY_25 (OpenPose's default model) holds COCO-18 plus the mid-hip (8) and the feet (19-24)
BODY_25_TO_COCO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
_IGNORED_WORDS = frozenset({
    "a", "an", "and", "the", "with", "of", "in", "on", "at", "to", "for", "from", "by", "his",
    "her", "their", "its", "my", "your", "is", "are", "be", "while", "who", "that", "this",
    "person", "someone", "man", "woman", "boy", "girl", "avatar", "character", "pose", "posing",
})  # fmt: skip

Keypoint = tuple[float, float, int]  # x, y (0-1 on a square canvas), visible (0 or 1)


@dataclass(frozen=True)
class Pose:
    id: str  # a stable slug: "standing-arms-crossed"
    name: str
    category: str  # a key of CATEGORIES
    tags: tuple[str, ...]  # words and short phrases a description can match
    keypoints: tuple[Keypoint, ...]  # 18, in KEYPOINT_NAMES order; not visible: (0, 0, 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "tags": list(self.tags),
            "keypoints": [list(keypoint) for keypoint in self.keypoints],
        }


def poses() -> list[Pose]:
    """Every library pose, in the library's order (by category)."""
    return list(_library())


def find(pose_id: str) -> Pose | None:
    return next((pose for pose in _library() if pose.id == pose_id), None)


@functools.cache
def _library() -> tuple[Pose, ...]:
    text = resources.files("lumiku_local").joinpath("data/poses.json").read_text("utf-8")
    return tuple(
        Pose(
            id=entry["id"],
            name=entry["name"],
            category=entry["category"],
            tags=tuple(entry["tags"]),
            keypoints=tuple((float(x), float(y), int(v)) for x, y, v in entry["keypoints"]),
        )
        for entry in json.loads(text)
    )


def best_match(text: str) -> tuple[Pose, list[str]]:
    """The library pose a description in words fits best, and the words of it that matched.

    Each word is counted once: 2 when a tag holds it, 1 when only the name does; ties go to the
    pose first in the library. Nothing matching: the default pose and no words."""
    words = _words(text)
    best, best_score, best_words = None, 0, []
    for pose in _library():
        tag_stems, name_stems = _pose_stems(pose)
        score, matched = 0, []
        for word, stem in words:
            if stem in tag_stems or stem in name_stems:
                score += 2 if stem in tag_stems else 1
                matched.append(word)
        if score > best_score:
            best, best_score, best_words = pose, score, matched
    if best is None:
        default = find(DEFAULT_POSE_ID)
        assert default is not None, "the library lost its default pose"
        return default, []
    return best, best_words


def _words(text: str) -> list[tuple[str, str]]:
    """(word, stem) of each distinct meaningful word, in the order written."""
    seen: dict[str, tuple[str, str]] = {}
    for word in re.findall(r"[a-z]+", text.lower()):
        stem = _stem(word)
        if word not in _IGNORED_WORDS and len(stem) > 1 and stem not in seen:
            seen[stem] = (word, stem)
    return list(seen.values())


@functools.cache
def _pose_stems(pose: Pose) -> tuple[frozenset[str], frozenset[str]]:
    tags = frozenset(stem for tag in pose.tags for _, stem in _words(tag))
    return tags, frozenset(stem for _, stem in _words(pose.name))


def _stem(word: str) -> str:
    """Enough of English endings that "waving", "waves" and "wave" meet, and "sitting" "sit"."""
    for ending in ("ing", "ed", "es", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 3 and not word.endswith("ss"):
            word = word[: -len(ending)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # sitt -> sit, runn -> run (but keep "call", "kneel", "cross")
    return word.removesuffix("e") if len(word) > 3 else word


def parse_openpose(content: bytes, max_bytes: int = MAX_IMPORT_BYTES) -> list[Keypoint]:
    """The 18 keypoints of the first person of an OpenPose JSON file, on the square canvas.

    The file holds `people[0].pose_keypoints_2d`: x, y, confidence triples in pixels, 18 of
    them (COCO-18) or 25 (BODY_25, the feet dropped). A confidence above 0 is a visible
    keypoint. With `canvas_width`/`canvas_height` the canvas is fitted into the square, centred,
    its aspect kept, and every visible keypoint must lie on it. Without them, only the
    keypoints' places relative to each other are known: the figure is fitted into the square
    (its larger side IMPORT_FILL of it), centred, as the library's poses are."""
    if len(content) > max_bytes:
        raise PayloadTooLarge(
            f"The pose file is {len(content):,} bytes; an OpenPose file may be at most "
            f"{max_bytes:,}."
        )
    document = _json_document(content)
    values = _pose_values(document)
    triples = [values[index : index + 3] for index in range(0, len(values), 3)]
    if len(triples) == 25:
        triples = [triples[index] for index in BODY_25_TO_COCO_18]
    visible = [confidence > 0 for _, _, confidence in triples]
    if sum(visible) < MIN_VISIBLE:
        raise InvalidInput(
            f"The pose has {sum(visible)} visible keypoints; at least {MIN_VISIBLE} are needed "
            "(a keypoint with confidence 0 is not visible)."
        )
    seen = [(x, y) for (x, y, _), shown in zip(triples, visible, strict=True) if shown]
    canvas = _canvas(document)
    if canvas is None:
        scale, left, top = _figure_placement(seen)
    else:
        width, height = canvas
        for x, y in seen:
            if not (0 <= x <= width and 0 <= y <= height):
                raise InvalidInput(
                    f"The keypoint at ({x:g}, {y:g}) lies outside the {width:g}×{height:g} canvas."
                )
        scale = 1 / max(width, height)
        left, top = (1 - width * scale) / 2, (1 - height * scale) / 2
    return [
        (round(left + x * scale, 4), round(top + y * scale, 4), 1) if shown else (0.0, 0.0, 0)
        for (x, y, _), shown in zip(triples, visible, strict=True)
    ]


def _json_document(content: bytes) -> dict[str, Any]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("The pose file is not UTF-8 text: expected OpenPose JSON.") from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:  # JSONDecodeError, and NaN or Infinity
        raise InvalidInput(f"The pose file is not valid JSON: {error}.") from None
    except RecursionError:
        raise InvalidInput("The pose file is not valid JSON: nested too deeply.") from None
    if not isinstance(document, dict):
        raise InvalidInput('An OpenPose file is a JSON object with "people".')
    return document


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a keypoint can have")


def _pose_values(document: dict[str, Any]) -> list[float]:
    people = document.get("people")
    if not isinstance(people, list) or not people:
        raise InvalidInput('The pose file has no people: expected "people": [{...}].')
    person = people[0]
    values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
    if not isinstance(values, list):
        raise InvalidInput('The first person has no "pose_keypoints_2d" list.')
    if len(values) not in (54, 75):
        raise InvalidInput(
            f'"pose_keypoints_2d" holds {len(values)} numbers: expected 54 (18 COCO keypoints '
            "× x, y, confidence) or 75 (BODY_25)."
        )
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f'"pose_keypoints_2d"[{index}] is not a number: {value!r}.')
        if not math.isfinite(value):
            raise InvalidInput(f'"pose_keypoints_2d"[{index}] is not a finite number.')
    confidences = values[2::3]
    if any(confidence < 0 for confidence in confidences):
        raise InvalidInput("A keypoint's confidence is negative; it must be 0 or more.")
    return [float(value) for value in values]


def _canvas(document: dict[str, Any]) -> tuple[float, float] | None:
    """The canvas in pixels when the file says it; a file giving one side only is refused."""
    width, height = document.get("canvas_width"), document.get("canvas_height")
    if width is None and height is None:
        return None
    for name, value in (("canvas_width", width), ("canvas_height", height)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f'"{name}" must be a number of pixels, not {value!r}.')
        if not (math.isfinite(value) and 1 <= value <= MAX_CANVAS):
            raise InvalidInput(f'"{name}" must be 1 to {MAX_CANVAS} pixels, not {value!r}.')
    return float(width), float(height)  # type: ignore[arg-type]


def _figure_placement(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(scale, left, top) that fit the points' bounding box into the square, centred."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    if min(xs) < 0 or min(ys) < 0:
        raise InvalidInput("A keypoint has a negative coordinate; pixels count from 0.")
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    if extent == 0:
        raise InvalidInput("Every visible keypoint is at the same place: that is not a pose.")
    scale = IMPORT_FILL / extent
    return scale, 0.5 - scale * (max(xs) + min(xs)) / 2, 0.5 - scale * (max(ys) + min(ys)) / 2
