"""The text vectors of index rows during one indexing run.

Each distinct text is embedded once per run (a lone source is its own
description; file-name words such as "cat (in travel / set)" repeat across a
library), and a batch's texts are embedded in a background thread while the
indexer reads, hashes and decodes the next batch: in a profile of 1,000
captioned images on the 2-core machine the two took about as long as each
other (4.2 and 3.6 s), and each waited for the other.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .embeddings import TextEmbedder

#: Texts whose vectors one run remembers.
MEMO_TEXTS = 100_000

Entry = tuple[str, list]  # (description, [(source, text), ...])
RowFields = dict[str, Any]


def text_key(text: str) -> str:
    """Texts that embed alike: the same words, whatever the closing full stop."""
    return " ".join(text.split()).rstrip(". ")


class RowVectors:
    """``text_vec`` (the description) and ``source_vecs`` (each source) for index rows.

    :meth:`start` submits a batch and returns a function that waits for its
    fields; call those functions in the order the batches were started.
    """

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}
        self._in_flight: set[str] = set()
        self._open: dict[int, list[list[str]]] = {}  # batches started, not finished: their keys
        self._started = 0
        self._thread: ThreadPoolExecutor | None = None

    def start(self, entries: list[Entry], background: bool = True) -> Callable[[], list[RowFields]]:
        todo: dict[str, str] = {}
        plan = []
        for description, sources in entries:
            texts = [description, *(t for _, t in sources)]
            keys = [text_key(t) for t in texts]
            for key, text in zip(keys, texts, strict=True):
                if key not in self._vectors and key not in self._in_flight and key not in todo:
                    todo[key] = text
            plan.append(keys)
        future: Future | None = None
        if todo and background:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="xcomposer-index-embed")
            future = self._thread.submit(self.embedder.embed, list(todo.values()))
        elif todo:
            future = Future()
            future.set_result(self.embedder.embed(list(todo.values())))
        self._in_flight.update(todo)
        self._started += 1
        number = self._started
        self._open[number] = plan

        def finish() -> list[RowFields]:
            if future is not None:
                try:
                    self._vectors.update(zip(todo, future.result(), strict=True))
                finally:
                    self._in_flight.difference_update(todo)
            out = [self._fields(keys) for keys in plan]
            del self._open[number]
            if len(self._vectors) > MEMO_TEXTS:  # forget all but what started batches need
                needed = {k for keys in self._open.values() for row in keys for k in row}
                self._vectors = {k: v for k, v in self._vectors.items() if k in needed}
            return out

        return finish

    def now(self, entries: list[Entry]) -> list[RowFields]:
        """The fields of ``entries``, embedded in this thread."""
        return self.start(entries, background=False)()

    def _fields(self, keys: list[str]) -> RowFields:
        rows = np.stack([self._vectors[k] for k in keys])
        return {
            "text_vec": rows[0].astype(np.float32).tobytes(),
            "source_vecs": rows[1:].astype(np.float16).tobytes(),
            "text_model": self.embedder.model_id,
        }

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None
