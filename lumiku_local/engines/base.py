"""The engine interface: a job in, images out through callbacks, cancel checked often."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..storage import PreparedImage


class TransientEngineError(RuntimeError):
    """Worth another attempt (a hiccup, not the user's input)."""


class PermanentEngineError(RuntimeError):
    """Retrying cannot help; the message tells the user what to do."""


@dataclass(frozen=True)
class Variation:
    """One image of a batch: what to make, fixed when the generation is submitted."""

    key: str  # unique per generation: "v{n}" (avatars), "{poseId}-v{n}", "text-v{n}" (poses)
    seed: int
    pose_id: str | None = None  # a pose of the library (the Pose Generator)
    label: str = ""  # how its avatar is named after the generation: "#2", "Waving #1"

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {"key": self.key, "seed": self.seed}
        if self.pose_id is not None:
            data["poseId"] = self.pose_id
        if self.label:
            data["label"] = self.label
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Variation:
        pose_id = data.get("poseId")
        return cls(
            key=str(data["key"]),
            seed=int(str(data["seed"])),
            pose_id=None if pose_id is None else str(pose_id),
            label=str(data.get("label") or ""),
        )


@dataclass(frozen=True)
class FaceBox:
    """A square around the face, in pixels of the reference image.

    `source`: "detected" (found by the detector), "user" (adjusted on the photo), or why the
    centre square stands in: "no_face" (the detector found none), "no_detector" (not installed).
    """

    x: int
    y: int
    size: int
    source: str = "detected"


@dataclass(frozen=True)
class Reference:
    """The photo a generation starts from: the generation's own copy, read from its file."""

    png: bytes  # the image file's bytes (a PNG; its name is their sha256)
    sha256: str
    width: int
    height: int
    face_box: FaceBox
    likeness: float  # 0-1: how strongly results follow the photo
    mode: str  # "lookAlike" (Instant colours), "img2img" or "ipAdapter" (references.MODES)

    def parameters(self) -> dict[str, str]:
        """What every PNG made from it records (png_parameters)."""
        box = self.face_box
        return {
            "lumiku_reference_sha256": self.sha256,
            "lumiku_likeness": f"{self.likeness:.2f}",
            "lumiku_reference_mode": self.mode,
            "lumiku_face_box": f"{box.x},{box.y},{box.size}",
        }


@dataclass(frozen=True)
class EngineJob:
    generation_id: str
    model_key: str
    capabilities: dict[str, Any]
    prompt: str
    width: int
    height: int
    variations: list[Variation]
    options: dict[str, Any] = field(default_factory=dict)
    reference: Reference | None = None
    # the Pose Generator: keypoints (18 x [x, y, visible], 0-1) of each variation's pose_id
    poses: dict[str, list[list[float]]] = field(default_factory=dict)
    # seconds of running time left before the model's deadline (a remote engine's waits for
    # Retry-After stay within it)
    seconds_left: Callable[[], float] = field(default=lambda: math.inf)


# an image ready to store: its PNG, thumbnail and names (storage.prepare_png), made where the
# image was made, so an engine that draws in other processes does that work there too
OnImage = Callable[[Variation, "PreparedImage"], None]
OnProgress = Callable[[float, str], None]
Cancelled = Callable[[], bool]


class Engine(Protocol):
    name: str

    def is_installed(self, capabilities: dict[str, Any]) -> bool: ...

    def generate(
        self, job: EngineJob, on_image: OnImage, on_progress: OnProgress, cancelled: Cancelled
    ) -> None: ...
