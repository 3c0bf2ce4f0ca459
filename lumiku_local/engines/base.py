"""The engine interface: a job in, images out through callbacks, cancel checked often."""

from __future__ import annotations

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
    key: str  # "v{n}", unique per generation
    seed: int


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
