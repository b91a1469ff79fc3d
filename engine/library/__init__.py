"""The writer's own images: a persistent, incremental index and text search over it.

.. code-block:: python

    from xcomposer.library import Library, SearchFilters

    lib = Library.open(["docs/images"])
    print(lib.update())                      # added / updated / removed / skipped, with reasons
    for match in lib.search("a cat on a sofa", k=4):
        print(match.score, match.path, match.matched)

Modules: :mod:`.scan` walks roots safely, :mod:`.sources` and :mod:`.docs_refs`
gather descriptions, :mod:`.ocr` reads text in images, :mod:`.embeddings`
embeds, :mod:`.index` stores, :mod:`.indexer` runs an update, :mod:`.search`
ranks, :mod:`.library` ties them together; :mod:`.fingerprint` digests what the
library reads, from the same scan.

Names load on first use, so ``library_fingerprint`` costs no index or numpy import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULE_OF = {
    "Library": "library",
    "IndexReport": "records",
    "Match": "records",
    "SearchFilters": "records",
    "library_fingerprint": "fingerprint",
}

if TYPE_CHECKING:
    from .fingerprint import library_fingerprint
    from .library import Library
    from .records import IndexReport, Match, SearchFilters


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'xcomposer.library' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["IndexReport", "Library", "Match", "SearchFilters", "library_fingerprint"]
