"""Content fingerprints of image folders, for cache keys, without opening the library.

A block's result depends on every image it could have chosen and on what the
folder says about them, so a folder's fingerprint is the engine's
``library_fingerprint``: taken from the library's own scan, it covers every
file the library reads for an image (the image, ``NAME.txt``/``NAME.md``/
``NAME.png.md`` sidecars, the folder's captions file) with the library's
symlink policy.  Hashes are remembered by (path, size, mtime), so a rebuild
re-reads only files that changed; no model and no index is needed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from xcomposer import file_sha256, library_fingerprint  # the package is lazy: no pydantic


class Fingerprints:
    """Remembers file hashes across builds (one instance lives as long as the plugin)."""

    def __init__(self) -> None:
        self._hashes: dict[str, tuple[int, int, str]] = {}
        self._folders: dict[tuple[Path, str], str] = {}
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

    def folder(self, root: Path, reads: dict[str, Any] | None = None) -> str:
        """One digest over the images under ``root`` and what describes them (once per build).

        ``reads``: the library settings that decide which files it reads for an image
        (``docs_dir``, ``follow_symlinks_out``), as the engine's library has them.
        """
        key = (root, json.dumps(reads or {}, sort_keys=True))
        with self._lock:
            known = self._folders.get(key)
        if known is not None:
            return known
        found = library_fingerprint([root], SimpleNamespace(**(reads or {})))
        with self._lock:
            self._folders[key] = found
        return found

    def folders(self, roots: tuple[Path, ...], reads: dict[str, Any] | None = None) -> str:
        digest = hashlib.sha256()
        for root in roots:
            digest.update(self.folder(root, reads).encode("ascii"))
        return digest.hexdigest()
