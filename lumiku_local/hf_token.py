"""The Hugging Face access token, kept in Hugging Face's own store, never in Lumiku's files or logs.

Lumiku reads it through `huggingface_hub` (HF_TOKEN, or the token file `hf auth login` writes),
so a token set up for other Hugging Face tools works here too, and the other way round.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import InvalidInput, ServiceUnavailable

_TOKEN_SHAPE = re.compile(r"^hf_[A-Za-z0-9]{8,}$")


def status() -> dict[str, Any]:
    from huggingface_hub import constants, get_token

    token = get_token()
    if token is None:
        return {"configured": False, "source": None}
    source = "environment" if os.environ.get("HF_TOKEN") else "huggingface"
    return {"configured": True, "source": source, "tokenFile": str(constants.HF_TOKEN_PATH)}


def save(token: str, endpoint: str | None = None) -> None:
    """Check the token with the Hub, then store it where every Hugging Face tool finds it."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    token = token.strip()
    if not _TOKEN_SHAPE.match(token):
        raise InvalidInput(
            "That does not look like a Hugging Face access token (they start with hf_). "
            "Create one at huggingface.co/settings/tokens with 'read' access."
        )
    try:
        HfApi(endpoint=endpoint or None).whoami(token=token)
    except HfHubHTTPError as exc:
        status_code = getattr(exc.response, "status_code", None)
        if status_code in (401, 403):
            raise InvalidInput(
                "Hugging Face did not accept this token. Check that you copied all of it."
            ) from None
        raise ServiceUnavailable(
            "Could not check the token with Hugging Face right now; try again later."
        ) from None
    except Exception:  # connection refused, timeouts, TLS: httpx errors are not OSErrors
        raise ServiceUnavailable(
            "Hugging Face cannot be reached to check the token. Connect to the internet "
            "and try again."
        ) from None
    path = Path(constants.HF_TOKEN_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token)


def remove() -> None:
    from huggingface_hub import constants

    Path(constants.HF_TOKEN_PATH).unlink(missing_ok=True)
