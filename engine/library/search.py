"""Ranking: cosine similarity, filters, exclusion, score fusion and diversity.

Pure functions over a :class:`~.index.View`; :class:`~.library.Library` feeds
them and turns row numbers into matches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .features import NEAR_DUPLICATE_BITS, hamming
from .index import View
from .records import SearchFilters

#: Weight of the image-embedding score when an image-text model is configured.
IMAGE_WEIGHT = 0.35
#: How much a single source that matches well may lift an image above its description's score.
SOURCE_WEIGHT = 0.5
#: Sources that describe the image only loosely count for less when picking the best one.
SOURCE_DISCOUNT = {"filename": 0.85, "ocr": 0.9, "xmp-keywords": 0.9, "exif-keywords": 0.9,
                   "captions-tags": 0.9, "svg-text": 0.9}  # fmt: skip


def filter_mask(view: View, filters: SearchFilters) -> np.ndarray:
    """Rows that pass the filters (size, orientation, subfolder glob)."""
    mask = np.ones(len(view), dtype=bool)
    if filters.min_width:
        mask &= view.width >= filters.min_width
    if filters.min_height:
        mask &= view.height >= filters.min_height
    if filters.orientation or filters.globs:
        for i in np.flatnonzero(mask):
            if not filters.accepts(
                view.relpaths[i], int(view.width[i]), int(view.height[i]), view.orientation[i]
            ):
                mask[i] = False
    return mask


#: Above this many entries, candidates are first found by their vectors' sign bits.
EXACT_LIMIT = 50_000
#: ... and this share of the library (at least RESCORE_MIN rows) is re-scored exactly.
RESCORE_SHARE = 0.05
RESCORE_MIN = 2000
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def dot(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` without BLAS threads.

    A matrix-vector product is memory-bound; OpenBLAS's threads only add
    hand-off latency (tens of ms on a busy machine), numpy's own loop does not.
    """
    return np.einsum("ij,j->i", matrix, vector)


def sign_bits(vectors: np.ndarray) -> np.ndarray:
    """Each vector's signs, packed: (n, d/8) bytes, 1/32 of the float32 matrix."""
    return np.packbits(vectors > 0, axis=1)


def approximate_scores(
    vectors: np.ndarray, bits: np.ndarray, qvec: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores for the rows most likely to score best, and the mask of those rows.

    The Hamming distance between sign bits estimates the angle between vectors
    (binary quantisation); the closest :data:`RESCORE_SHARE` of the allowed rows
    are then scored exactly.  A scan of a large library reads 48 bytes a row
    instead of 1,536.
    """
    qbits = np.packbits(qvec > 0)
    xor = np.bitwise_xor(bits, qbits)
    if hasattr(np, "bitwise_count"):
        distance = np.bitwise_count(xor).sum(axis=1, dtype=np.int32)
    else:  # numpy < 2
        distance = _POPCOUNT[xor].sum(axis=1, dtype=np.int32)
    distance[~mask] = np.iinfo(np.int32).max
    allowed = int(mask.sum())
    count = min(allowed, max(RESCORE_MIN, int(allowed * RESCORE_SHARE)))
    scores = np.full(len(vectors), -np.inf, dtype=np.float32)
    if count == 0:
        return scores, np.zeros(len(vectors), dtype=bool)
    pool = (
        np.argpartition(distance, count - 1)[:count]
        if count < len(distance)
        else np.arange(len(distance))
    )
    scores[pool] = dot(vectors[pool], qvec)
    pool_mask = np.zeros(len(vectors), dtype=bool)
    pool_mask[pool] = True
    return scores, pool_mask & mask


def fuse(text_scores: np.ndarray, image_scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Text and image cosines combined on the text score's scale.

    The two models' cosines live on different scales (CLIP's matches sit near
    0.3, MiniLM's near 0.6), so the image scores are first mapped onto the text
    scores' mean and spread over the allowed rows, then mixed in with
    :data:`IMAGE_WEIGHT`.
    """
    if not mask.any():
        return text_scores
    t, i = text_scores[mask], image_scores[mask]
    spread = i.std()
    calibrated = (image_scores - i.mean()) / (spread if spread > 1e-6 else 1.0) * t.std() + t.mean()
    return (1 - IMAGE_WEIGHT) * text_scores + IMAGE_WEIGHT * calibrated


def top_rows(scores: np.ndarray, mask: np.ndarray, count: int) -> np.ndarray:
    """Row numbers of the ``count`` best allowed scores, best first."""
    allowed = np.flatnonzero(mask)
    if len(allowed) == 0:
        return allowed
    count = min(count, len(allowed))
    sub = scores[allowed]
    if count < len(allowed):
        part = np.argpartition(-sub, count - 1)[:count]
    else:
        part = np.arange(len(allowed))
    order = part[np.argsort(-sub[part], kind="stable")]
    return allowed[order]


def combine(
    description_score: float, source_scores: Sequence[tuple[str, float]]
) -> tuple[float, int]:
    """An image's final score and the index of its best-matching source.

    The description's cosine, lifted toward the best single source when one
    source matches better than the whole (a long description dilutes a short,
    exact caption).
    """
    best, best_i = -1.0, -1
    for i, (source, score) in enumerate(source_scores):
        weighted = score * SOURCE_DISCOUNT.get(source, 1.0)
        if weighted > best:
            best, best_i = weighted, i
    if best_i < 0 or best <= description_score:
        return description_score, best_i
    return description_score + SOURCE_WEIGHT * (best - description_score), best_i


def pick(
    rows: Sequence[int],
    view: View,
    k: int,
    diverse: bool,
    avoid_hashes: Sequence[int] = (),
) -> list[int]:
    """The first ``k`` rows that are not a repeat (same sha256) or, when ``diverse``,
    a near-duplicate (perceptual hash) of one already picked or of ``avoid_hashes``."""
    chosen: list[int] = []
    seen_sha: set[str] = set()
    hashes = [int(h) for h in avoid_hashes] if diverse else []
    for row in rows:
        sha = view.sha256[row]
        if sha in seen_sha:
            continue
        if diverse and hashes:
            if int(np.min(hamming(np.array(hashes, dtype=np.uint64), int(view.phash[row])))) <= (
                NEAR_DUPLICATE_BITS
            ):
                continue
        chosen.append(int(row))
        seen_sha.add(sha)
        if diverse:
            hashes.append(int(view.phash[row]))
        if len(chosen) == k:
            break
    return chosen
