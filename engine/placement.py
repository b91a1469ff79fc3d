"""Evidence-driven placement: which picture goes after which paragraph, decided together.

The evidence is one matrix, computed once per article: how well each text paragraph
matches each library image.  A row is the library's own ranking for that paragraph
(the image descriptions through the library's embedding model, fused with image
embeddings where a vision encoder is configured), blended with its neighbours'
rows so a short paragraph borrows the context around it.  Spots and pictures are
then chosen together by a globally optimal one-to-one assignment
(:func:`scipy.optimize.linear_sum_assignment`): no picture twice, each after the
paragraph it fits best given all the others.

With ``auto`` a pair is placed only when its evidence clears a threshold calibrated
for the embedding model (a text the library does not cover gets no picture, and
the reason is logged and recorded).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from .article import Article

if TYPE_CHECKING:
    from .library import Library, Match

log = logging.getLogger("xcomposer")

#: How much of the neighbouring paragraphs' evidence a paragraph borrows.
NEIGHBOUR_WEIGHT = 0.15
#: Images scored per paragraph (the rest of a large library counts as "no better than these").
POOL_PER_PARAGRAPH = 64
_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
#: ``auto``: the least evidence (on the library's score scale) for a picture to be placed.
#: Calibrated for all-MiniLM-L6-v2 on tests/placement_eval (see docs/benchmarks.md).
AUTO_MIN_SCORE = {_MINILM: 0.42}
#: ... for other embedding models, whose cosines sit on their own scale.
AUTO_MIN_SCORE_DEFAULT = 0.45
#: An English-only embedding model cannot tell Chinese topics apart (MiniLM's cosine between
#: any two Chinese texts sits near 0.6): for CJK text, the character-bigram overlap of
#: paragraph and description joins with this weight, and ``auto`` needs this much.
CJK_LEXICAL_WEIGHT = {_MINILM: 1.0}
CJK_AUTO_MIN_SCORE = {_MINILM: 0.78}
#: A match this far ahead of the runner-up is strong: no model guess overrides it.
STRONG_MARGIN = 0.08
#: ``auto`` never places more than this many pictures on one page.
MAX_AUTO_IMAGES = 8


@dataclass
class Evidence:
    """Paragraph x image scores: rows are text paragraphs, columns library images."""

    paragraphs: list[int]
    """The article paragraph index of each row."""
    images: list[Match]
    """The image of each column."""
    own: np.ndarray
    """Each paragraph's own text against each image."""
    scores: np.ndarray
    """``own`` blended with the neighbouring paragraphs' rows: what the assignment uses."""
    signals: tuple[str, ...] = ()
    """Which measurements went into the scores (``text-similarity``, ``image-embedding`` ...)."""
    thresholds: np.ndarray | None = None
    """``auto``'s calibrated threshold for each row (it depends on the row's script)."""

    def ranked_images(self, row: int, exclude: Collection[int] = ()) -> list[int]:
        """Columns for paragraph ``row``, best first, leaving out ``exclude``."""
        order = np.argsort(-self.scores[row], kind="stable")
        return [int(c) for c in order if int(c) not in exclude]


@dataclass
class Placement:
    """One picture placed by the evidence, with what it beat."""

    after: int
    match: Match
    score: float
    runner_up: Match | None = None
    runner_up_score: float | None = None
    candidates: list[Match] = field(default_factory=list)
    """The best images for this paragraph not placed elsewhere, the chosen one first."""
    candidate_scores: list[float] = field(default_factory=list)
    """Each candidate's evidence for this paragraph."""

    def near_ties(self) -> list[Match]:
        """The candidates within :data:`STRONG_MARGIN` of the pick: none besides it when strong."""
        if self.strong:
            return [self.match]
        return [
            m
            for m, s in zip(self.candidates, self.candidate_scores, strict=True)
            if s >= self.score - STRONG_MARGIN
        ]

    @property
    def margin(self) -> float:
        return self.score - (self.runner_up_score if self.runner_up_score is not None else 0.0)

    @property
    def strong(self) -> bool:
        return self.runner_up_score is None or self.margin >= STRONG_MARGIN


def auto_threshold(library: Library, cjk_share: float = 0.0) -> float:
    """The calibrated ``auto`` threshold for the library's embedding model and the text's script."""
    model = library.text_embedder.model_id
    base = AUTO_MIN_SCORE.get(model, AUTO_MIN_SCORE_DEFAULT)
    if model not in CJK_LEXICAL_WEIGHT:
        return base
    return base + cjk_share * (CJK_AUTO_MIN_SCORE[model] - base)


def cjk_share(text: str) -> float:
    """The share of a text's letters that are CJK ideographs."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if "\u3400" <= c <= "\u9fff") / len(letters)


def character_overlap(texts: Sequence[str], descriptions: Sequence[str]) -> np.ndarray:
    """TF-IDF cosine of character bigrams (scikit-learn), texts x descriptions."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not texts or not descriptions:
        return np.zeros((len(texts), len(descriptions)))
    vectoriser = TfidfVectorizer(analyzer="char", ngram_range=(2, 2), lowercase=True)
    vectoriser.fit([*texts, *descriptions])
    return (vectoriser.transform(texts) @ vectoriser.transform(descriptions).T).toarray()


def gather_evidence(
    article: Article,
    library: Library,
    exclude: Collection[str] = (),
    rows: Sequence[int] | None = None,
) -> Evidence:
    """The paragraph x image matrix for the article's text paragraphs (or ``rows``)."""
    paragraphs = (
        list(rows)
        if rows is not None
        else [i for i, p in enumerate(article.paragraphs) if p.kind == "text"]
    )
    columns: dict[str, int] = {}
    images: list[Match] = []
    found: list[dict[int, float]] = []
    floors: list[float] = []
    pool = min(max(len(library), 1), POOL_PER_PARAGRAPH)
    for index in paragraphs:
        query = " ".join(article.paragraphs[index].text.split())
        matches = library.search(query, k=pool, exclude=exclude, diverse=False) if query else []
        row: dict[int, float] = {}
        for m in matches:
            if m.sha256 not in columns:
                columns[m.sha256] = len(images)
                images.append(m)
            row[columns[m.sha256]] = float(m.score)
        found.append(row)
        floors.append(min(row.values()) if row else 0.0)
    own = np.zeros((len(paragraphs), len(images)), dtype=np.float64)
    for r, row in enumerate(found):
        own[r, :] = floors[r]
        for c, score in row.items():
            own[r, c] = score
    texts = [article.paragraphs[i].text for i in paragraphs]
    shares = np.array([cjk_share(t) for t in texts])
    weight = CJK_LEXICAL_WEIGHT.get(library.text_embedder.model_id, 0.0)
    lexical = bool(weight and shares.max(initial=0.0) > 0 and images)
    if lexical:
        overlap = character_overlap(texts, [m.description for m in images])
        own = own + (weight * shares)[:, None] * overlap
    scores = own.copy()
    if NEIGHBOUR_WEIGHT and len(paragraphs) > 1:
        for r in range(len(paragraphs)):
            near = [n for n in (r - 1, r + 1) if 0 <= n < len(paragraphs)]
            # the paragraph's own score stays the scale: neighbours lift or lower it a little
            scores[r] = (1 - NEIGHBOUR_WEIGHT) * own[r] + NEIGHBOUR_WEIGHT * own[near].mean(axis=0)
    signals = ["text-similarity", "neighbours"]
    if library.image_embedder is not None:
        signals.insert(1, "image-embedding")
    if lexical:
        signals.insert(1, "character-overlap")
    thresholds = np.array([auto_threshold(library, share) for share in shares])
    return Evidence(paragraphs, images, own, scores, tuple(signals), thresholds)


def assign(
    evidence: Evidence, count: int | None, min_score: float | np.ndarray | None = None
) -> list[tuple[int, int]]:
    """(row, column) pairs: the one-to-one assignment with the greatest total evidence.

    ``count`` pairs exactly (fewer when the matrix is smaller), or with ``count``
    None as many as clear ``min_score`` (one value, or one per row).  Dummy "no picture" columns turn both into
    one square-enough problem for :func:`scipy.optimize.linear_sum_assignment`:
    with a fixed count they are worth more than any image, so exactly
    ``rows - count`` paragraphs take one; with a threshold each is worth
    ``min_score``, so a paragraph takes an image only when the image beats it.
    """
    from scipy.optimize import linear_sum_assignment

    scores = evidence.scores
    n_rows, n_cols = scores.shape
    if n_rows == 0 or n_cols == 0:
        return []
    if count is not None:
        count = min(count, n_rows, n_cols)
        if count <= 0:
            return []
        dummies, dummy_value = n_rows - count, float(np.abs(scores).max()) * 4 + 10.0
        floor = np.full(n_rows, dummy_value)
    else:
        dummies = n_rows
        floor = np.broadcast_to(
            np.asarray(min_score if min_score is not None else 0.0, dtype=float), (n_rows,)
        )
    weights = np.hstack([scores, np.repeat(floor[:, None], dummies, axis=1)])
    rows, cols = linear_sum_assignment(weights, maximize=True)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if c < n_cols]
    if count is None:
        pairs = [(r, c) for r, c in pairs if scores[r, c] >= floor[r]]
    return sorted(pairs)


def place_by_evidence(
    article: Article,
    library: Library,
    n_images: int | Literal["auto"],
    exclude: Collection[str] = (),
    candidates: int = 4,
    min_score: float | None = None,
) -> tuple[list[Placement], str]:
    """Where pictures go and which ones, and a sentence on how the count was decided."""
    evidence = gather_evidence(article, library, exclude)
    rows = len(evidence.paragraphs)
    if rows == 0:
        return [], "the text has no paragraph that can take a picture"
    if not evidence.images:
        return [], (
            f"no unused image left in the library ({len(library)} image(s), "
            f"{len(exclude)} already on the page)"
        )
    if n_images == "auto":
        threshold = evidence.thresholds if min_score is None else np.full(rows, min_score)
        pairs = assign(evidence, None, threshold)
        cap = MAX_AUTO_IMAGES
        if len(pairs) > cap:
            # more paragraphs are covered than a page should carry: the strongest `cap` stay
            pairs = sorted(sorted(pairs, key=lambda p: -evidence.scores[p])[:cap])
        why = _auto_reason(article, evidence, pairs, threshold)
    else:
        pairs = assign(evidence, int(n_images))
        # "asked" only for a shortfall: the MkDocs plugin warns on it
        why = (
            f"{n_images} asked, {len(pairs)} placed: the text or the library is smaller"
            if len(pairs) < int(n_images)
            else f"{len(pairs)} placed by evidence"
        )
    taken = {c for _, c in pairs}
    placements = []
    for r, c in pairs:
        others = evidence.ranked_images(r, exclude=taken - {c})
        pool = [c] + [o for o in others if o != c]
        runner = pool[1] if len(pool) > 1 else None
        placements.append(
            Placement(
                after=evidence.paragraphs[r],
                match=evidence.images[c],
                score=round(float(evidence.scores[r, c]), 4),
                runner_up=evidence.images[runner] if runner is not None else None,
                runner_up_score=(
                    round(float(evidence.scores[r, runner]), 4) if runner is not None else None
                ),
                candidates=[evidence.images[o] for o in pool[:candidates]],
                candidate_scores=[
                    round(float(evidence.scores[r, o]), 4) for o in pool[:candidates]
                ],
            )
        )
    return placements, why


def _auto_reason(
    article: Article, evidence: Evidence, pairs: list[tuple[int, int]], threshold: np.ndarray
) -> str:
    """Why ``auto`` placed what it did; paragraphs left without a picture are logged."""
    placed = {r for r, _ in pairs}
    for r, index in enumerate(evidence.paragraphs):
        if r in placed:
            continue
        best = int(np.argmax(evidence.scores[r]))
        log.info(
            "no picture after paragraph %d: its best image %s scores %.2f (needs %.2f)",
            index,
            evidence.images[best].relpath or evidence.images[best].path,
            evidence.scores[r, best],
            threshold[r],
        )
    if not pairs:
        r, _ = np.unravel_index(
            int(np.argmax(evidence.scores - threshold[:, None])), evidence.scores.shape
        )
        reason = (
            f"auto: no picture, no image matches the text well enough "
            f"(best {float(evidence.scores[r].max()):.2f}, needs {threshold[r]:.2f})"
        )
        log.info("%s", reason)
        return reason
    low = min(float(threshold[r]) for r, _ in pairs)
    return f"auto: {len(pairs)} image(s) scored at least {low:.2f}"
