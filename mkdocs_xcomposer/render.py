"""Turning a finished block into page Markdown (the extension turns figures into elements).

Model-written text is untrusted.  It reaches the page through the engine's one
Markdown policy (``Article.markdown_parts`` over ``xcomposer.safe_text``): every HTML
character escaped and every construct that would reach past plain text neutralised
(links, images, braces for Jinja and attr_list, ``///`` / ``!!!`` / ``???`` / ``:::``
block openers, code fences, snippets), so the page's own Markdown renders it as text
and the table of contents sees its headings.  Figures point at the project's own
image files.  (``xcomposer`` loads lazily: the article and safe_text modules need
neither pydantic nor numpy, so a page rendered from the cache stays light.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Articles arrive as the block cache stores them (``Article.to_dict()`` form, figure
# images as absolute paths): rendering a cached page never needs the engine imported.
StoredArticle = dict[str, Any]
StoredFigure = dict[str, Any]


def neutralise(text: str) -> str:
    """Model text as Markdown that renders as exactly this text, one paragraph per
    blank-line-separated part (the engine's ``markdown_paragraphs``)."""
    from xcomposer import markdown_paragraphs

    return markdown_paragraphs(text)


@dataclass(frozen=True)
class FigureStyle:
    """How figures look: the plugin's ``figure_class`` and ``image_width``."""

    css_class: str = "xcomposer-figure"
    width: int | None = None
    caption: str = "model"
    """``model`` (the spot's caption), ``image`` (the image's description) or ``none``."""

    def caption_for(self, figure: StoredFigure) -> str:
        if self.caption == "image":
            return figure["alt"]
        return "" if self.caption == "none" else figure["caption"]


FigureRenderer = Callable[[StoredFigure], str]
ImageRenderer = Callable[[Path, str, str], str]


def article_markdown(
    article: StoredArticle,
    render_figure: FigureRenderer,
    title_level: int,
    writer_text: bool = False,
) -> str:
    """The article as page Markdown, by the engine's one policy (``Article.markdown_parts``).

    ``writer_text``: the paragraphs are a person's (an illustrate block) and stay
    exactly as the page has them; otherwise every paragraph is model text.
    ``title_level`` 0 leaves the title out (headings at ``##``).
    """
    from xcomposer import Article

    parsed = Article.from_dict(article)
    stored = {
        id(fig): data for fig, data in zip(parsed.figures, article.get("figures", []), strict=True)
    }
    out: list[str] = []
    for text, _opens, figures in parsed.markdown_parts(
        title_level, model_written=not writer_text, exact=True
    ):
        out.append(text)
        out.extend(render_figure(stored[id(fig)]) for fig in figures)
    return "\n\n".join(out)


def block_markdown(
    spec: Any, result: Any, folders: Any, figure: ImageRenderer, style: FigureStyle, level: int
) -> str:
    """A finished block as page Markdown; ``figure(image, alt, caption)`` writes each figure
    (a placeholder the extension turns into an element, or ``materialize``'s Markdown)."""
    from .tasks import load_article

    if spec.kind == "describe":
        text = result["text"]
        if spec.show_image:
            return figure(spec.image, _short(text), text)
        return neutralise(" ".join(text.split()))

    def stored(fig: StoredFigure) -> str:
        return figure(Path(fig["image"]), fig["alt"], style.caption_for(fig))

    article = load_article(result, folders)
    illustrate = spec.kind == "illustrate"
    return article_markdown(article, stored, 0 if illustrate else level, writer_text=illustrate)


def _short(text: str, limit: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"
