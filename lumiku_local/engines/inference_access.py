"""Whether, and through which provider, a model can run on Hugging Face Inference Providers.

Two facts, each asked of the Hub through huggingface_hub and kept a while: the token's
permission (`whoami`: a read or write token, or a fine-grained one allowed to call Inference
Providers) and the model's provider mapping (`model_info(expand=["inferenceProviderMapping"])`).
The token itself is read from Hugging Face's own store at each use and kept nowhere else.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Settings

log = logging.getLogger("lumiku.engines.remote")

ROUTER = "https://router.huggingface.co"
KNOWN_SECONDS = 300.0  # a looked-up answer is kept this long
UNKNOWN_SECONDS = 30.0  # a failed lookup (offline, the Hub down) is asked again this soon
LOOKUP_TIMEOUT_SECONDS = 5.0  # a page lists every remote model: offline, it must not hang
# the fine-grained permission "Make calls to Inference Providers"
INFERENCE_PERMISSION = "inference.serverless.write"
TOKEN_HELP = (
    "Add one on the Models page (from huggingface.co/settings/tokens: a 'read' token, or a "
    "fine-grained one with 'Make calls to Inference Providers')."
)


@dataclass(frozen=True)
class Route:
    """Who runs a model: the provider, the model's id there, and the task it serves."""

    provider: str
    provider_id: str
    task: str  # "text-to-image" or "image-to-image"


@dataclass(frozen=True)
class Lookup:
    """What the Hub said of a model (`routes`, live ones first as mapped), or why we do not
    know (`problem`: the Hub unreachable, the model unknown)."""

    routes: tuple[Route, ...] = ()
    problem: str | None = None


class InferenceAccess:
    """The cached answers of the Hub for one app (settings: the Hub's and the router's address,
    the provider policy)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.endpoint = settings.hf_endpoint.rstrip("/") or None
        self.router = (settings.hf_inference_endpoint or ROUTER).rstrip("/")
        self.policy = settings.hf_inference_provider.strip()
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, str | None]] = {}  # sha256 of token -> problem
        self._lookups: dict[str, tuple[float, Lookup]] = {}  # repo -> lookup

    # ------------------------------------------------------------ the token

    @staticmethod
    def token() -> str | None:
        from huggingface_hub import get_token

        return get_token()

    def token_problem(self, token: str | None) -> str | None:
        """None when `token` may call Inference Providers; else what to do about it."""
        if not token:
            return "Remote models need a Hugging Face access token. " + TOKEN_HELP
        if not _sendable(token):  # httpx would refuse it, quoting the header in its error
            return (
                "The Hugging Face access token has a character no token has (a space, a line "
                "break or a control character): copy it again. " + TOKEN_HELP
            )
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            known = self._tokens.get(key)
        if known is not None and self._clock() < known[0]:
            return known[1]
        problem, keep = self._check_token(token)
        with self._lock:
            self._tokens[key] = (self._clock() + keep, problem)
        return problem

    def _check_token(self, token: str) -> tuple[str | None, float]:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        try:
            me = HfApi(endpoint=self.endpoint, library_name="lumiku-local").whoami(token=token)
        except HfHubHTTPError as exc:
            if getattr(exc.response, "status_code", None) in (401, 403):
                return "Hugging Face did not accept the access token. " + TOKEN_HELP, KNOWN_SECONDS
            return _unreachable(), UNKNOWN_SECONDS
        except Exception as exc:  # offline, DNS, TLS: httpx errors are not OSErrors
            # no traceback: an httpx error may quote the request's headers, the token among them
            log.debug("whoami failed: %s: %s", type(exc).__name__, scrub(str(exc), token))
            return _unreachable(), UNKNOWN_SECONDS
        return _permission_problem(me), KNOWN_SECONDS

    # ------------------------------------------------------------ the mapping

    def lookup(self, repo: str, token: str | None) -> Lookup:
        with self._lock:
            known = self._lookups.get(repo)
        if known is not None and self._clock() < known[0]:
            return known[1]
        found = self._look_up(repo, token)
        keep = UNKNOWN_SECONDS if found.problem else KNOWN_SECONDS
        with self._lock:
            self._lookups[repo] = (self._clock() + keep, found)
        return found

    def _look_up(self, repo: str, token: str | None) -> Lookup:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        api = HfApi(endpoint=self.endpoint, library_name="lumiku-local")
        try:
            info = api.model_info(
                repo,
                expand=["inferenceProviderMapping"],
                token=token or False,
                timeout=LOOKUP_TIMEOUT_SECONDS,
            )
        except RepositoryNotFoundError:
            return Lookup(problem=f"Hugging Face does not know the model {repo}.")
        except HfHubHTTPError:
            return Lookup(problem=_unreachable())
        except Exception as exc:
            log.debug(
                "provider mapping of %s failed: %s: %s",
                repo,
                type(exc).__name__,
                scrub(str(exc), token or ""),
            )
            return Lookup(problem=_unreachable())
        routes = tuple(
            Route(str(entry.provider), str(entry.provider_id), str(entry.task))
            for entry in info.inference_provider_mapping or []
            if entry.status == "live" and _client_knows(str(entry.provider), str(entry.task))
        )
        return Lookup(routes=routes)

    def route(self, repo: str, token: str | None, task: str) -> tuple[Route | None, str | None]:
        """(the route for `task`, None) per the provider policy, or (None, why there is none)."""
        found = self.lookup(repo, token)
        if found.problem:
            return None, found.problem
        fitting = [route for route in found.routes if route.task == task]
        if self.policy != "auto":
            fitting = [route for route in fitting if route.provider == self.policy]
        if fitting:
            return fitting[0], None
        what = "starts from a photo" if task == "image-to-image" else "makes images from text"
        if self.policy != "auto":
            return None, (
                f"The provider {self.policy} (the hf_inference_provider setting) does not "
                f"serve {repo} in a way that {what} right now. Set hf_inference_provider to "
                "auto to use any provider that does."
            )
        return None, f"No Inference Provider serves {repo} in a way that {what} right now."

    def forget(self) -> None:
        """Ask again at the next use (a token saved or removed)."""
        with self._lock:
            self._tokens.clear()
            self._lookups.clear()

    def model_url(self, route: Route) -> str:
        """hf-inference's address for a model: given to InferenceClient as the model, since the
        client fixes that provider's own base URL when it is first imported."""
        return f"{self.router}/hf-inference/models/{route.provider_id}"


UNREACHABLE = (
    "Hugging Face cannot be reached: remote models need the internet. Connect and try "
    "again, or choose a model that runs on this computer."
)


def _unreachable() -> str:
    return UNREACHABLE


def scrub(text: str, token: str) -> str:
    """Never the token in a message or a log line: as it is, and as a repr quotes it (httpx's
    "Illegal header value b'Bearer ...'"); some servers echo the Authorization header back."""
    if not token:
        return text
    for form in {token, repr(token)[1:-1], repr(token.encode("utf-8", "replace"))[2:-1]}:
        text = text.replace(form, "hf_***")
    return text


def _sendable(token: str) -> bool:
    """Whether the token can travel in an HTTP header: printable ASCII, no spaces."""
    return token.isascii() and token.isprintable() and not any(c.isspace() for c in token)


def _permission_problem(me: dict[str, Any]) -> str | None:
    """Whether whoami's token may call Inference Providers: read and write tokens may;
    fine-grained ones need the permission. Shapes we do not know are let through (the
    provider's answer says the rest)."""
    token = ((me.get("auth") or {}).get("accessToken")) or {}
    if token.get("role") != "fineGrained":
        return None
    granted = (token.get("fineGrained") or {}).get("global") or []
    if INFERENCE_PERMISSION in granted:
        return None
    return (
        "The Hugging Face token may not call Inference Providers: edit it at "
        "huggingface.co/settings/tokens and tick 'Make calls to Inference Providers', or add "
        "a 'read' token on the Models page."
    )


def _client_knows(provider: str, task: str) -> bool:
    """Whether this huggingface_hub's InferenceClient can call `provider` for `task`."""
    try:
        from huggingface_hub.inference._providers import PROVIDERS  # no public list of them
    except ImportError:  # a layout we do not know: let the provider's answer decide
        return True
    return task in PROVIDERS.get(provider, {})  # type: ignore[call-overload]
