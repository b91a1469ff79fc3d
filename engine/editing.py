"""The Engine's edit operations: paragraphs rewritten, expanded, shortened or inserted;
images inserted, replaced or removed.  Each returns a new Article; the old one is kept.

A mixin of :class:`xcomposer.Engine` (it uses the engine's library, composer and alt
text writer); the edits themselves are in ``edit.py`` and the pipeline.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import edit
from .article import Article, Candidate, Figure
from .errors import InputError
from .options import ComposeOptions, Edit, EditOptions
from .progress import ProgressCallback, ignore_progress

if TYPE_CHECKING:
    from .compose import Composer
    from .library import Library


class EditOperations:
    """``seed`` (the sampling seed) and ``progress`` are keywords of every text edit;
    ``candidates`` (1 to 10) of every image edit: :class:`~xcomposer.EditOptions`."""

    open_library: Any
    _composer: Any
    _alt_writer: Any

    def edit(
        self,
        article: Article,
        edit_: Edit | dict[str, Any] | None = None,
        library: Any = None,
        *,
        progress: ProgressCallback = ignore_progress,
        **values: Any,
    ) -> Article:
        """One edit by name (:class:`~xcomposer.Edit`: ``op`` and its target), checked
        against the article before any model call; ``library`` for inserted or replaced
        images."""
        e = Edit.parse(edit_, **values)
        edit.check_edit(article, e)
        text = {"seed": e.seed, "progress": progress}
        images = {"candidates": e.candidates, "progress": progress}
        if e.op in ("rewrite", "expand", "shorten"):
            return self._rewrite(article, e.index, e.op, e.how, **text)
        if e.op == "insert_paragraph":
            return self.insert_paragraph(article, e.after, e.topic, **text)
        if e.op == "insert_image":
            return self.insert_image(article, e.after, library, **images)
        if e.op == "replace_image":
            return self.replace_image(article, e.figure, library, **images)
        if e.op == "choose_image":
            return edit.choose_image(article, e.figure, e.image)
        return self.remove_image(article, e.figure)

    def rewrite_paragraph(self, article: Article, index: int, how: str = "", **kw: Any) -> Article:
        """Paragraph ``index`` rewritten (``how``: an optional direction, e.g. "for beginners")."""
        return self._rewrite(article, index, "rewrite", how, **kw)

    def expand_paragraph(self, article: Article, index: int, **kw: Any) -> Article:
        """Paragraph ``index`` made longer, in the same voice."""
        return self._rewrite(article, index, "expand", **kw)

    def shorten_paragraph(self, article: Article, index: int, **kw: Any) -> Article:
        """Paragraph ``index`` made shorter, its point kept."""
        return self._rewrite(article, index, "shorten", **kw)

    def insert_paragraph(
        self,
        article: Article,
        after: int,
        topic: str,
        *,
        seed: int | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """A new paragraph about ``topic`` after paragraph ``after``."""
        composer = self._edit_composer(article, progress, seed=seed)
        return edit.insert_paragraph(composer, article, after, topic)

    def insert_image(
        self,
        article: Article,
        after: int,
        library: Any = None,
        *,
        candidates: int = 4,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """An image after text paragraph ``after``: captioned, retrieved and selected like in compose."""
        edit.check_text_paragraph(article, after)
        composer = self._edit_composer(article, progress, candidates=candidates)
        lib = self.open_library(library, progress)
        new = copy.deepcopy(article)
        caption = composer.caption_spots(new, [after])[after]
        return self._place_figure(composer, new, lib, after, caption, exclude=set(new.used_images))

    def replace_image(
        self,
        article: Article,
        figure: int,
        library: Any = None,
        *,
        candidates: int = 4,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """Figure ``figure`` swapped for a new choice among fresh candidates for its caption."""
        edit.check_figure(article, figure)
        composer = self._edit_composer(article, progress, candidates=candidates)
        lib = self.open_library(library, progress)
        new = copy.deepcopy(article)
        old = new.figures.pop(figure)
        return self._place_figure(
            composer, new, lib, old.after, old.caption, exclude=set(article.used_images)
        )

    def remove_image(self, article: Article, figure: int) -> Article:
        """The article without figure ``figure``."""
        return edit.remove_image(article, figure)

    # -- plumbing -----------------------------------------------------------------------
    def _rewrite(
        self,
        article: Article,
        index: int,
        mode: str,
        how: str = "",
        *,
        seed: int | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        composer = self._edit_composer(article, progress, seed=seed)
        return edit.rewrite_paragraph(composer, article, index, mode, how)

    def _edit_composer(
        self, article: Article, progress: ProgressCallback, **given: Any
    ) -> Composer:
        options = EditOptions.parse(**given)
        text = article.instruction or " ".join(p.text for p in article.paragraphs[:3])
        # the article's own language and title are data, not options a person gave
        compose_options = ComposeOptions.model_construct(
            n_images=1, language=article.language, title=article.title, **options.model_dump()
        )
        return self._composer(compose_options, text, progress)

    def _place_figure(
        self,
        composer: Composer,
        article: Article,
        lib: Library,
        after: int,
        caption: str,
        exclude: set[str],
    ) -> Article:
        candidates = composer.retrieve_candidates(
            lib, caption, article.paragraphs[after].text, exclude
        )
        if not candidates:
            raise InputError(
                "no unused image is left in the library for this spot", "add images to the library"
            )
        match, how = composer.select_image(article, after, caption, candidates)
        alt, alt_how = self._alt_writer()(match)
        article.figures.append(
            Figure(
                after=after,
                image=str(match.path),
                caption=caption,
                alt=alt,
                score=round(float(match.score), 4),
                sha256=match.sha256,
                candidates=[
                    Candidate(str(m.path), round(float(m.score), 4), m.sha256) for m in candidates
                ],
                provenance={"position": "person", "caption": "model", "image": how, "alt": alt_how},
            )
        )
        article.figures.sort(key=lambda f: f.after)
        return article
