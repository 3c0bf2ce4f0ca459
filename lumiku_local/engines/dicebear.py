"""DiceBear: illustrated avatars rendered offline by resvg, deterministic from prompt and seed
(and from a photo's colours when the generation has one: lookalike)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import threading
from concurrent.futures import Future
from importlib import resources
from typing import Any

from .. import failpoints, lookalike, storage
from ..catalog import DEFAULT_STYLE
from ..lookalike import Look
from ..png_parameters import add_parameters
from ..storage import PreparedImage
from .base import (
    Cancelled,
    EngineJob,
    OnImage,
    OnProgress,
    PermanentEngineError,
    TransientEngineError,
    Variation,
)
from .render_pool import RenderPool

BACKGROUNDS = ["b6e3f4", "c0aede", "d1d4f9", "ffd5dc", "ffdfbf"]
FONT_STACK = "Segoe UI, Helvetica Neue, Arial, DejaVu Sans, Liberation Sans, sans-serif"
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SEED_MAX_LENGTH = 1024  # DiceBear's options schema: `/seed maxLength`
WARM_UP_DELAY = 1.0  # seconds after a project page asked for the render processes
# styles that look wrong drawn without their background (render_png(background=False)), and why
_BLENDS = "blends its drawing with the background colour"
CANNOT_LOSE_BACKGROUND = {
    **dict.fromkeys(
        ("disco", "icons", "initial-face", "initials", "loops", "shape-grid", "stripes"), _BLENDS
    ),
    "triangles": _BLENDS,
    "glass": "fills the whole square: it has no background to leave out",
    "glyphs": "fills the whole square: it has no background to leave out",
}

_per_thread = threading.local()  # resvg's Options may not cross threads


def _rasterise(svg: str, with_fonts: bool) -> bytes:
    """SVG to PNG with resvg; system fonts are loaded once per thread, and only for text."""
    import resvg

    key = "fonts" if with_fonts else "plain"
    options = getattr(_per_thread, key, None)
    if options is None:
        options = resvg.usvg.Options.default()
        if with_fonts:
            options.load_system_fonts()
        setattr(_per_thread, key, options)
    return bytes(resvg.render(resvg.usvg.Tree.from_str(svg, options), IDENTITY))


def engine_seed(prompt: str, seed: int) -> str:
    """DiceBear's seed for one image: the prompt and the seed, or a hash of them if too long."""
    text = f"{prompt}|{seed}"
    if len(text) <= SEED_MAX_LENGTH:  # as it always was: a prompt that worked keeps its pixels
        return text
    return hashlib.sha256(text.encode()).hexdigest()


class DiceBearEngine:
    """Renders in `processes` worker processes (see render_pool); `render_png` renders here."""

    name = "dicebear"

    def __init__(self, processes: int | None = None) -> None:
        self._styles: dict[str, Any] = {}
        self._needs_fonts: set[str] = set()
        self._lock = threading.Lock()
        self._warm_up_timer: threading.Timer | None = None
        count = processes if processes is not None else min(2, os.cpu_count() or 1)
        self.pool = RenderPool(count, initializer=_load_style, initargs=(DEFAULT_STYLE,))

    def is_installed(self, capabilities: dict[str, Any]) -> bool:
        return True

    def style(self, name: str) -> Any:
        """Load and cache a style; the schema check costs ~0.5 s once per style and process."""
        from dicebear import Style

        with self._lock:
            cached = self._styles.get(name)
            if cached is None:
                try:
                    raw = resources.files("dicebear_styles").joinpath(f"{name}.json").read_text()
                except FileNotFoundError:
                    raise PermanentEngineError(f"DiceBear has no style named {name!r}.") from None
                cached = self._styles[name] = Style.from_json(raw)
                if "font" in raw.lower():  # initials and friends draw text
                    self._needs_fonts.add(name)
            return cached

    def render_png(
        self,
        style_name: str,
        seed: str,
        width: int,
        height: int,
        look: Look | None = None,
        likeness: float = 0.0,
        background: bool = True,
    ) -> bytes:
        """One image, rendered in this process (the worker processes call this); with a
        photo's `look`, its colours `likeness` of the way from the seed's; without its
        `background`, transparent around the figure."""
        from dicebear import Avatar
        from dicebear.errors import OptionsValidationError

        style = self.style(style_name)
        options: dict[str, Any] = {
            "seed": seed,
            "size": min(width, height),
            "backgroundColor": BACKGROUNDS,
        }
        try:
            if look is not None:
                options |= lookalike.colour_options(style_name, style, options, look, likeness)
            svg = Avatar(style, options).to_string() if background else _bare_svg(style, options)
        except OptionsValidationError as exc:  # the same options fail every time
            raise PermanentEngineError(f"The Instant engine cannot draw this: {exc}.") from None
        needs_fonts = style_name in self._needs_fonts
        if needs_fonts:  # DiceBear asks for `system-ui`, a name resvg does not resolve
            svg = svg.replace('font-family="system-ui"', f'font-family="{FONT_STACK}"')
        png = _rasterise(svg, needs_fonts)
        if width == height:
            return png
        return _pad(png, width, height, background)

    def redraw_png(
        self,
        style_name: str,
        seed: str,
        width: int,
        height: int,
        look: Look | None,
        likeness: float,
        background: bool,
    ) -> bytes:
        """An image drawn again as it was made, at another size or without its background
        (profile exports), in a render process."""
        return self.pool.run(_render, style_name, seed, width, height, look, likeness, background)

    def generate(
        self, job: EngineJob, on_image: OnImage, on_progress: OnProgress, cancelled: Cancelled
    ) -> None:
        if any(variation.pose_id is not None for variation in job.variations):
            self._generate_poses(job, on_image, on_progress, cancelled)
            return
        style_name = job.options.get("style") or job.capabilities.get("defaultStyle", "adventurer")
        reference = job.reference
        # the photo is read once per generation, not per image: each render gets its colours
        look = lookalike.sample(reference) if reference is not None else None
        likeness = reference.likeness if reference is not None else 0.0
        total = len(job.variations)
        for done, variation in enumerate(job.variations):
            if cancelled():
                return
            failpoints.hit("engine.generate")
            prepared = self.pool.run(
                _render_prepared,
                style_name,
                engine_seed(job.prompt, variation.seed),
                job.width,
                job.height,
                look,
                likeness,
                png_parameters(job, style_name, variation, look),
            )
            on_image(variation, prepared)
            on_progress((done + 1) / total, f"image {done + 1} of {total}")

    def _generate_poses(
        self, job: EngineJob, on_image: OnImage, on_progress: OnProgress, cancelled: Cancelled
    ) -> None:
        """The Pose Generator's Instant pictures: the source avatar's head, cut once per
        generation, on a body drawn in each variation's pose (pose_body)."""
        from .. import pose_body

        reference = job.reference
        if reference is not None:
            head = pose_body.head_from_reference(reference)
        else:
            head = pose_body.neutral_head()
        head_png = pose_body.png_bytes(head)  # the render processes get bytes: picklable
        skin = pose_body.skin_of(head)
        total = len(job.variations)
        for done, variation in enumerate(job.variations):
            if cancelled():
                return
            failpoints.hit("engine.generate")
            keypoints = job.poses.get(variation.pose_id or "")
            if keypoints is None:
                raise PermanentEngineError(
                    f"The pose {variation.pose_id!r} of {variation.key} is not in the library."
                )
            prepared = self.pool.run(
                _render_pose_prepared,
                head_png,
                keypoints,
                variation.seed,
                job.width,
                job.height,
                skin,
                pose_png_parameters(job, variation),
            )
            on_image(variation, prepared)
            on_progress((done + 1) / total, f"image {done + 1} of {total}")

    def warm_up(self) -> list[Future[Any]]:
        """Start the worker processes, each loading the default style, before the first job
        (called when a project page opens: idle, Lumiku keeps no render processes)."""
        return self.pool.warm_up(_load_style, DEFAULT_STYLE)

    def warm_up_soon(self) -> None:
        """warm_up() a moment after the page that asks has loaded, before a Generate is likely:
        started at once, the process starts compete with the browser drawing that page."""
        with self._lock:
            if self.pool.warmed or self._warm_up_timer is not None:
                return
            self._warm_up_timer = threading.Timer(WARM_UP_DELAY, self.warm_up)
        self._warm_up_timer.daemon = True
        self._warm_up_timer.start()

    def close(self) -> None:
        if self._warm_up_timer is not None:
            self._warm_up_timer.cancel()
        self.pool.close()


def png_parameters(
    job: EngineJob, style_name: str, variation: Variation, look: Look | None
) -> dict[str, Any]:
    """What each Instant PNG records: enough to draw it again, and the photo it follows."""
    parameters: dict[str, Any] = {
        "prompt": job.prompt,
        "seed": variation.seed,
        "width": job.width,
        "height": job.height,
        "model": f"DiceBear {style_name}",
        "lumiku_model_key": job.model_key,
        "lumiku_style": style_name,
        "lumiku_variation": variation.key,
    }
    if job.reference is not None:
        parameters |= job.reference.parameters()
    if look is not None:
        parameters["lumiku_look"] = look.describe()
    return parameters


def pose_png_parameters(job: EngineJob, variation: Variation) -> dict[str, Any]:
    """What each Instant pose PNG records: the pose, the seed and the avatar it poses."""
    parameters: dict[str, Any] = {
        "prompt": job.prompt,
        "seed": variation.seed,
        "width": job.width,
        "height": job.height,
        "model": "Lumiku Instant pose",
        "lumiku_model_key": job.model_key,
        "lumiku_variation": variation.key,
        "lumiku_pose_id": variation.pose_id,
    }
    if job.reference is not None:
        parameters |= job.reference.parameters()
    return parameters


# -- in the worker processes

_in_process: DiceBearEngine | None = None


def _local_engine() -> DiceBearEngine:
    global _in_process
    if _in_process is None:
        _in_process = DiceBearEngine(processes=1)  # its pool is never used in a worker
    return _in_process


def _load_style(style_name: str) -> None:
    # a job naming a missing style reports it; a pool initializer that raised would break the pool
    with contextlib.suppress(PermanentEngineError):
        _local_engine().style(style_name)


def _render(
    style_name: str,
    seed: str,
    width: int,
    height: int,
    look: Look | None = None,
    likeness: float = 0.0,
    background: bool = True,
) -> bytes:
    try:
        return _local_engine().render_png(
            style_name, seed, width, height, look, likeness, background
        )
    except PermanentEngineError:
        raise
    except Exception as exc:  # sent back pickled: DiceBear's own errors do not unpickle
        raise TransientEngineError(f"{type(exc).__name__}: {exc}") from None


def _render_prepared(
    style_name: str,
    seed: str,
    width: int,
    height: int,
    look: Look | None,
    likeness: float,
    parameters: dict[str, Any],
) -> PreparedImage:
    """Render, add the parameters and prepare (thumbnail, content names) in the render
    process: the server's threads only write the files, so two workers make images on two
    cores."""
    png = _render(style_name, seed, width, height, look, likeness)
    return storage.prepare_png(add_parameters(png, parameters))


@functools.lru_cache(maxsize=4)  # a batch's images share one head: decoded once a process
def _head(head_png: bytes) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(head_png)) as opened:
        return opened.convert("RGBA")


def _render_pose_prepared(
    head_png: bytes,
    keypoints: list[list[float]],
    seed: int,
    width: int,
    height: int,
    skin: tuple[int, int, int] | None,
    parameters: dict[str, Any],
) -> PreparedImage:
    """A pose picture drawn, encoded with its parameters and prepared in the render process."""
    from .. import pose_body

    try:
        picture = pose_body.render(_head(head_png), keypoints, seed, width, height, skin)
        out = io.BytesIO()
        # flat colours: the fastest zlib level is barely larger and several times faster
        picture.save(out, "PNG", compress_level=1)
    except Exception as exc:  # sent back pickled; a drawing error is not the user's input
        raise TransientEngineError(f"{type(exc).__name__}: {exc}") from None
    return storage.prepare_png(add_parameters(out.getvalue(), parameters))


def _bare_svg(style: Any, options: dict[str, Any]) -> str:
    """The avatar without its background `<rect>`. DiceBear's picks are keyed by name, not
    drawn in order, and the resolver is the same: every other colour and part (one chosen to
    contrast with the background too) is what the seed gives with the background."""
    from dicebear.options import Options
    from dicebear.renderer import Renderer
    from dicebear.resolver import Resolver

    class WithoutBackground(Renderer):
        def _render_background(self, canvas: Any) -> str:
            return ""

    return WithoutBackground(style, Resolver(style, Options(options))).render()


def _pad(png: bytes, width: int, height: int, background: bool = True) -> bytes:
    """DiceBear art is square: centre it on a canvas of its own background colour (or on
    nothing, when it has none)."""
    from PIL import Image

    square = Image.open(io.BytesIO(png)).convert("RGBA")
    fill = square.getpixel((0, 0)) if background else (0, 0, 0, 0)
    canvas = Image.new("RGBA", (width, height), fill)
    canvas.paste(square, ((width - square.width) // 2, (height - square.height) // 2))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()
