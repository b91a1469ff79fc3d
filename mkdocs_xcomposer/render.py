"""Turning a finished block into page Markdown (the extension turns figures into elements).

Model-written text is untrusted.  It reaches the page through the engine's one safe
renderer (``xcomposer.markdown_text``): every HTML character escaped and every
construct that would reach past plain text neutralised (links, images, braces for
Jinja and attr_list, ``///`` / ``!!!`` / ``???`` / ``:::`` block openers, code
fences, snippets), so the page's own Markdown renders it as text and the table of
contents sees its headings.  Figures point at the project's own image files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Articles arrive as the block cache stores them (``Article.to_dict()`` form, figure
# images as absolute paths): rendering a cached page never needs the engine imported.
StoredArticle = dict[str, Any]
StoredFigure = dict[str, Any]


def neutralise(text: str) -> str:
    """Model text as Markdown that renders as exactly this text: the engine's renderer
    (``xcomposer.markdown_text``: terminal-safe, bounded, no HTML, links, images, block
    openers, braces), one paragraph per blank-line-separated part."""
    from xcomposer import markdown_text

    parts = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "\n\n".join(markdown_text(p) for p in parts)


def one_line(text: str) -> str:
    """Model text for a heading: one line (``xcomposer.markdown_line``), angle brackets
    shown as ‹ ›.

    A heading may become the page's title, and generators unescape a title's text
    before the theme writes it into ``<title>`` (MkDocs' ``get_heading_text``), so a
    heading's ``<`` / ``>`` must not survive as markup characters at all."""
    from xcomposer import markdown_line

    return markdown_line(text.replace("<", "\u2039").replace(">", "\u203a"))


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


def article_markdown(
    article: StoredArticle,
    render_figure: FigureRenderer,
    title_level: int,
    writer_text: bool = False,
) -> str:
    """The article as page Markdown.

    ``writer_text``: the paragraphs are a person's (an illustrate block) and stay
    exactly as written; otherwise every paragraph is model text and is neutralised.
    ``title_level`` 0 leaves the title out.
    """
    out: list[str] = []
    if article.get("title") and title_level:
        out.append(f"{'#' * title_level} {one_line(article['title'])}")
    section_level = min(max(title_level, 1) + 1, 6)
    figures: dict[int, list[StoredFigure]] = {}
    for fig in article.get("figures", []):
        figures.setdefault(fig["after"], []).append(fig)
    for index, para in enumerate(article["paragraphs"]):
        if writer_text:
            out.append(para["text"])
        elif para.get("kind") == "heading":
            out.append(f"{'#' * section_level} {one_line(para['text'])}")
        else:
            out.append(neutralise(para["text"]))
        for fig in figures.get(index, []):
            out.append(render_figure(fig))
    return "\n\n".join(out)


def describe_markdown(text: str, figure: str | None) -> str:
    """A describe block: the description as a paragraph, or as the caption of the figure."""
    return figure if figure is not None else neutralise(" ".join(text.split()))
