"""The engine's errors in HTTP terms: what a person can fix is a 4xx with a one-line message."""

from __future__ import annotations

import xcomposer as xc

#: What the server cannot do as configured (no model, no server, frozen cache): 422.
UNPROCESSABLE = (xc.ConfigError, xc.ModelError, xc.BackendError, xc.CacheMissError)


class PathError(xc.InputError):
    """A path in a request that is not allowed (``status`` 400) or not there (404)."""

    def __init__(self, what: str, fix: str | None = None, status: int = 400) -> None:
        super().__init__(what, fix)
        self.status = status


def http_status(err: xc.XComposerError) -> int:
    """400 for bad input and bad images, 404 for missing files, 413 for oversize, 422 otherwise."""
    if isinstance(err, PathError):
        return err.status
    if isinstance(err, xc.TooLargeError):
        return 413
    if isinstance(err, xc.ImageError):
        return 404 if "not found" in err.what else 400
    return 422 if isinstance(err, UNPROCESSABLE) else 400
