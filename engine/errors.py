"""The one exception family for problems a user can fix.

Every message is one line: what is wrong (naming the file, option or value) and
how to fix it.  Adapters map these to their idiom (MkDocs ``PluginError`` with
``page.md:LINE``, an HTTP 4xx with a JSON body, a CLI line on stderr with exit
code 2).  Anything else that escapes the engine is a bug and keeps its traceback.
"""

from __future__ import annotations


class XComposerError(Exception):
    """A problem the user can fix: ``str(err)`` is ``"<what>; <fix>"`` on one line."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = " ".join(str(what).split())
        self.fix = " ".join(str(fix).split()) if fix else None
        super().__init__(f"{self.what}; {self.fix}" if self.fix else self.what)


class ConfigError(XComposerError):
    """A bad option or configuration file."""


class InputError(XComposerError):
    """A bad argument: an empty instruction, a missing folder, an out-of-range index."""


class TooLargeError(InputError):
    """An input over a size limit: a text longer than the model's context, a body or upload."""


class ImageError(XComposerError):
    """An image that cannot be used: missing, truncated, not an image, too large."""


class ModelError(XComposerError):
    """A model that cannot be loaded: missing, corrupt, mismatched projector, runtime absent."""


class BackendError(XComposerError):
    """A backend that failed at run time: a server unreachable or answering errors."""


class CacheMissError(XComposerError):
    """A result that frozen mode needed from the cache and did not find."""
