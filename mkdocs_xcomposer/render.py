"""Turning a finished block into page Markdown, and the block's HTML into safe HTML.

Model-written text is untrusted.  It reaches the page as Markdown with every
HTML character escaped and every construct that would reach past Markdown
neutralised (braces for Jinja and attr_list, ``///`` / ``!!!`` / ``???`` / ``:::``
block openers, code fences, snippets), so the page's own Markdown renders it and
the table of contents sees its headings.  The HTML that comes out of a generated
block is then cleaned with nh3 between two markers only this build knows: no
script, no event handlers, no ``javascript:`` or ``data:`` URLs.  Figures point
at the project's own image files through relative URLs.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nh3

# Articles arrive as the block cache stores them (``Article.to_dict()`` form, figure
# images as absolute paths): rendering a cached page never needs the engine imported.
StoredArticle = dict[str, Any]
StoredFigure = dict[str, Any]

_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS)
_ALLOWED_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ALLOWED_ATTRIBUTES["*"] = {"class", "id", "title"}
_ALLOWED_ATTRIBUTES["img"] = _ALLOWED_ATTRIBUTES.get("img", set()) | {"loading", "decoding"}
_ALLOWED_ATTRIBUTES["a"] = _ALLOWED_ATTRIBUTES.get("a", set()) | {"href"}
# Block openers of pymdownx and friends, code fences, headings and footnote or
# abbreviation definitions: at the start of a line of model text they would
# change the page's structure, so their first character becomes an entity.
_LINE_OPENERS = re.compile(r"^(\s*)(///|!!!|\?\?\?|:::|===|```|~~~|#|\[TOC\]|\*\[|\[\^)")


def neutralise(text: str) -> str:
    """Model text as Markdown that can only ever render as text, links, lists and emphasis.

    Images are turned into text too: the only images of a generated block are its
    figures, from the project's own files (no tracking pixels, no data: URLs).
    """
    text = html.escape(text, quote=False).replace("{", "&#123;").replace("}", "&#125;")
    text = text.replace("![", "!&#91;")
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = _LINE_OPENERS.match(line)
        if match:
            indent, opener = match.group(1), match.group(2)
            line = f"{indent}&#{ord(opener[0])};{line[len(indent) + 1 :]}"
        lines.append(line)
    return "\n".join(lines)


def one_line(text: str) -> str:
    """Model text for a heading: one line, neutralised, angle brackets shown as ‹ ›.

    A heading may become the page's title, and generators unescape a title's text
    before the theme writes it into ``<title>`` (MkDocs' ``get_heading_text``), so a
    heading's ``<`` / ``>`` must not survive as markup characters at all."""
    text = " ".join(text.split()).replace("<", "\u2039").replace(">", "\u203a")
    return neutralise(text)


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


def figure_html(
    url: str,
    alt: str,
    caption: str,
    style: FigureStyle,
    size: tuple[int, int] | None = None,
) -> str:
    """A ``<figure>`` with a lazily loaded image, alt text and caption (all escaped)."""
    dims = ""
    if size is not None:
        width, height = size
        if style.width:
            width, height = style.width, round(height * style.width / max(width, 1))
        dims = f' width="{width}" height="{height}"'
    caption_html = f"\n<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure class="{html.escape(style.css_class, quote=True)}">\n'
        f'<img src="{html.escape(url, quote=True)}" alt="{html.escape(alt, quote=True)}"'
        f'{dims} loading="lazy" decoding="async">{caption_html}\n</figure>'
    )


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


def pending_html(what: str, where: str) -> str:
    """What a page shows under ``mkdocs serve`` while its block is being composed."""
    return (
        '<div class="admonition info xcomposer-pending" role="status">\n'
        '<p class="admonition-title">Being composed</p>\n'
        f"<p>The {html.escape(what)} block at {html.escape(where)} is being composed in the "
        "background; this page reloads when it is ready.</p>\n</div>"
    )


_REGION = re.compile(
    r"<!-- xcomposer:(?P<token>[0-9a-f]{16}):begin -->(?P<html>.*?)"
    r"<!-- xcomposer:(?P=token):end -->",
    re.DOTALL,
)


class Regions:
    """Marks generated blocks in a page's Markdown and sanitises their HTML afterwards."""

    def __init__(self) -> None:
        # A fresh token per page render: model text (HTML-escaped anyway) cannot forge it.
        self.token = secrets.token_hex(8)

    def wrap(self, markdown: str) -> str:
        return (
            f"<!-- xcomposer:{self.token}:begin -->\n\n{markdown}\n\n"
            f"<!-- xcomposer:{self.token}:end -->"
        )

    def count(self, page_html: str) -> int:
        return sum(m.group("token") == self.token for m in _REGION.finditer(page_html))

    def sanitise(self, page_html: str) -> str:
        """Every marked region cleaned with nh3; the markers themselves removed."""

        def clean(match: re.Match) -> str:
            if match.group("token") != self.token:
                return match.group(0)
            return sanitise(match.group("html"))

        return _REGION.sub(clean, page_html)


def sanitise(fragment: str) -> str:
    """Generated HTML, cleaned: no script, no event handlers, no javascript:/data: URLs,
    and images only from relative URLs (the project's own files)."""
    return nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_own_images_only,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def _own_images_only(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and (":" in value.split("/", 1)[0] or "//" in value):
        return None
    return value
