"""A generation's reference photo: which models take one, how it is chosen, kept and read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import face_box, storage
from .catalog import REMOTE_PROVIDER
from .db import tuples, write_transaction
from .engines.base import FaceBox, PermanentEngineError, Reference
from .errors import InvalidInput, NotFound
from .models import AIModel, Avatar, AvatarGeneration

MODES = ("lookAlike", "img2img", "ipAdapter")
# likeness when the request names none: how strongly results follow the photo, per mode
DEFAULT_LIKENESS = {"lookAlike": 0.8, "img2img": 0.5, "ipAdapter": 0.6}


def mode_for(model: AIModel, style: str | None = None) -> str | None:
    """How `model` (with `style`, for the Instant engine) uses a photo, or None if it cannot.

    Capabilities say it: the Instant model lists `lookAlikeStyles` (styles with colour
    options); a diffusion model with `ipAdapter` keeps the face, any other starts from the
    photo (img2img); `"reference": false` turns it off for a model.
    """
    caps = model.capabilities or {}
    if caps.get("reference") is False:
        return None
    if model.provider == "dicebear":
        styles = caps.get("lookAlikeStyles") or []
        chosen = style or caps.get("defaultStyle")
        return "lookAlike" if chosen in styles else None
    if model.provider == "diffusers":
        return "ipAdapter" if caps.get("ipAdapter") else "img2img"
    if model.provider == REMOTE_PROVIDER:  # where its providers serve image-to-image
        return "img2img" if caps.get("imageToImage") else None
    return None


def default_likeness(model: AIModel, mode: str) -> float:
    caps = model.capabilities or {}
    return float(caps.get("defaultLikeness", DEFAULT_LIKENESS[mode]))


def capability(model: AIModel) -> dict[str, Any] | None:
    """What the model list and the form show: the mode, default likeness, styles that can."""
    caps = model.capabilities or {}
    if model.provider == "dicebear":
        styles = caps.get("lookAlikeStyles") or []
        if not styles or caps.get("reference") is False:
            return None
        return {
            "mode": "lookAlike",
            "defaultLikeness": default_likeness(model, "lookAlike"),
            "styles": styles,
        }
    mode = mode_for(model)
    if mode is None:
        return None
    return {"mode": mode, "defaultLikeness": default_likeness(model, mode)}


# ---------------------------------------------------------------- choosing one at submit


@dataclass(frozen=True)
class ReferenceCopy:
    """What a generation keeps of its photo: the file names (its own copy) and how to use it."""

    image_file: str
    thumbnail_file: str
    avatar_id: str | None
    width: int
    height: int
    face_box: FaceBox
    likeness: float | None = None  # None: the model's default

    @classmethod
    def of_generation(cls, generation: AvatarGeneration) -> ReferenceCopy | None:
        """A generation's reference, for a retry or "more like this" (the photo may be gone)."""
        info = generation.reference
        if not generation.reference_file or not info:
            return None
        box = face_box.from_json(info.get("faceBox"), info["width"], info["height"])
        return cls(
            generation.reference_file,
            generation.reference_thumbnail or generation.reference_file,
            info.get("avatarId"),
            int(info["width"]),
            int(info["height"]),
            box or face_box.center(int(info["width"]), int(info["height"]), "no_face"),
            info.get("likeness"),
        )


def photo_of(avatar_id: str, project_id: str) -> Avatar:
    """The live avatar to start from; 404 unknown or deleted, 422 another project's."""
    avatar = Avatar.get_or_none(Avatar.id == avatar_id)
    if avatar is None:
        raise NotFound("No avatar has that referenceAvatarId. Upload the photo first.")
    if avatar.deleted_at is not None:
        raise NotFound("The reference photo was deleted. Choose another photo of this project.")
    if avatar.project_id != project_id:
        raise InvalidInput(
            "The reference photo belongs to another project. Upload it to this project, "
            "or generate in the project it belongs to.",
            code="reference_other_project",
        )
    return avatar


def find_face(files_dir: Path, avatar_id: str, project_id: str) -> FaceBox | None:
    """The face square of an avatar that has none yet (older uploads, generated avatars),
    found outside any write transaction (reading and scanning a photo takes a moment);
    copy_of stores it with the generation, so a refused request changes nothing."""
    avatar = Avatar.get_or_none(Avatar.id == avatar_id)
    if avatar is None or avatar.project_id != project_id:
        return None
    if not face_box.needs_detection(avatar.face_box):
        return None
    return _detect_in_file(files_dir, avatar.image_file)


def _detect_in_file(files_dir: Path, image_file: str) -> FaceBox | None:
    from PIL import Image

    try:
        with Image.open(storage.resolve(files_dir, image_file)) as image:
            return face_box.detect(image.convert("RGB"))
    except (OSError, ValueError):  # a missing file: copy_of reports it
        return None


def fill_face_boxes(files_dir: Path, avatars: list[dict[str, Any]]) -> None:
    """Find and store the squares of `avatars` (API shapes, updated in place) that have none,
    so the form shows the square a generation will follow (older uploads, generated
    avatars); each photo is searched once, outside the short write that keeps the result."""
    wanted = [a for a in avatars if face_box.needs_detection(a.get("faceBox"))]
    if not wanted:
        return
    rows = Avatar.select(Avatar.id, Avatar.image_file).where(
        Avatar.id.in_([a["id"] for a in wanted])
    )
    files = {row.id: row.image_file for row in rows}
    found = {}
    for avatar in wanted:
        box = _detect_in_file(files_dir, files[avatar["id"]]) if avatar["id"] in files else None
        if box is not None:
            found[avatar["id"]] = avatar["faceBox"] = face_box.as_json(box)
    if found:
        with write_transaction():
            for avatar_id, box_json in found.items():
                Avatar.update(face_box=box_json).where(Avatar.id == avatar_id).execute()


def copy_of(
    avatar: Avatar, files_dir: Path, likeness: float | None, found: FaceBox | None = None
) -> ReferenceCopy:
    """Call in the submit's write transaction; `found`: find_face's square for an avatar
    without one, kept on the avatar too."""
    if not storage.resolve(files_dir, avatar.image_file).is_file():
        raise NotFound(
            "The reference photo's file is missing from the data folder; run `lumiku doctor`."
        )
    box = face_box.from_json(avatar.face_box, avatar.width, avatar.height)
    if found is not None and (box is None or box.source == "no_detector"):
        box = found
        Avatar.update(face_box=face_box.as_json(found)).where(Avatar.id == avatar.id).execute()
    return ReferenceCopy(
        avatar.image_file,
        avatar.thumbnail_file,
        avatar.id,
        avatar.width,
        avatar.height,
        box or face_box.center(avatar.width, avatar.height, "no_face"),
        likeness,
    )


def check_kept(copy: ReferenceCopy, files_dir: Path) -> None:
    """A reference carried over (retry, "more like this") still has its file: a deleted photo
    goes once the generations that used it have finished."""
    if not storage.resolve(files_dir, copy.image_file).is_file():
        raise NotFound(
            "The photo this generation started from was deleted, so it cannot be used again. "
            "Upload it once more and choose it in the generate form.",
            code="reference_deleted",
        )


def release(generation: AvatarGeneration) -> int:
    """In the transaction that finishes `generation`: record its reference's files for
    removal unless a live avatar or an unfinished generation still uses them."""
    from . import file_deletions

    if not generation.reference_file:
        return 0
    image = generation.reference_file
    thumbnail = generation.reference_thumbnail or image
    return file_deletions.record([storage.StoredImage(image, thumbnail, 0, 0, 0)])


def check_likeness(likeness: float | None) -> None:
    if likeness is not None and not 0.0 <= likeness <= 1.0:  # NaN fails the comparison too
        raise InvalidInput("likeness must be between 0 and 1 (0 %–100 %).")


def resolve(
    copy: ReferenceCopy, model: AIModel, style: str | None, mode: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The mode and the JSON a generation stores; 422 when the model (or style) cannot use a
    photo, naming the ones that can. `mode` "pose": the Pose Generator's source avatar."""
    mode = mode or mode_for(model, style)
    if mode is None:
        raise InvalidInput(_unsupported_message(model, style), code="reference_unsupported")
    likeness = copy.likeness
    if likeness is None:
        likeness = 1.0 if mode == "pose" else default_likeness(model, mode)
    return mode, {
        "avatarId": copy.avatar_id,
        "sha256": sha256_of(copy.image_file),
        "likeness": round(float(likeness), 4),
        "mode": mode,
        "faceBox": face_box.as_json(copy.face_box),
        "width": copy.width,
        "height": copy.height,
    }


def sha256_of(image_file: str) -> str:
    return image_file.split("/", 1)[1].split(".", 1)[0]  # content-addressed: "ab/<sha256>.png"


def _unsupported_message(model: AIModel, style: str | None) -> str:
    caps = model.capabilities or {}
    if model.provider == "dicebear" and caps.get("lookAlikeStyles"):
        chosen = style or caps.get("defaultStyle")
        styles = ", ".join(caps["lookAlikeStyles"])
        return (
            f"The {chosen} style cannot use a photo: it has no skin or hair colours to match. "
            f"These styles can: {styles}."
        )
    able = [
        candidate.name
        for candidate in AIModel.select().where(AIModel.enabled == True)  # noqa: E712
        if mode_for(candidate) is not None
    ]
    which = ", ".join(able) if able else "none is enabled"
    return f"{model.name} cannot start from a photo. Models that can: {which}."


# ---------------------------------------------------------------- reading it in the worker


def for_engine(generation: AvatarGeneration, files_dir: Path) -> Reference | None:
    """The engine's view of a generation's reference; PermanentEngineError if its file is gone."""
    info = generation.reference
    if not generation.reference_file or not info:
        return None
    try:
        png = storage.resolve(files_dir, generation.reference_file).read_bytes()
    except FileNotFoundError:
        raise PermanentEngineError(
            "The reference photo's file is missing from the data folder; run `lumiku doctor`. "
            "Undelivered images were refunded."
        ) from None
    width, height = int(info["width"]), int(info["height"])
    box = face_box.from_json(info.get("faceBox"), width, height) or face_box.center(
        width, height, "no_face"
    )
    return Reference(
        png=png,
        sha256=str(info["sha256"]),
        width=width,
        height=height,
        face_box=box,
        likeness=float(info["likeness"]),
        mode=str(info["mode"]),
    )


def file_path(files_dir: Path, generation_id: str, thumbnail: bool) -> Path:
    """A generation's reference file (or its thumbnail); 404 when it has none."""
    generation = AvatarGeneration.get_or_none(AvatarGeneration.id == generation_id)
    if generation is None:
        raise NotFound("No generation has that id.")
    name = generation.reference_thumbnail if thumbnail else generation.reference_file
    if not name:
        raise NotFound("This generation has no reference photo.")
    path = storage.resolve(files_dir, name)
    if not path.is_file():
        if generation.id not in still_kept([generation]):
            raise NotFound("The photo this generation started from was deleted.")
        raise NotFound(
            "The reference photo's file is missing from the data folder; run `lumiku doctor`."
        )
    return path


def still_kept(generations: list[AvatarGeneration]) -> set[str]:
    """The ids among `generations` whose reference photo is still kept: the generation is
    unfinished, or a live avatar has the same picture (its photo, or the same photo uploaded
    again). Otherwise its files were let go of when it finished (or are about to be)."""
    from .models import UNFINISHED_STATUSES

    with_reference = [g for g in generations if g.reference_file]
    names = {g.reference_file for g in with_reference}
    if not names:
        return set()
    live = {
        name
        for (name,) in tuples(
            Avatar.select(Avatar.image_file).where(
                Avatar.image_file.in_(sorted(names)) & Avatar.purged_at.is_null()
            )
        )
    }
    return {
        g.id for g in with_reference if g.status in UNFINISHED_STATUSES or g.reference_file in live
    }
