"""The error answers each route can give, for the OpenAPI document, in the shape the app sends.

A route lists its statuses (`responses=errors(404, 409)`); what each status means and what its
body looks like is written once, here. Every route documents 400 (Litestar documents one for any
route with parameters, in its own shape, which is not ours), and `CHANGES` are the failures every
change can meet.
"""

from __future__ import annotations

import msgspec
from litestar.openapi import ResponseSpec


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every error: a stable `code` for programs and a `message` that says what to do."""

    error: ErrorDetail


MEANINGS = {
    400: "The request is malformed: a field has the wrong type, is unknown or is missing, or the "
    "body is not JSON; the message names the field (`invalid_input`).",
    402: "Not enough credits for this request; nothing was charged (`insufficient_credits`).",
    403: "A change that did not come from Lumiku's own pages (`cross_origin`).",
    404: "Nothing has that id, or it was deleted (`not_found`).",
    409: "The request conflicts with the current state: a finished generation, a model that is "
    "not installed or is busy (the code says which).",
    413: "The upload is larger than the upload limit in bytes or pixels (`payload_too_large`).",
    415: "The upload is not a PNG, JPEG or WebP image (`unsupported_media_type`).",
    422: "A value is not allowed: out of range, empty or unknown; the message says which and why.",
    503: "Lumiku cannot do this now: another program holds its database (`database_busy`), its "
    "data folder is not writable (`data_folder_unwritable`), or no model or service is "
    "available (the message says what to do). Nothing was saved.",
    507: "The disk holding Lumiku's data folder is full (`disk_full`). Nothing was saved.",
}

CHANGES = (403, 503, 507)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The documented error answers for these statuses, and 400."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody, description=MEANINGS[status], generate_examples=False
        )
        for status in sorted({400, *statuses})
    }


def change_errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The documented error answers of a route that changes something."""
    return errors(*statuses, *CHANGES)
