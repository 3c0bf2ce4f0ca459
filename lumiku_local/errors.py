"""Domain errors: each carries the HTTP status, a stable code and a message a person can act on."""

from __future__ import annotations


class LumikuError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidInput(LumikuError):
    status_code = 422
    code = "invalid_input"


class NotFound(LumikuError):
    status_code = 404
    code = "not_found"


class Conflict(LumikuError):
    status_code = 409
    code = "conflict"


class InsufficientCredits(LumikuError):
    status_code = 402
    code = "insufficient_credits"


class ServiceUnavailable(LumikuError):
    status_code = 503
    code = "unavailable"


class PayloadTooLarge(LumikuError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMedia(LumikuError):
    status_code = 415
    code = "unsupported_media_type"


class DatabaseBusy(LumikuError):
    """Another program holds the database's write lock for longer than we wait."""

    status_code = 503
    code = "database_busy"


class DiskFull(LumikuError):
    status_code = 507
    code = "disk_full"


class DataFolderUnwritable(LumikuError):
    status_code = 503
    code = "data_folder_unwritable"
