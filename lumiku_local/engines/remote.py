"""Remote generation on Hugging Face Inference Providers, through huggingface_hub's InferenceClient.

One request per variation, with the variation's seed: a resume after a crash asks only for the
keys still missing, and a retry of one image never re-buys the others. Requests run in a few
threads of their own (hf_inference_concurrency, over every generation of the process), never
holding the local GPU lock; images are delivered by the worker's own thread, as they arrive.

What leaves the computer: the prompt, the size, steps, guidance and seed, and for image-to-image
the photo's frame around the face. The token goes to Hugging Face only, in the request's
Authorization header; it is never logged and never part of an error message.
"""

from __future__ import annotations

import io
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .. import failpoints, storage
from ..catalog import REMOTE_PROVIDER
from ..config import Settings
from ..png_parameters import add_parameters, png_with_parameters
from . import reference_image
from .base import (
    Cancelled,
    EngineJob,
    OnImage,
    OnProgress,
    PermanentEngineError,
    TransientEngineError,
    Variation,
)
from .diffusers import follows_negative_prompt
from .inference_access import TOKEN_HELP, UNREACHABLE, InferenceAccess, Route, scrub

log = logging.getLogger("lumiku.engines.remote")

NAME = REMOTE_PROVIDER
# statuses worth asking again: a timeout, rate limit, overload or a model still loading
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
PROVIDER_TEXT_CHARACTERS = 300  # of a provider's answer, in an error message


class _Transient(Exception):
    """One request failed in a way another try may not: `retry_after`, when the answer said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Request:
    """What one variation's request sends, and what its PNG records."""

    route: Route
    model: str  # what InferenceClient is given: the Hub id, or hf-inference's URL
    arguments: dict[str, Any]
    image: bytes | None  # image-to-image: the photo's frame, as PNG
    parameters: dict[str, Any]


class RemoteEngine:
    """Runs catalog models marked `hf-inference-providers` on Hugging Face's providers."""

    name = NAME

    def __init__(self, settings: Settings, access: InferenceAccess | None = None) -> None:
        self.settings = settings
        self.access = access or InferenceAccess(settings)
        self.concurrency = settings.hf_inference_concurrency
        self.timeout = settings.hf_inference_timeout_seconds
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pointed = False

    # ------------------------------------------------------------ install state

    def problem(self, capabilities: dict[str, Any], task: str = "text-to-image") -> str | None:
        """Why this model cannot run remotely now (no token, no live provider), or None."""
        repo = capabilities.get("hfRepo")
        if not repo:
            return "This remote model names no Hugging Face model (hfRepo)."
        token = self.access.token()
        problem = self.access.token_problem(token)
        if problem:
            return problem
        return self.access.route(str(repo), token, task)[1]

    def is_installed(self, capabilities: dict[str, Any]) -> bool:
        """'Installed' for a remote model: a token that may call Inference Providers, and a
        live provider in the model's mapping."""
        return self.problem(capabilities) is None

    def not_installed_reason(self, capabilities: dict[str, Any]) -> str | None:
        return self.problem(capabilities)

    def describe(self, capabilities: dict[str, Any]) -> dict[str, Any]:
        """What the Models page and the form say: the provider that will run it, or why none."""
        token = self.access.token()
        token_problem = self.access.token_problem(token)
        route, problem = None, token_problem
        if token_problem is None:
            route, problem = self.access.route(
                str(capabilities.get("hfRepo")), token, "text-to-image"
            )
        return {
            "provider": route.provider if route else None,
            "problem": problem,
            "needsToken": token_problem is not None and token_problem != UNREACHABLE,
            "modelUrl": f"https://huggingface.co/{capabilities.get('hfRepo')}",
        }

    def forget_install_state(self) -> None:
        self.access.forget()

    # ------------------------------------------------------------ generation

    def generate(
        self, job: EngineJob, on_image: OnImage, on_progress: OnProgress, cancelled: Cancelled
    ) -> None:
        token = self.access.token()
        problem = self.access.token_problem(token)
        if problem == UNREACHABLE:  # offline for now: the lifecycle asks again later
            raise TransientEngineError(problem)
        if problem:
            raise PermanentEngineError(problem)
        assert token is not None
        repo = str(job.capabilities["hfRepo"])
        task = "image-to-image" if job.reference is not None else "text-to-image"
        route, problem = self.access.route(repo, token, task)
        if route is None:
            if problem == UNREACHABLE:
                raise TransientEngineError(problem)
            raise PermanentEngineError(
                f"{problem} Undelivered images were refunded; try again later or choose "
                "another model."
            )
        self._point_huggingface_hub()
        on_progress(0.0, f"sent to Hugging Face ({route.provider})")
        stop = threading.Event()
        pool = ThreadPoolExecutor(
            # more threads than slots: one prepares a PNG while the next request is out
            max_workers=min(self.concurrency + 1, len(job.variations)),
            thread_name_prefix="lumiku-remote",
        )
        photo = _photo_frame(job)
        futures: dict[Future[storage.PreparedImage | None], Variation] = {
            pool.submit(self._make, self._request(job, route, v, photo), v, token, stop, job): v
            for v in job.variations
        }
        first_error: BaseException | None = None
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(
                    pending, timeout=self.settings.heartbeat_seconds, return_when=FIRST_COMPLETED
                )
                # delivered in the batch's order when several land at once
                for future in sorted(finished, key=lambda f: job.variations.index(futures[f])):
                    if future.cancelled():
                        continue
                    error = future.exception()
                    if error is not None:
                        if first_error is None:
                            first_error = error
                            stop.set()  # no new request; those in flight may still land
                            for other in pending:
                                other.cancel()
                        continue
                    prepared = future.result()
                    if prepared is not None:
                        on_image(futures[future], prepared)
                if cancelled():
                    return  # canceled, past the deadline or stopping: unsent ones stay unsent
        finally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
        if first_error is not None:
            raise first_error

    def _point_huggingface_hub(self) -> None:
        """InferenceClient takes no Hub or router address: it reads huggingface_hub's module
        constants when it calls a provider. Set from our settings, only when they name one."""
        if self._pointed:
            return
        from huggingface_hub import constants

        if self.settings.hf_inference_endpoint:
            constants.INFERENCE_PROXY_TEMPLATE = self.access.router + "/{provider}"
        if self.settings.hf_endpoint:
            constants.ENDPOINT = self.settings.hf_endpoint.rstrip("/")  # its mapping lookups
        self._pointed = True

    def _request(
        self, job: EngineJob, route: Route, variation: Variation, photo: bytes | None
    ) -> _Request:
        caps = job.capabilities
        steps = int(job.options.get("steps") or caps.get("steps", 4))
        guidance = float(caps.get("guidance", 0.0))
        negative = (
            (job.options.get("negativePrompt") or None) if follows_negative_prompt(caps) else None
        )
        arguments: dict[str, Any] = {
            "negative_prompt": negative,
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "seed": variation.seed,
        }
        parameters: dict[str, Any] = {}
        if job.reference is not None:
            parameters.update(job.reference.parameters())
        else:
            arguments.update(width=job.width, height=job.height)
        model = self.access.model_url(route) if route.provider == "hf-inference" else caps["hfRepo"]
        parameters.update(
            {
                "prompt": job.prompt,
                "negative_prompt": negative,
                "seed": variation.seed,
                "steps": steps,
                "guidance": guidance,
                "width": job.width,
                "height": job.height,
                "model": caps["hfRepo"],
                "lumiku_model_key": job.model_key,
                "lumiku_variation": variation.key,
                "lumiku_engine": NAME,
                "lumiku_provider": route.provider,
                "lumiku_provider_model": route.provider_id,
            }
        )
        return _Request(route, model, arguments, photo, parameters)

    def _make(
        self,
        request: _Request,
        variation: Variation,
        token: str,
        stop: threading.Event,
        job: EngineJob,
    ) -> storage.PreparedImage | None:
        """One variation, asked again on transient failures with the lifecycle's backoff (or
        the answer's Retry-After, if longer) while the model's deadline allows; None if the
        batch stopped meanwhile."""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                with self._slots:
                    if stop.is_set():
                        return None
                    image, raw = self._ask(request, token)
                return self._prepared(request, image, raw)  # the slot is free meanwhile
            except _Transient as exc:
                if attempt == attempts:
                    raise TransientEngineError(
                        f"{exc} ({attempts} tries for image {variation.key})"
                    ) from None
                delay = self.settings.retry_backoff_seconds * 2 ** (attempt - 1)
                delay = max(delay, exc.retry_after or 0.0)
                left = job.seconds_left()
                if delay >= left:
                    raise PermanentEngineError(
                        f"{exc}; Hugging Face asked to wait {delay:.0f} s, longer than the "
                        f"{left:.0f} s left before this model's deadline. Undelivered images "
                        "were refunded; try again later."
                    ) from None
                log.info("%s; asking again for %s in %.1f s", exc, variation.key, delay)
                if stop.wait(delay):
                    return None
        return None  # not reached: the last attempt returns or raises

    def _ask(self, request: _Request, token: str) -> tuple[Any, bytes | None]:
        """The request itself: (a PIL image, the raw answer), or _Transient /
        PermanentEngineError."""
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError
        from PIL import UnidentifiedImageError

        client = _Client(provider=request.route.provider, token=token, timeout=self.timeout)
        provider = request.route.provider
        failpoints.hit("engine.remote.request")
        try:
            if request.image is not None:
                image = client.image_to_image(
                    request.image,
                    prompt=str(request.parameters["prompt"]),
                    model=request.model,
                    **{k: v for k, v in request.arguments.items() if v is not None},
                )
            else:
                image = client.text_to_image(
                    str(request.parameters["prompt"]), model=request.model, **request.arguments
                )
            image.load()  # a truncated answer fails here, not later in a thumbnail
            return image, client.last_body
        except InferenceTimeoutError:
            raise _Transient(
                f"Hugging Face ({provider}) did not answer within {self.timeout:.0f} s"
            ) from None
        except HfHubHTTPError as exc:
            raise self._http_error(exc, request, token) from None
        except (UnidentifiedImageError, KeyError, IndexError, ValueError, OSError) as exc:
            if _is_transport_error(exc):
                raise _Transient(
                    f"the connection to Hugging Face ({provider}) failed: "
                    f"{scrub(str(exc), token) or type(exc).__name__}"
                ) from None
            if client.last_body is None:  # refused before sending: a mapping that changed
                raise PermanentEngineError(
                    f"{provider} cannot be asked for this model: {scrub(str(exc), token)}"
                ) from None
            text = scrub(_text_of(client.last_body) or str(exc), token)
            raise PermanentEngineError(
                f"Hugging Face ({provider}) answered with something that is not an image: "
                f"{text}. Undelivered images were refunded."
            ) from None
        except Exception as exc:
            if _is_transport_error(exc):
                raise _Transient(
                    f"the connection to Hugging Face ({provider}) failed: "
                    f"{scrub(str(exc), token) or type(exc).__name__}"
                ) from None
            raise

    def _http_error(
        self, exc: Any, request: _Request, token: str
    ) -> _Transient | PermanentEngineError:
        from huggingface_hub.errors import GatedRepoError

        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        provider = request.route.provider
        repo = request.parameters["model"]
        said = scrub(_server_text(exc), token)
        said_part = f" ({said})" if said else ""
        if isinstance(exc, GatedRepoError) or (
            status == 403 and response.headers.get("X-Error-Code") == "GatedRepo"
        ):
            return PermanentEngineError(
                f"{repo} is a gated model: open https://huggingface.co/{repo} with the account "
                "of your token, accept its licence, then retry. Undelivered images were refunded."
            )
        if status == 401:
            self.access.forget()
            return PermanentEngineError(
                f"Hugging Face did not accept the access token (401). {TOKEN_HELP}"
            )
        if status == 402:
            return PermanentEngineError(
                "Your Hugging Face account has used up its Inference Providers credits (402 "
                "Payment Required): add credits or a PRO plan at huggingface.co/settings/billing, "
                f"then retry. Undelivered images were refunded{said_part}."
            )
        if status == 403:
            self.access.forget()
            return PermanentEngineError(
                "The Hugging Face token may not call Inference Providers (403): give it "
                "'Make calls to Inference Providers' at huggingface.co/settings/tokens, or add "
                f"a 'read' token on the Models page{said_part}."
            )
        if status in TRANSIENT_STATUSES:
            what = {429: "rate limit", 503: "model loading or busy"}.get(status, "server error")
            return _Transient(
                f"Hugging Face ({provider}) answered {status} ({what}){said_part}",
                retry_after=_retry_after(response),
            )
        return PermanentEngineError(
            f"Hugging Face ({provider}) refused the request ({status}){said_part}. Undelivered "
            "images were refunded."
        )

    @staticmethod
    def _prepared(request: _Request, image: Any, raw: bytes | None) -> storage.PreparedImage:
        """The PNG to store: the provider's own PNG with our parameters added (no re-encoding,
        the pixels as sent), or the image encoded anew (a JPEG, a base64 answer)."""
        parameters = {**request.parameters, "width": image.width, "height": image.height}
        if raw is not None and image.format == "PNG" and image.mode in ("RGB", "RGBA"):
            try:
                return storage.prepare_png(add_parameters(raw, parameters), image)
            except ValueError:  # chunks after IEND: encode it again
                pass
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGB")
        return storage.prepare_png(png_with_parameters(image, parameters), image)


def _photo_frame(job: EngineJob) -> bytes | None:
    """What image-to-image sends of the photo: its frame around the face at the job's size, as
    PNG bytes (the hf-inference helper refuses PIL images)."""
    if job.reference is None:
        return None
    frame = reference_image.init_image(job.reference, job.width, job.height)
    out = io.BytesIO()
    frame.save(out, "PNG")
    return out.getvalue()


def _client_class() -> type:
    from huggingface_hub import InferenceClient

    class Client(InferenceClient):
        """InferenceClient that keeps the raw answer: when a provider sends text instead of an
        image, the person sees that text, not "cannot identify image file"."""

        last_body: bytes | None = None

        def _inner_post(self, request_parameters: Any, *, stream: bool = False) -> Any:
            body = super()._inner_post(request_parameters, stream=stream)
            if isinstance(body, bytes):
                self.last_body = body
            return body

    return Client


_CLIENT: type | None = None


def _Client(**kwargs: Any) -> Any:  # noqa: N802 - a class, made on first use
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = _client_class()
    return _CLIENT(**kwargs)


def _is_transport_error(exc: BaseException) -> bool:
    """A dropped or refused connection, a reset: httpx's (httpx2's) TransportError family."""
    return any(kind.__name__ == "TransportError" for kind in type(exc).__mro__) or isinstance(
        exc, ConnectionError
    )


def _retry_after(response: Any) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date, or none: the backoff decides


def _server_text(exc: Any) -> str:
    text = getattr(exc, "server_message", None) or ""
    if not text:
        response = getattr(exc, "response", None)
        try:
            text = response.text if response is not None else ""
        except Exception:  # a streamed body not read
            text = ""
    return " ".join(str(text).split())[:PROVIDER_TEXT_CHARACTERS]


def _text_of(body: bytes | None) -> str:
    if not body:
        return ""
    return " ".join(body[:PROVIDER_TEXT_CHARACTERS].decode("utf-8", "replace").split())
