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
ranks, :mod:`.library` ties them together.
"""

from .library import Library
from .records import IndexReport, Match, SearchFilters

__all__ = ["IndexReport", "Library", "Match", "SearchFilters"]
