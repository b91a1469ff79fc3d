"""The engine's errors in HTTP terms: what a person can fix is a 4xx with a one-line message."""

from __future__ import annotations

from xcomposer import (
    BackendError,
    CacheMissError,
    ConfigError,
    ImageError,
    InputError,
    ModelError,
    TooLargeError,
    XComposerError,
)


class PathError(InputError):
    """A path in a request that is not allowed (``status`` 400) or not there (404)."""

    def __init__(self, what: str, fix: str | None = None, status: int = 400) -> None:
        super().__init__(what, fix)
        self.status = status


def http_status(err: XComposerError) -> int:
    """400 for bad input and bad images, 404 for missing files, 413 for oversize, 422 otherwise."""
    if isinstance(err, PathError):
        return err.status
    if isinstance(err, TooLargeError):
        return 413
    if isinstance(err, ImageError):
        return 404 if "not found" in err.what else 400
    if isinstance(err, InputError):
        return 400
    if isinstance(err, (ConfigError, ModelError, BackendError, CacheMissError)):
        return 422
    return 400
