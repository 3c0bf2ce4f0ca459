"""Settings a person changes from the app: the Hugging Face access token for gated models."""

from __future__ import annotations

from typing import Any

from litestar import delete, get, post
from litestar.datastructures import State
from litestar.params import JSONBody

from .. import hf_token
from . import blocking
from .answers import change_errors
from .strict_input import Body


class TokenBody(Body):
    token: str


@get("/api/settings/hf-token", tags=["settings"])
@blocking
def token_status() -> dict[str, Any]:
    """Whether a token is configured and where it comes from; the token itself never leaves."""
    return hf_token.status()


@post("/api/settings/hf-token", tags=["settings"], status_code=200, responses=change_errors(422))
@blocking
def save_token(state: State, data: JSONBody[TokenBody]) -> dict[str, Any]:
    """Check the token with Hugging Face and store it in Hugging Face's own token store."""
    hf_token.save(data.token, endpoint=state.runtime.settings.hf_endpoint or None)
    return hf_token.status()


@delete("/api/settings/hf-token", tags=["settings"], responses=change_errors())
@blocking
def remove_token() -> None:
    hf_token.remove()


routes = [token_status, save_token, remove_token]
