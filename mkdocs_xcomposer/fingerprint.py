"""Content fingerprints of image folders, for cache keys, without opening the library.

A block's result depends on every image it could have chosen and on what the
folder says about them, so the fingerprint covers, by relative path and SHA-256,
every file under the folder except Markdown pages and hidden files: the images,
their sidecars (``NAME.txt``; ``NAME.md`` counts when an image shares its name),
each folder's ``captions.yml``.  Hashes are remembered by (path, size, mtime), so
a rebuild re-reads only files that changed; no model, no index and not even the
engine is needed (a cached build stays cheap).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from xcomposer import file_sha256  # loads only xcomposer.images (the package is lazy)

PAGE_SUFFIXES = {".md", ".markdown", ".mdown"}


class Fingerprints:
    """Remembers file hashes across builds (one instance lives as long as the plugin)."""

    def __init__(self) -> None:
        self._hashes: dict[str, tuple[int, int, str]] = {}
        self._folders: dict[Path, str] = {}
        self._lock = threading.Lock()

    def begin_build(self) -> None:
        """Forget folder digests (files may have changed); file hashes stay, checked by stat."""
        with self._lock:
            self._folders = {}

    def file(self, path: Path) -> str:
        """The SHA-256 of one file, re-read only when its size or mtime changed."""
        st = path.stat()
        key = str(path)
        with self._lock:
            known = self._hashes.get(key)
        if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
            return known[2]
        digest = file_sha256(path)
        with self._lock:
            self._hashes[key] = (st.st_size, st.st_mtime_ns, digest)
        return digest

    def folder(self, root: Path) -> str:
        """One digest over the images under ``root`` and what describes them (once per build)."""
        with self._lock:
            known = self._folders.get(root)
        if known is not None:
            return known
        digest = hashlib.sha256()
        for rel, path in sorted(_walk(root)):
            digest.update(rel.encode("utf-8") + b"\0" + self.file(path).encode("ascii") + b"\n")
        found = digest.hexdigest()
        with self._lock:
            self._folders[root] = found
        return found

    def folders(self, roots: tuple[Path, ...]) -> str:
        digest = hashlib.sha256()
        for root in roots:
            digest.update(self.folder(root).encode("ascii"))
        return digest.hexdigest()


def _walk(root: Path) -> list[tuple[str, Path]]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        names = [n for n in files if not n.startswith(".")]
        stems = {os.path.splitext(n)[0] for n in names if _suffix(n) not in PAGE_SUFFIXES}
        for name in names:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in PAGE_SUFFIXES and stem not in stems:
                continue  # a page, not a description of an image
            path = Path(folder) / name
            found.append((path.relative_to(root).as_posix(), path))
    return found


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()
