"""Paths in requests: confined to the Jupyter server's root, resolved through its contents manager.

A request names files the way the contents API does: relative to the server's
root, with ``/`` separators.  Refused: absolute paths, ``..``, backslashes and
drive letters (400), hidden files unless the contents manager allows them, and
anything whose real path (symlinks resolved) leaves the root (403).  Images
found by the engine are returned the same way, relative to the root.

The in-kernel fallback uses :class:`LocalPaths` instead: the kernel already runs
as the person, so its paths are plain paths relative to the kernel's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from jupyter_core.utils import ensure_async

from .errors import PathError

_DRIVE = re.compile(r"^[A-Za-z]:")


class Paths(Protocol):
    """How an adapter turns request paths into files and engine paths back into names."""

    async def file(self, path: str) -> Path: ...

    async def folder(self, path: str) -> Path: ...

    def figure_in(self, path: str) -> Path: ...

    def display(self, path: str | Path) -> str: ...


def _clean_api_path(path: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise PathError("the path is empty", "give a path relative to the Jupyter root")
    if "\x00" in path or "\\" in path or _DRIVE.match(path) or path.startswith(("/", "~")):
        raise PathError(
            f"path '{path}' is absolute or not a plain relative path",
            "give a path relative to the Jupyter root, with / separators",
        )
    parts = PurePosixPath(path).parts
    if ".." in parts:
        raise PathError(f"path '{path}' contains '..'", "give a path inside the Jupyter root")
    return "/".join(p for p in parts if p not in ("", "."))


class RootPaths:
    """Paths under the server's root, checked with its contents manager."""

    def __init__(self, contents_manager: Any, trusted_roots: Sequence[str | Path] = ()) -> None:
        self.cm = contents_manager
        self.root = Path(os.path.realpath(contents_manager.root_dir))
        # Folders the server's own configuration names (library roots): figures the
        # engine found there may come back in an article even when outside the root.
        self.trusted = [Path(os.path.realpath(p)) for p in trusted_roots]

    def _inside(self, real: Path, roots: Sequence[Path]) -> bool:
        return any(real == r or real.is_relative_to(r) for r in roots)

    async def _resolve(self, path: str, kind: str) -> Path:
        api_path = _clean_api_path(path)
        real = Path(os.path.realpath(self.root / api_path))
        if not self._inside(real, [self.root]):
            raise PathError(
                f"path '{path}' leads outside the Jupyter root (through a symlink)",
                "give a path whose real location is inside the Jupyter root",
                status=403,
            )
        exists = self.cm.file_exists if kind == "file" else self.cm.dir_exists
        if not await ensure_async(exists(api_path)):
            raise PathError(
                f"{kind} '{path}' not found under the Jupyter root", "check the path", status=404
            )
        if not getattr(self.cm, "allow_hidden", False) and await ensure_async(
            self.cm.is_hidden(api_path)
        ):
            raise PathError(
                f"{kind} '{path}' is hidden",
                "use a visible file, or start Jupyter with --ContentsManager.allow_hidden=True",
                status=404,
            )
        return real

    async def file(self, path: str) -> Path:
        return await self._resolve(path, "file")

    async def folder(self, path: str) -> Path:
        return await self._resolve(path, "directory")

    def figure_in(self, path: str) -> Path:
        """A figure's image in an article sent back by a client: under the root or a library root."""
        if isinstance(path, str) and os.path.isabs(path):
            real = Path(os.path.realpath(path))
            if self._inside(real, self.trusted):
                return real
            raise PathError(
                f"figure image '{path}' is outside the Jupyter root and the configured libraries",
                "send the article's figures as returned by the server",
                status=403,
            )
        real = Path(os.path.realpath(self.root / _clean_api_path(path)))
        if not self._inside(real, [self.root, *self.trusted]):
            raise PathError(
                f"figure image '{path}' leads outside the Jupyter root",
                "send the article's figures as returned by the server",
                status=403,
            )
        return real

    def display(self, path: str | Path) -> str:
        """Relative to the root where possible; a configured library outside it stays absolute."""
        real = Path(os.path.realpath(path))
        if self._inside(real, [self.root]):
            return real.relative_to(self.root).as_posix()
        return str(real)


class LocalPaths:
    """Plain paths for the in-kernel engine, relative to the kernel's working folder."""

    def __init__(self, base: str | Path | None = None) -> None:
        self.base = Path(base or os.getcwd()).resolve()

    def _path(self, path: str) -> Path:
        if not isinstance(path, str) or not path.strip():
            raise PathError("the path is empty", "give a file or folder path")
        return (self.base / Path(path).expanduser()).resolve()

    async def file(self, path: str) -> Path:
        real = self._path(path)
        if not real.is_file():
            raise PathError(f"file '{path}' not found", "check the path", status=404)
        return real

    async def folder(self, path: str) -> Path:
        real = self._path(path)
        if not real.is_dir():
            raise PathError(f"directory '{path}' not found", "check the path", status=404)
        return real

    def figure_in(self, path: str) -> Path:
        return self._path(path)

    def display(self, path: str | Path) -> str:
        real = Path(path).resolve()
        return (
            real.relative_to(self.base).as_posix() if real.is_relative_to(self.base) else str(real)
        )
