"""Content-addressed results: single model answers, and whole results built on them.

A key is any JSON-able value (backend fingerprint, recipe version, prompt, image
content hashes, generation parameters; or everything a page's block asks for);
its SHA-256 names a JSON file.  Entries are written atomically (temp file +
rename), so a crash never leaves half an entry, with the mode the umask gives new
files; a corrupt entry is reported once, ignored and recomputed.  A cache that is
committed (the MkDocs plugin's finished blocks) marks the entries a build used and
prunes the others at its end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("xcomposer.cache")
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def cache_key(key: Any) -> str:
    """The hex digest that names ``key``'s entry."""
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file gets the mode any new file gets (0666 less the umask), as ``open()`` would
    give it: the temporary file is created with that mode, then renamed over ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ResultCache:
    """A folder of JSON entries, two-level fan-out by digest."""

    def __init__(self, directory: Path | str, readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.readonly = readonly
        self.hits = 0
        self.misses = 0
        self._reported: set[str] = set()
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def path_for(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.json"

    def get(self, key: Any) -> Any | None:
        """The stored value for ``key``, or ``None``."""
        digest = cache_key(key)
        path = self.path_for(digest)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            value = entry["value"]
        except FileNotFoundError:
            with self._lock:
                self.misses += 1
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            with self._lock:
                self.misses += 1
                first = digest not in self._reported
                self._reported.add(digest)
            if first:
                log.warning("cache entry %s is corrupt (%s); recomputing it", path, err)
            return None
        with self._lock:
            self.hits += 1
        return value

    def put(self, key: Any, value: Any) -> None:
        """Store ``value`` (JSON-able) under ``key``."""
        if self.readonly:
            return
        digest = cache_key(key)
        entry = {"key": key, "value": value}
        data = json.dumps(entry, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
        write_atomic(self.path_for(digest), data)

    # -- committed caches: keep what was used ---------------------------------------------
    def mark_used(self, key: Any) -> None:
        """``key``'s entry was used by this run: :meth:`prune` keeps it."""
        with self._lock:
            self._used.add(cache_key(key))

    def reset_used(self) -> None:
        with self._lock:
            self._used = set()

    def prune(self) -> list[Path]:
        """Remove the entries this run did not use (:meth:`mark_used`); the removed paths."""
        if self.readonly or not self.directory.is_dir():
            return []
        with self._lock:
            used = set(self._used)
        removed = []
        for folder in self.directory.iterdir():
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for path in folder.glob("*.json"):
                if len(path.stem) == 64 and path.stem not in used:
                    path.unlink(missing_ok=True)
                    removed.append(path)
            if not any(folder.iterdir()):
                folder.rmdir()
        return removed
