"""An Article as notebook Markdown cells whose images are cell attachments, and as an HTML preview.

Attachments keep a notebook self-contained: ``![alt](attachment:NAME)`` in the
cell's source, the image bytes in its ``attachments``.  Large images are scaled
down (``max_side``) so a shared notebook stays small.

Model text is untrusted: cells are written by the engine's one Markdown policy
(``Article.markdown_parts``): a composed article's words render as literal text; a
person's own text from ``illustrate`` stays word for word.
The preview is the engine's sanitised HTML of the article (``Article.to_html``).
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path
from typing import Any

from xcomposer import (
    Article,
    Figure,
    image_bytes,
    markdown_figure,
)

MAX_SIDE = 1024
# Our own markup around the sanitised preview (which keeps no style attributes).
PREVIEW_STYLE = (
    "<style>.xcomposer-preview img{max-width:320px}"
    ".xcomposer-preview .xcomposer-index{opacity:.5}</style>"
)
KEEP_BYTES = 600_000  # images this small (and no larger than MAX_SIDE) keep their own bytes
KEEP_FORMATS = ("PNG", "JPEG", "GIF")  # what every notebook front end shows


def image_attachment(path: str | Path, max_side: int = MAX_SIDE) -> tuple[str, str, bytes]:
    """(mime type, file extension, bytes) of an image: its own bytes when it is a small PNG,
    JPEG or GIF, else the engine's upright PNG/JPEG encoding, scaled to ``max_side``."""
    mime, data = image_bytes(path, max_side, keep=KEEP_FORMATS, keep_bytes=KEEP_BYTES)
    return mime, mimetypes.guess_extension(mime) or ".img", data


def attachment_name(fig: Figure | dict[str, Any], ext: str) -> str:
    """A stable name per image: the start of its content hash."""
    sha = fig.sha256 if isinstance(fig, Figure) else fig.get("sha256", "")
    image = fig.image if isinstance(fig, Figure) else fig.get("image", "")
    stem = (sha or re.sub(r"[^A-Za-z0-9]+", "-", Path(image).stem))[:16] or "figure"
    return f"{stem}{ext}"


def markdown_cell(source: str, attachments: dict[str, dict[str, str]] | None = None) -> dict:
    """An nbformat 4.5 Markdown cell as plain data (JupyterLab and nbformat both accept it)."""
    import nbformat

    cell = nbformat.v4.new_markdown_cell(source)
    cell["metadata"] = {"tags": ["xcomposer"]}
    if attachments:
        cell["attachments"] = attachments
    return dict(cell)


def _article_sections(article: Article) -> list[list[str | Figure]]:
    """The article as sections (the title and each heading open one) of Markdown text,
    escaped by the engine's one policy (``Article.markdown_parts``), and figures."""
    sections: list[list[str | Figure]] = [[]]
    for text, opens_section, figures in article.markdown_parts():
        if opens_section and sections[-1]:
            sections.append([])
        sections[-1].extend([text, *figures])
    return [section for section in sections if section]


def _attach(fig: Figure, attachments: dict[str, dict[str, str]], max_side: int) -> str:
    """Add ``fig``'s image to ``attachments`` (once per image) and return its Markdown."""
    mime, ext, data = image_attachment(fig.image, max_side)
    name = attachment_name(fig, ext)
    attachments[name] = {mime: base64.b64encode(data).decode("ascii")}
    return markdown_figure(f"attachment:{name}", fig.alt, fig.caption, caption_paragraph=True)


def article_cells(article: Article, max_side: int = MAX_SIDE) -> list[dict]:
    """One Markdown cell per section (the title opens the first), images as attachments."""
    cells = []
    for section in _article_sections(article):
        attachments: dict[str, dict[str, str]] = {}
        parts = [
            item if isinstance(item, str) else _attach(item, attachments, max_side)
            for item in section
        ]
        cells.append(markdown_cell("\n\n".join(parts), attachments))
    return cells


def illustrated_in_place(text: str, article: Article, max_side: int = MAX_SIDE) -> dict:
    """The person's cell with the figures inserted: their text kept character for character
    (the engine's ``insert_figures``), the images as the cell's attachments."""
    from xcomposer import insert_figures  # the pipeline's module: loaded when first needed

    attachments: dict[str, dict[str, str]] = {}
    source = insert_figures(
        text, article, figure_markdown=lambda f: _attach(f, attachments, max_side)
    )
    return markdown_cell(source, attachments)


def image_cell(data: bytes, mime: str, description: str, name: str = "figure.png") -> dict:
    """A Markdown cell holding one image (as an attachment) and its description."""
    encoded = base64.b64encode(data).decode("ascii")
    source = markdown_figure(f"attachment:{name}", description, description, True)
    return markdown_cell(source, {name: {mime: encoded}})


_ATTACHMENT = re.compile(r"\(attachment:([^)\s]+)\)")


def embedded_markdown(cells: list[dict]) -> str:
    """The cells' Markdown with each ``attachment:NAME`` replaced by a data URI."""
    parts = []
    for cell in cells:
        attachments = cell.get("attachments") or {}

        def inline(match: re.Match, attachments: dict = attachments) -> str:
            bundle = attachments.get(match.group(1)) or {}
            for mime, data in bundle.items():
                return f"(data:{mime};base64,{data})"
            return match.group(0)

        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        parts.append(_ATTACHMENT.sub(inline, source))
    return "\n\n".join(parts) + "\n"


# -- preview ------------------------------------------------------------------------------
def _attachments(cells: list[dict]) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for cell in cells:
        for name, bundle in (cell.get("attachments") or {}).items():
            for mime, data in bundle.items():
                found[name] = (mime, data)
    return found


def preview_html(article: dict[str, Any], cells: list[dict] | None = None) -> str:
    """An article (as JSON data) as the engine's sanitised HTML (``Article.to_html``),
    paragraphs numbered as edits name them.

    Images come from the cells' attachments (data URIs), so the preview shows
    exactly what ``insert`` puts into the notebook.
    """
    images = _attachments(cells or [])
    by_stem = {name.rsplit(".", 1)[0]: value for name, value in images.items()}

    def data_uri(fig: Figure) -> str | None:
        found = by_stem.get(attachment_name(fig, "").rstrip("."))
        return f"data:{found[0]};base64,{found[1]}" if found else None

    body = Article.from_dict(article).to_html(data_uri, data_images=True, numbered=True)
    return f'{PREVIEW_STYLE}<div class="xcomposer-preview">{body}</div>'


def text_preview(text: str, title: str = "") -> str:
    """A plain answer (a description) as escaped HTML."""
    head = f"<h3>{html.escape(title)}</h3>" if title else ""
    return f'<div class="xcomposer-preview">{head}<p>{html.escape(text)}</p></div>'
