"""Finished blocks, keyed by everything that goes into them: the reproducible part of a build.

Layout of ``cache_dir`` (beside mkdocs.yml)::

    blocks/ab/ab12....json   one finished block or alt text (commit this folder)
    answers/                 the engine's cache of single model answers (local speed-up)
    index/                   the image library's index (local)
    .gitignore               leaves answers/ and index/ out of git

An entry's name is the SHA-256 of the block's inputs (instruction or text,
options, the image folders' content fingerprint, the engine's settings and
recipe versions); the entry also records the model fingerprint that produced it,
checked whenever the model is there to be fingerprinted.  Entries are written
atomically (temp file + rename): a failed block never leaves half an entry, and
a corrupt entry is reported and treated as missing.  Entries that no page used
in a full build are removed at its end.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger(__name__)

FORMAT = 1
GITIGNORE = (
    "# Written by the xcomposer MkDocs plugin: commit blocks/, the rest is local.\n"
    "answers/\nindex/\n"
)
_ENTRY = re.compile(r"^[0-9a-f]{64}\.json$")


class BlockCache:
    """A folder of finished blocks; thread-safe."""

    def __init__(self, directory: Path, readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.blocks = self.directory / "blocks"
        self.readonly = readonly
        self.used: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def digest(inputs: dict[str, Any]) -> str:
        """The SHA-256 of the inputs as canonical JSON: the entry's name."""
        blob = json.dumps(
            {"format": FORMAT, **inputs},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def path_for(self, digest: str) -> Path:
        return self.blocks / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> dict[str, Any] | None:
        """The entry stored under ``digest``, or ``None`` (missing or unreadable)."""
        path = self.path_for(digest)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("cache entry %s is unreadable (%s); it will be composed again", path, err)
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or "result" not in entry:
            log.warning("cache entry %s has an unknown format; it will be composed again", path)
            return None
        return entry

    def put(self, digest: str, inputs: dict[str, Any], models: Any, result: Any) -> None:
        """Store a finished result (atomically; a crash leaves the old entry or none)."""
        if self.readonly:
            return
        from xcomposer import write_atomic  # only when composing: the engine is loaded then

        entry = {"format": FORMAT, "inputs": inputs, "models": models, "result": result}
        data = json.dumps(entry, ensure_ascii=False, sort_keys=True, indent=1) + "\n"
        self.ensure_layout()
        write_atomic(self.path_for(digest), data.encode("utf-8"))

    def mark_used(self, digest: str) -> None:
        with self._lock:
            self.used.add(digest)

    def reset_used(self) -> None:
        with self._lock:
            self.used = set()

    def ensure_layout(self) -> None:
        self.blocks.mkdir(parents=True, exist_ok=True)
        ignore = self.directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text(GITIGNORE, encoding="utf-8")

    def prune(self) -> list[Path]:
        """Remove the entries that no block of this build used."""
        if self.readonly or not self.blocks.is_dir():
            return []
        with self._lock:
            used = set(self.used)
        removed = []
        for folder in self.blocks.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if _ENTRY.match(path.name) and path.stem not in used:
                    path.unlink(missing_ok=True)
                    removed.append(path)
            if not any(folder.iterdir()):
                folder.rmdir()
        return removed
