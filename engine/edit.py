"""Edit operations on an Article, as in the XComposer demo.

Each returns a new Article; the input is never changed.  Paragraph edits touch
one paragraph; image edits reuse the pipeline's caption/retrieve/select steps.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from .article import Article, Paragraph
from .errors import InputError
from .options import Edit, OptionError
from .text_cleaning import prose

if TYPE_CHECKING:
    from .compose import Composer


def check_edit(article: Article, edit: Edit) -> None:
    """Whether ``edit`` can act on ``article`` (its target given and there), before any
    model call: an :class:`InputError` naming the field and the fix."""
    target = getattr(edit, edit.target)
    if target is None:
        raise OptionError(
            f"the {edit.op} edit needs '{edit.target}'", f"give '{edit.target}' (an index)"
        )
    if edit.target == "index":
        _paragraph_index(article, target)
    elif edit.target == "figure":
        _figure_index(article, target)
    elif edit.op == "insert_image":
        _paragraph_index(article, target)
    if edit.op == "choose_image":
        if edit.image is None:
            raise OptionError("the choose_image edit needs 'image'", "give one of the candidates")
        if all(Path(c.image) != Path(edit.image) for c in article.figures[target].candidates):
            raise InputError(
                f"image '{Path(edit.image).name}' is not a candidate of figure {target}",
                "choose one of the figure's candidates",
            )


def choose_image(article: Article, figure: int, image: str) -> Article:
    """The figure shows the candidate a person chose (no model call: the caption stays)."""
    new = copy.deepcopy(article)
    fig = new.figures[_figure_index(new, figure)]
    cand = next(c for c in fig.candidates if Path(c.image) == Path(image))
    fig.image, fig.sha256, fig.score = cand.image, cand.sha256, cand.score
    fig.alt = fig.caption  # the old alt text described the old image
    fig.provenance.update(image="person", alt="caption")
    return new


def _paragraph_index(article: Article, index: int) -> int:
    if not 0 <= index < len(article.paragraphs):
        raise InputError(
            f"paragraph {index} does not exist (the article has {len(article.paragraphs)})",
            "give an index from 0 to the number of paragraphs minus one",
        )
    if article.paragraphs[index].kind != "text":
        raise InputError(
            f"paragraph {index} is a {article.paragraphs[index].kind}, not text",
            "pick a text paragraph",
        )
    return index


def _figure_index(article: Article, index: int) -> int:
    if not 0 <= index < len(article.figures):
        raise InputError(
            f"figure {index} does not exist (the article has {len(article.figures)})",
            "give an index from 0 to the number of figures minus one",
        )
    return index


def rewrite_paragraph(
    composer: Composer, article: Article, index: int, task: str, how: str = ""
) -> Article:
    """``task`` is ``rewrite``, ``expand`` or ``shorten``."""
    index = _paragraph_index(article, index)
    old = article.paragraphs[index].text
    words = len(old.split())
    target = {"expand": max(words * 2, 40), "shorten": max(words // 2, 10)}.get(task, words)
    budget = composer.caller.generation.section_tokens * (2 if task == "expand" else 1)
    answer = composer._ask(
        "write",
        task,
        context=article.text_until(index - 1),
        paragraph=old,
        words=target,
        how=f" {how}" if how else "",
        max_tokens=budget,
        creative=True,
    )
    blocks = prose(answer.text, answer.truncated)
    if not blocks:
        raise InputError(
            f"the model returned no text for paragraph {index}", "try again with another seed"
        )
    new = copy.deepcopy(article)
    new.paragraphs[index] = Paragraph(" ".join(blocks))
    return new


def insert_paragraph(composer: Composer, article: Article, after: int, topic: str) -> Article:
    """A new paragraph about ``topic`` after paragraph ``after`` (-1: at the start)."""
    if not topic.strip():
        raise InputError(
            "the new paragraph's topic is empty", "say what the paragraph should be about"
        )
    if not -1 <= after < len(article.paragraphs):
        raise InputError(
            f"paragraph {after} does not exist", "give -1 or an existing paragraph index"
        )
    budget = composer.caller.generation.section_tokens
    answer = composer._ask(
        "write",
        "insert",
        context=article.text_until(after),
        index=after + 1,
        topic=topic,
        words=composer.options.words,
        max_tokens=budget,
        creative=True,
    )
    blocks = prose(answer.text, answer.truncated)
    if not blocks:
        raise InputError(
            "the model returned no text for the new paragraph", "try again with another seed"
        )
    new = copy.deepcopy(article)
    new.paragraphs.insert(after + 1, Paragraph(" ".join(blocks)))
    for fig in new.figures:
        if fig.after > after:
            fig.after += 1
    return new


def remove_image(article: Article, index: int) -> Article:
    index = _figure_index(article, index)
    new = copy.deepcopy(article)
    del new.figures[index]
    return new


def check_figure(article: Article, index: int) -> int:
    return _figure_index(article, index)


def check_text_paragraph(article: Article, index: int) -> int:
    return _paragraph_index(article, index)
