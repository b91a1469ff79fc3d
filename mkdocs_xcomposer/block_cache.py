"""Finished blocks, keyed by everything that goes into them: the reproducible part of a build.

Layout of ``cache_dir`` (beside mkdocs.yml)::

    blocks/ab/ab12....json   one finished block or alt text (commit this folder)
    answers/                 the engine's cache of single model answers (local speed-up)
    index/                   the image library's index (local)
    .gitignore               leaves answers/ and index/ out of git

``blocks/`` is an engine ``ResultCache``: an entry's name is the SHA-256 of the
block's inputs (instruction or text, options, the image folders' content
fingerprint, the engine's identity); its value is the result and the model
fingerprint that produced it, checked whenever the model is there to be
fingerprinted.  Entries that no page used in a full build are pruned at its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xcomposer import ResultCache, cache_key  # the package is lazy: no pydantic

FORMAT = 2
GITIGNORE = (
    "# Written by the xcomposer MkDocs plugin: commit blocks/, the rest is local.\n"
    "answers/\nindex/\n"
)


class BlockCache(ResultCache):
    """The ``blocks/`` folder of a cache dir; entries named by :meth:`digest`; thread-safe."""

    def __init__(self, cache_dir: Path, readonly: bool = False) -> None:
        self.cache_dir = Path(cache_dir)
        self.blocks = self.cache_dir / "blocks"
        super().__init__(self.blocks, readonly)

    @staticmethod
    def digest(inputs: dict[str, Any]) -> str:
        """The name of the entry for ``inputs``: the SHA-256 of them as canonical JSON."""
        return cache_key(BlockCache.key(inputs))

    @staticmethod
    def key(inputs: dict[str, Any]) -> dict[str, Any]:
        return {"format": FORMAT, **inputs}

    def ensure_layout(self) -> None:
        self.blocks.mkdir(parents=True, exist_ok=True)
        ignore = self.cache_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text(GITIGNORE, encoding="utf-8")

    def put(self, key: Any, value: Any) -> None:
        self.ensure_layout()
        super().put(key, value)
