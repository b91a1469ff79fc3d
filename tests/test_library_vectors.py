"""Text vectors of a first index: many texts at once, and batches embedded in the background."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from xcomposer.library import row_vectors
from xcomposer.library.embeddings import BF16_MIN_TEXTS, CHUNK_TEXTS, TextEmbedder
from xcomposer.library.row_vectors import RowVectors

SUBJECTS = ["lighthouse", "cat", "rocket", "coffee cup", "bar chart", "login form", "harbour"]


def _texts(count: int) -> list[str]:
    texts = [f"A {SUBJECTS[i % len(SUBJECTS)]} photographed in set {i}" for i in range(count)]
    texts[3] = "a login form " + "with a password field and a remember-me box " * 12  # long
    texts[7] = "cat"  # short
    return texts


def test_many_texts_embed_in_chunks_like_each_text_alone():
    embedder = TextEmbedder()
    texts = _texts(CHUNK_TEXTS * 2 + 9)  # several chunks, the last one short
    assert len(texts) >= BF16_MIN_TEXTS
    together = embedder.embed(texts)
    alone = np.concatenate([embedder.embed([t]) for t in texts])  # the query path, float32
    assert together.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    cosines = (together * alone).sum(axis=1)
    assert cosines.min() >= 0.999  # the same vectors, each in its own row
    assert (np.argmax(together @ alone.T, axis=1) == np.arange(len(texts))).all()


class CountingEmbedder(TextEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded += list(texts)
        return super().embed(texts)


def _entries(numbers: range) -> list[tuple[str, list]]:
    out = []
    for i in numbers:
        sidecar = f"A {SUBJECTS[i % len(SUBJECTS)]} at dusk, photo {i}"
        filename = f"{SUBJECTS[i % len(SUBJECTS)]} (in travel / set)"
        out.append((f"{sidecar}. {filename}.", [("sidecar", sidecar), ("filename", filename)]))
    return out


def test_batches_started_before_earlier_ones_finish_get_their_own_vectors(monkeypatch):
    monkeypatch.setattr(row_vectors, "MEMO_TEXTS", 5)  # forgets between batches
    embedder = CountingEmbedder()
    vectors = RowVectors(embedder)
    batches = [_entries(range(0, 40)), _entries(range(30, 70)), _entries(range(60, 100))]
    try:
        finish_first = vectors.start(batches[0])
        finish_second = vectors.start(batches[1])  # overlaps the first: rows 30-39 again
        first = finish_first()
        finish_third = vectors.start(batches[2])
        results = [first, finish_second(), finish_third()]
    finally:
        vectors.close()
    repeated = "A cat at dusk, photo 36"
    assert embedder.embedded.count(repeated) == 1  # asked for while the first was in flight
    for entries, fields in zip(batches, results, strict=True):
        assert len(fields) == len(entries)
        descriptions = embedder.embed([d for d, _ in entries[:: len(entries) // 4]])
        stored = [
            np.frombuffer(f["text_vec"], dtype=np.float32) for f in fields[:: len(entries) // 4]
        ]
        assert ((np.stack(stored) * descriptions).sum(axis=1) >= 0.999).all()
        sources = np.frombuffer(fields[5]["source_vecs"], dtype=np.float16).reshape(2, 384)
        expected = embedder.embed([t for _, t in entries[5][1]])
        assert ((sources.astype(np.float32) * expected).sum(axis=1) >= 0.998).all()
        assert {f["text_model"] for f in fields} == {embedder.model_id}


FORK_SCRIPT = """
import os
from xcomposer.library.embeddings import TextEmbedder
texts = [f"a photo of a {i}" for i in range(40)]
embedder = TextEmbedder()
embedder.embed(texts)  # the parent's workers exist now
pid = os.fork()
if pid == 0:
    print("child", embedder.embed(texts).shape, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_a_forked_child_embeds_with_workers_of_its_own():
    # A forked child has none of its parent's worker threads: reusing their pool would hang.
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert "child (40, 384)" in out.stdout, out.stderr[-2000:]
