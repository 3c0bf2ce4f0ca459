"""Write the pose library, lumiku_local/data/poses.json, from the figures described here.

Each pose is a figure with fixed bone lengths (in head heights) and the angles of its parts,
so every pose has the same body; limbs that point at the camera are foreshortened. The JSON is
committed; run this after changing a figure (tests/test_pose_library.py fails until they agree):

    python build/make_poses.py           # write lumiku_local/data/poses.json
    python build/make_poses.py --check   # exit 1 if the file differs from the figures
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "lumiku_local" / "data" / "poses.json"

# bone lengths in head heights: a 7.5-head adult seen from the front
NECK_TO_HEAD_CENTRE = 1.0
SHOULDER = 0.85  # neck to each shoulder
UPPER_ARM = 1.35
FOREARM = 1.2
TORSO = 2.65  # neck to the middle of the hips
HIP = 0.45  # middle of the hips to each hip joint
THIGH = 1.85
SHIN = 1.75
# face points around the head centre: x to the person's left, y down, z towards the camera
FACE = {
    "nose": (0.0, 0.08, 0.5),
    "r_eye": (-0.18, -0.08, 0.4),
    "l_eye": (0.18, -0.08, 0.4),
    "r_ear": (-0.45, 0.02, -0.05),
    "l_ear": (0.45, 0.02, -0.05),
}
FACE_SEEN_FROM = {"nose": -0.1, "r_eye": 0.1, "l_eye": 0.1, "r_ear": -0.2, "l_ear": -0.2}
ORDER = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear",
    "l_ear",
)  # fmt: skip
FULL_BODY_FILL = 0.8  # of the canvas: the figure's larger side, head top to feet
LEGS = ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")


def direction(degrees: float) -> tuple[float, float]:
    """A unit vector on the image: 0 is straight down, 90 towards the image's right, 180 up."""
    radians = math.radians(degrees)
    return math.sin(radians), math.cos(radians)


def step(start: tuple[float, float], degrees: float, length: float) -> tuple[float, float]:
    dx, dy = direction(degrees)
    return start[0] + dx * length, start[1] + dy * length


def limb(spec: tuple[float, ...]) -> tuple[float, float, float, float]:
    """(upper angle, lower angle[, upper foreshortening, lower foreshortening])."""
    upper, lower, *shortening = spec
    upper_factor, lower_factor = (shortening + [1.0, 1.0])[:2] if shortening else (1.0, 1.0)
    return upper, lower, upper_factor, lower_factor


def figure(
    *,
    turn: float = 0,  # body yaw, degrees: 90 faces the image's right, 180 shows the back
    torso: float = 0,  # neck to hips; 0 upright
    torso_length: float = 1.0,  # < 1: leaning towards or away from the camera
    shoulder_tilt: float = 0,  # degrees; > 0 drops the right shoulder
    hip_tilt: float = 0,
    shrug: float = 0,  # head heights both shoulders rise
    head_turn: float = 0,  # the head's yaw on top of the body's
    look_up: float = 0,  # degrees of pitch; < 0 looks down
    head_tilt: float = 0,  # degrees of roll; > 0 tips the head towards the image's right
    r_arm: tuple[float, ...] = (-8, -5),
    l_arm: tuple[float, ...] = (8, 5),
    r_leg: tuple[float, ...] = (-3, 0),
    l_leg: tuple[float, ...] = (3, 0),
    portrait: tuple[float, float, float] | None = None,  # (head size, neck x, neck y)
) -> list[list[float]]:
    """The 18 COCO keypoints of a figure, [x, y, visible], fitted into the square canvas."""
    width = math.cos(math.radians(turn))  # how much of the shoulders' width faces the camera
    neck = (0.0, 0.0)
    hips = step(neck, torso, TORSO * torso_length)
    points: dict[str, tuple[float, float]] = {"neck": neck}
    across = torso + 90  # from the right side of the body towards its left
    lift = direction(torso + 180)
    for side, sign in (("r", -1), ("l", 1)):  # the tilts turn each line about its middle
        shoulder = step(neck, across + shoulder_tilt, sign * SHOULDER * width)
        points[f"{side}_shoulder"] = (shoulder[0] + lift[0] * shrug, shoulder[1] + lift[1] * shrug)
        points[f"{side}_hip"] = step(hips, across + hip_tilt, sign * HIP * width)
    for side, spec in (("r", r_arm), ("l", l_arm)):
        upper, lower, upper_factor, lower_factor = limb(spec)
        elbow = step(points[f"{side}_shoulder"], upper, UPPER_ARM * upper_factor)
        points[f"{side}_elbow"] = elbow
        points[f"{side}_wrist"] = step(elbow, lower, FOREARM * lower_factor)
    for side, spec in (("r", r_leg), ("l", l_leg)):
        upper, lower, upper_factor, lower_factor = limb(spec)
        knee = step(points[f"{side}_hip"], upper, THIGH * upper_factor)
        points[f"{side}_knee"] = knee
        points[f"{side}_ankle"] = step(knee, lower, SHIN * lower_factor)
    hidden = set()
    # the neck carries on the torso's line and bends a little with the head
    head_centre = step(neck, 180 + torso - head_tilt * 0.3, NECK_TO_HEAD_CENTRE)
    for name, (x, y, z) in FACE.items():
        x, y, z = _rotate_head(x, y, z, turn + head_turn, look_up, head_tilt - torso)
        points[name] = (head_centre[0] + x, head_centre[1] + y)
        if z < FACE_SEEN_FROM[name]:
            hidden.add(name)
    if portrait is None:
        keypoints = _fit_full_body(points, hidden, head_centre)
    else:
        keypoints = _frame_portrait(points, hidden, *portrait)
    return [keypoints[name] for name in ORDER]


def _rotate_head(
    x: float, y: float, z: float, yaw: float, pitch: float, roll: float
) -> tuple[float, float, float]:
    """Pitch in the head's own frame, then yaw, then roll on the image plane."""
    p, w, r = (math.radians(value) for value in (pitch, yaw, roll))
    y, z = y * math.cos(p) - z * math.sin(p), y * math.sin(p) + z * math.cos(p)
    x, z = x * math.cos(w) + z * math.sin(w), -x * math.sin(w) + z * math.cos(w)
    x, y = x * math.cos(r) - y * math.sin(r), x * math.sin(r) + y * math.cos(r)
    return x, y, z


def _fit_full_body(
    points: dict[str, tuple[float, float]], hidden: set[str], head_centre: tuple[float, float]
) -> dict[str, list[float]]:
    """Head top to feet, the larger side FULL_BODY_FILL of the canvas, centred."""
    extent = [point for name, point in points.items() if name not in hidden]
    extent.append((head_centre[0], head_centre[1] - 0.6))
    extent += [(points[name][0], points[name][1] + 0.15) for name in ("r_ankle", "l_ankle")]
    xs, ys = [x for x, _ in extent], [y for _, y in extent]
    scale = FULL_BODY_FILL / max(max(xs) - min(xs), max(ys) - min(ys))
    offset_x = 0.5 - scale * (max(xs) + min(xs)) / 2
    offset_y = 0.5 - scale * (max(ys) + min(ys)) / 2
    return {
        name: _keypoint(offset_x + x * scale, offset_y + y * scale, name not in hidden)
        for name, (x, y) in points.items()
    }


def _frame_portrait(
    points: dict[str, tuple[float, float]],
    hidden: set[str],
    head_size: float,
    neck_x: float,
    neck_y: float,
) -> dict[str, list[float]]:
    """A close framing: the neck where asked, what falls outside the canvas not visible."""
    keypoints = {}
    for name, (x, y) in points.items():
        x, y = neck_x + x * head_size, neck_y + y * head_size
        inside = 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0
        keypoints[name] = _keypoint(x, y, inside and name not in hidden)
    return keypoints


def _keypoint(x: float, y: float, visible: bool) -> list[float]:
    """Rounded to 1/10000 of the canvas; a keypoint not seen is [0, 0, 0], as OpenPose writes."""
    return [round(x, 4), round(y, 4), 1] if visible else [0, 0, 0]


HEADSHOT = (0.36, 0.5, 0.74)  # head size, neck x, neck y
BUST = (0.21, 0.5, 0.5)  # chest up
WAIST_UP = (0.19, 0.5, 0.3)

# (id, name, category, tags, figure)
POSES: list[tuple[str, str, str, list[str], dict]] = [
    # standing
    ("standing-neutral", "Standing, arms at the sides", "standing",
     ["stand", "standing", "neutral", "straight", "relaxed", "front", "idle", "default"], {}),
    ("standing-arms-crossed", "Arms crossed", "standing",
     ["arms crossed", "folded arms", "confident", "serious", "stern", "crossed"],
     {"r_arm": (5, 80, 0.8, 1), "l_arm": (-5, -80, 0.8, 1)}),
    ("standing-hands-on-hips", "Hands on hips", "standing",
     ["hands on hips", "hips", "confident", "power", "superhero", "proud"],
     {"r_arm": (-35, 30), "l_arm": (35, -30), "r_leg": (-8, -4), "l_leg": (8, 4)}),
    ("standing-hands-in-pockets", "Hands in pockets", "standing",
     ["pockets", "hands in pockets", "casual", "relaxed", "cool"],
     {"r_arm": (-14, 12), "l_arm": (14, -12)}),
    ("standing-contrapposto", "Weight on one leg", "standing",
     ["contrapposto", "casual", "relaxed", "weight", "hip", "model"],
     {"shoulder_tilt": 4, "hip_tilt": -6, "torso": -3, "r_arm": (-6, -2), "l_arm": (20, -40),
      "r_leg": (4, -2), "l_leg": (12, -8), "head_tilt": 5}),
    ("standing-hands-behind-back", "Hands behind the back", "standing",
     ["behind back", "hands behind", "formal", "polite", "waiting", "patient"],
     {"r_arm": (-6, 35, 1, 0.6), "l_arm": (6, -35, 1, 0.6)}),
    ("standing-three-quarter", "Three-quarter turn", "standing",
     ["three quarter", "turned", "angle", "angled", "stand"],
     {"turn": 40, "r_arm": (0, 8), "l_arm": (10, 5), "r_leg": (2, 0), "l_leg": (6, 2)}),
    ("standing-side-profile", "Side profile", "standing",
     ["profile", "side", "sideways", "side view", "stand"],
     {"turn": 85, "r_arm": (4, 10), "l_arm": (-2, 6), "r_leg": (3, 0), "l_leg": (-3, 0)}),
    ("standing-leaning", "Leaning against a wall", "standing",
     ["lean", "leaning", "wall", "cool", "casual"],
     {"torso": -6, "shoulder_tilt": -4, "r_arm": (-30, 30), "l_arm": (12, 4),
      "r_leg": (-2, 0), "l_leg": (-18, 18), "head_turn": 15}),
    # sitting
    ("sitting-chair", "Sitting on a chair", "sitting",
     ["sit", "sitting", "seated", "chair", "bench", "front"],
     {"r_arm": (-4, 30, 1, 0.55), "l_arm": (4, -30, 1, 0.55), "r_leg": (-10, -2, 0.35, 1),
      "l_leg": (10, 2, 0.35, 1)}),
    ("sitting-legs-crossed", "Sitting with legs crossed", "sitting",
     ["sit", "sitting", "chair", "legs crossed", "crossed", "elegant"],
     {"r_arm": (-4, 35, 1, 0.5), "l_arm": (4, -35, 1, 0.5), "r_leg": (-10, 3, 0.35, 1),
      "l_leg": (-35, 20, 0.55, 0.95), "hip_tilt": -3}),
    ("sitting-cross-legged", "Cross-legged on the floor", "sitting",
     ["sit", "sitting", "floor", "ground", "cross-legged", "meditate", "meditation", "lotus",
      "yoga"],
     {"r_arm": (-18, 30, 1, 0.75), "l_arm": (18, -30, 1, 0.75), "r_leg": (-68, 78, 0.9, 0.8),
      "l_leg": (68, -78, 0.9, 0.8)}),
    ("sitting-hugging-knees", "Hugging the knees", "sitting",
     ["sit", "sitting", "floor", "knees", "hug", "shy", "cosy", "hugging"],
     {"turn": 80, "torso": -10, "r_arm": (42, 5, 1, 0.92), "l_arm": (38, 8, 1, 0.92),
      "r_leg": (145, 10), "l_leg": (150, 15), "look_up": -10}),
    ("sitting-leaning-back", "Leaning back on the hands", "sitting",
     ["sit", "sitting", "floor", "beach", "relaxed", "lean", "leaning", "back", "chill"],
     {"turn": 70, "torso": 18, "r_arm": (-25, -30), "l_arm": (-30, -35), "r_leg": (115, 40),
      "l_leg": (95, 85), "look_up": 10}),
    ("sitting-chin-on-hand", "Thinking, chin on hand", "sitting",
     ["sit", "sitting", "thinking", "think", "chin", "pensive", "thoughtful", "wonder"],
     {"r_arm": (15, 152, 0.55, 1), "l_arm": (8, -60, 0.9, 0.7), "r_leg": (-10, -2, 0.35, 1),
      "l_leg": (10, 2, 0.35, 1), "head_tilt": -8, "torso": 4}),
    ("sitting-side-view", "Sitting, side view", "sitting",
     ["sit", "sitting", "chair", "side", "profile", "side view"],
     {"turn": 85, "r_arm": (10, 80), "l_arm": (5, 75), "r_leg": (90, 5), "l_leg": (85, 0)}),
    ("kneeling", "Kneeling on one knee", "sitting",
     ["kneel", "kneeling", "knee", "propose", "proposal"],
     {"turn": 80, "r_arm": (20, 95), "l_arm": (-5, 5), "r_leg": (90, 0), "l_leg": (0, -90)}),
    # walking
    ("walking-forward", "Walking towards the camera", "walking",
     ["walk", "walking", "stroll", "towards", "approach", "front"],
     {"r_arm": (-6, 15, 0.9, 0.8), "l_arm": (6, -2), "r_leg": (-2, 2, 0.9, 1),
      "l_leg": (6, 4, 1, 0.85), "hip_tilt": 3, "shoulder_tilt": -2}),
    ("walking-side", "Walking, side view", "walking",
     ["walk", "walking", "side", "profile", "stride", "step"],
     {"turn": 85, "r_arm": (-25, -15), "l_arm": (25, 45), "r_leg": (22, 8), "l_leg": (-20, -40)}),
    ("walking-long-stride", "Long stride", "walking",
     ["walk", "walking", "stride", "striding", "hurry", "fast", "march", "purpose"],
     {"turn": 80, "torso": -6, "r_arm": (-35, -20), "l_arm": (35, 70), "r_leg": (32, 10),
      "l_leg": (-28, -55)}),
    ("walking-away", "Walking away, back view", "walking",
     ["walk", "walking", "away", "back", "behind", "leave", "leaving"],
     {"turn": 180, "r_arm": (10, 0), "l_arm": (-8, 10, 0.9, 0.8), "r_leg": (2, -2, 1, 0.85),
      "l_leg": (-4, 0, 0.9, 1)}),
    ("walking-looking-at-phone", "Walking with a phone", "walking",
     ["walk", "walking", "phone", "texting", "smartphone", "scrolling", "looking down"],
     {"turn": 30, "look_up": -25, "r_arm": (-3, 150, 1, 0.55), "l_arm": (6, -150, 1, 0.55),
      "r_leg": (-4, 4), "l_leg": (14, 6, 1, 0.9)}),
    ("walking-hands-in-pockets", "Strolling, hands in pockets", "walking",
     ["walk", "walking", "stroll", "pockets", "casual", "relaxed"],
     {"turn": 35, "r_arm": (-10, 14), "l_arm": (16, -10), "r_leg": (-8, 0),
      "l_leg": (16, 8, 1, 0.9)}),
    ("walking-upstairs", "Climbing stairs", "walking",
     ["stairs", "climb", "climbing", "step", "upstairs", "walk"],
     {"turn": 80, "torso": -8, "r_arm": (-20, -5), "l_arm": (25, 60), "r_leg": (70, -10),
      "l_leg": (-8, -15)}),
    # hands and gestures
    ("gesture-wave", "Waving hello", "gestures",
     ["wave", "waving", "hello", "hi", "greet", "greeting", "bye", "goodbye", "welcome"],
     {"r_arm": (-75, -165), "l_arm": (8, 5), "head_tilt": -4}),
    ("gesture-thumbs-up", "Thumbs up", "gestures",
     ["thumbs up", "thumb", "like", "approve", "good", "ok", "great"],
     {"r_arm": (-12, 150, 1, 0.8), "l_arm": (8, 5)}),
    ("gesture-pointing", "Pointing to the side", "gestures",
     ["point", "pointing", "direction", "there", "look", "show"],
     {"l_arm": (95, 92), "r_arm": (-8, -5), "head_turn": 25}),
    ("gesture-pointing-at-viewer", "Pointing at you", "gestures",
     ["point", "pointing", "you", "viewer", "camera", "choose"],
     {"r_arm": (-30, 80, 0.8, 0.3), "l_arm": (8, 5)}),
    ("gesture-peace-sign", "Peace sign", "gestures",
     ["peace", "victory", "v sign", "two fingers", "cute", "fun"],
     {"r_arm": (-15, 165), "l_arm": (8, 5), "head_tilt": -6}),
    ("gesture-arms-raised", "Arms raised, cheering", "gestures",
     ["cheer", "cheering", "celebrate", "celebration", "victory", "hooray", "win", "winner",
      "arms up", "raised", "joy"],
     {"r_arm": (-150, -170), "l_arm": (150, 170), "look_up": 12}),
    ("gesture-shrug", "Shrugging", "gestures",
     ["shrug", "shrugging", "dunno", "confused", "whatever", "unsure"],
     {"shrug": 0.2, "r_arm": (-20, -100), "l_arm": (20, 100), "head_tilt": 8}),
    ("gesture-hand-on-heart", "Hand on heart", "gestures",
     ["heart", "hand on heart", "pledge", "grateful", "thanks", "thank", "sincere", "love"],
     {"r_arm": (-8, 108, 0.9, 0.95), "l_arm": (8, 5)}),
    ("gesture-salute", "Salute", "gestures",
     ["salute", "saluting", "military", "respect", "soldier", "captain"],
     {"r_arm": (-70, 142, 0.7, 1), "l_arm": (6, 3)}),
    ("gesture-clapping", "Clapping", "gestures",
     ["clap", "clapping", "applause", "applaud", "bravo", "congratulations"],
     {"r_arm": (-10, 120, 0.9, 0.9), "l_arm": (10, -120, 0.9, 0.9)}),
    ("gesture-presenting", "Presenting, open palm", "gestures",
     ["present", "presenting", "show", "showing", "introduce", "offer", "this way"],
     {"r_arm": (-15, -70), "l_arm": (8, 5), "head_turn": -15}),
    ("gesture-heart-hands", "Heart with both hands", "gestures",
     ["heart", "love", "heart hands", "cute", "romantic", "fan"],
     {"r_arm": (-150, 115), "l_arm": (150, -115), "head_tilt": 5}),
    ("gesture-on-the-phone", "On the phone", "gestures",
     ["phone", "call", "calling", "talking", "telephone"],
     {"r_arm": (10, 178, 0.6, 1), "l_arm": (8, 5), "head_tilt": -10, "head_turn": 15}),
    # action
    ("action-running", "Running", "action",
     ["run", "running", "sprint", "sprinting", "jog", "jogging", "race", "fast"],
     {"turn": 80, "torso": -12, "r_arm": (-60, 30), "l_arm": (40, 150), "r_leg": (60, 0),
      "l_leg": (-25, -80)}),
    ("action-jumping", "Star jump", "action",
     ["jump", "jumping", "star jump", "leap", "joy", "excited", "happy", "jumping jack"],
     {"r_arm": (-140, -155), "l_arm": (140, 155), "r_leg": (-28, -30), "l_leg": (28, 30),
      "look_up": 8}),
    ("action-kick", "High kick", "action",
     ["kick", "kicking", "karate", "martial arts", "taekwondo", "fight"],
     {"turn": 80, "torso": 20, "r_arm": (-30, 20), "l_arm": (60, 100), "r_leg": (95, 92),
      "l_leg": (-5, 0)}),
    ("action-punch", "Punching", "action",
     ["punch", "punching", "boxing", "boxer", "fight", "fighting", "fist", "strike"],
     {"turn": 70, "r_arm": (85, 90), "l_arm": (20, 160, 1, 0.9), "r_leg": (-15, -10),
      "l_leg": (20, 10)}),
    ("action-dancing", "Dancing", "action",
     ["dance", "dancing", "party", "disco", "groove", "fun", "music"],
     {"torso": -8, "shoulder_tilt": -8, "hip_tilt": 10, "r_arm": (-140, -165),
      "l_arm": (40, -40), "r_leg": (-3, 4), "l_leg": (30, -20), "head_tilt": 10}),
    ("action-yoga-tree", "Yoga tree pose", "action",
     ["yoga", "tree", "balance", "balancing", "calm", "stretch"],
     {"r_arm": (-165, 140), "l_arm": (165, -140), "r_leg": (-2, 0), "l_leg": (55, -80)}),
    ("action-stretching", "Stretching overhead", "action",
     ["stretch", "stretching", "yawn", "morning", "wake up", "reach", "arms up"],
     {"r_arm": (-165, 160), "l_arm": (165, -160), "look_up": 15, "r_leg": (-6, -2),
      "l_leg": (6, 2)}),
    ("action-throwing", "Throwing a ball", "action",
     ["throw", "throwing", "ball", "pitch", "baseball", "sport"],
     {"turn": 60, "torso": -8, "r_arm": (-110, -160), "l_arm": (80, 60), "r_leg": (-25, -5),
      "l_leg": (25, 10)}),
    ("action-squat", "Squat", "action",
     ["squat", "squatting", "exercise", "workout", "gym", "fitness", "crouch"],
     {"r_arm": (-80, -90, 0.35, 0.3), "l_arm": (80, 90, 0.35, 0.3), "r_leg": (-50, 15, 0.7, 1),
      "l_leg": (50, -15, 0.7, 1)}),
    ("action-lunge", "Lunge", "action",
     ["lunge", "lunging", "fencing", "exercise", "workout", "fitness", "stretch"],
     {"turn": 80, "r_arm": (-5, 0), "l_arm": (5, 0), "r_leg": (80, 0), "l_leg": (-45, -80)}),
    # portrait framing
    ("portrait-headshot", "Headshot, facing the camera", "portrait",
     ["headshot", "portrait", "face", "front", "passport", "profile picture", "head"],
     {"portrait": HEADSHOT}),
    ("portrait-three-quarter", "Three-quarter portrait", "portrait",
     ["portrait", "three quarter", "turned", "angle", "headshot"],
     {"turn": 35, "head_turn": -10, "portrait": HEADSHOT}),
    ("portrait-profile", "Profile portrait", "portrait",
     ["portrait", "profile", "side", "side view", "headshot"],
     {"turn": 85, "portrait": HEADSHOT}),
    ("portrait-head-tilt", "Head tilted", "portrait",
     ["portrait", "tilt", "tilted", "curious", "cute", "playful", "headshot"],
     {"head_tilt": 15, "head_turn": 10, "portrait": HEADSHOT}),
    ("portrait-looking-up", "Looking up", "portrait",
     ["portrait", "looking up", "up", "hopeful", "sky", "dreamy"],
     {"look_up": 25, "head_turn": 15, "portrait": BUST}),
    ("portrait-over-the-shoulder", "Looking over the shoulder", "portrait",
     ["portrait", "over the shoulder", "shoulder", "glance", "back", "behind"],
     {"turn": 150, "head_turn": -110, "portrait": BUST}),
    ("portrait-chin-on-hand", "Chin on hand, close-up", "portrait",
     ["portrait", "chin", "hand", "thinking", "think", "pensive", "close-up"],
     {"r_arm": (15, 152, 0.55, 1), "head_tilt": -8, "portrait": BUST}),
    ("portrait-waist-up-arms-crossed", "Waist up, arms crossed", "portrait",
     ["portrait", "waist up", "half body", "arms crossed", "business", "professional",
      "confident", "crossed"],
     {"r_arm": (5, 80, 0.8, 1), "l_arm": (-5, -80, 0.8, 1), "portrait": WAIST_UP}),
    ("portrait-selfie", "Selfie, arm out", "portrait",
     ["selfie", "phone", "camera", "arm out", "photo", "smile"],
     {"r_arm": (-115, -150, 0.7, 0.6), "l_arm": (8, 5), "head_tilt": -6, "portrait": WAIST_UP}),
]  # fmt: skip


def library() -> list[dict]:
    return [
        {"id": pose_id, "name": name, "category": category, "tags": tags,
         "keypoints": figure(**spec)}
        for pose_id, name, category, tags, spec in POSES
    ]  # fmt: skip


def text() -> str:
    """The JSON file: one pose a line, so a changed pose is a one-line diff."""
    lines = [json.dumps(pose, separators=(", ", ": ")) for pose in library()]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    wanted = text()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != wanted:
            print(f"{OUTPUT} is out of date: run python build/make_poses.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(wanted, encoding="utf-8")
    print(f"wrote {len(POSES)} poses to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
