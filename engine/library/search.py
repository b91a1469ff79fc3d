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
                   "captions-tags": 0.9}  # fmt: skip


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
