"""The one safe renderer: model text made harmless for terminals, Markdown and HTML.

A model's answer is untrusted input, however it was served.  Every front end (the
CLI, the MkDocs plugin, the Jupyter extension, the JSON output) passes model text
through these functions, so one policy holds everywhere:

* ``terminal_safe``: no C0/C1 control characters (newline and tab stay), no escape
  sequences (CSI colours, OSC window titles and clipboard writes), no bidi overrides
  or isolates (U+202A-U+202E, U+2066-U+2069).
* ``bounded``: no string longer than a limit (long answers are cut, marked with ``…``).
* ``json_safe``: JSON whose bytes are terminal-safe, without losing a character.
* ``markdown_text``: model text as Markdown that renders as literal text only, in
  Python-Markdown (with the extensions MkDocs sites use) and in CommonMark
  (markdown-it-py): no HTML, no links, no images, no code, no block structure, no
  attribute lists, no Jinja braces, no snippet includes; ``markdown_paragraphs``
  keeps its blank-line paragraphs, ``markdown_heading`` makes a title or heading.
* ``url_path``: a file path as a URL path (``#``, ``%``, spaces, parentheses and
  non-ASCII percent-encoded), so a file name cannot end or redirect a link.
* ``html_text`` / ``html_attribute`` / ``sanitise_html``: wherever HTML is written,
  text is escaped and the finished fragment is cleaned with nh3.

See docs/security.md for what is guaranteed and how it is tested.
"""

from __future__ import annotations

import html
import re
from pathlib import PurePath
from urllib.parse import quote

MAX_LINE_CHARS = 1_000
"""The longest title, heading, caption or alt text kept."""
MAX_BLOCK_CHARS = 20_000
"""The longest paragraph of model text kept."""

# -- terminals --------------------------------------------------------------------------

# String sequences (OSC, DCS, SOS, PM, APC) with their terminator (BEL or ST), bounded so
# an unterminated one cannot swallow the rest of the text: then only its ESC goes.
_ESC_STRING = re.compile(r"\x1b[\]PX^_][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)")
_ESC_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_ESC_OTHER = re.compile(r"\x1b[ -/]*[0-~]?")
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` without escape sequences, control characters (but newline and tab) and bidi
    overrides, so printing it cannot retitle, recolour, reorder or write to the clipboard."""
    text = text.replace("\r\n", "\n")
    text = _ESC_STRING.sub("", text)
    text = _ESC_CSI.sub("", text)
    text = _ESC_OTHER.sub("", text)
    return _UNSAFE_CHARS.sub("", text)


def bounded(text: str, limit: int = MAX_BLOCK_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters (a cut is marked with ``…``)."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def model_text(text: str, limit: int = MAX_BLOCK_CHARS) -> str:
    """Model text fit to be stored or printed: terminal-safe and bounded."""
    return bounded(terminal_safe(text), limit)


def json_safe(json_text: str) -> str:
    """JSON text whose bytes are terminal-safe, losslessly: the characters
    :func:`terminal_safe` removes are written as ``\\uXXXX`` escapes instead."""
    return _UNSAFE_CHARS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json_text)


# -- Markdown ---------------------------------------------------------------------------

# Backslash escapes work for these in Python-Markdown and CommonMark alike.
_BACKSLASHED = re.compile(r"([\\`*_\[\]!#])")
# These have no backslash escape in Python-Markdown (or start Jinja, attr_list, tables,
# strikethrough, critic and the like): numeric character references render them as text.
_ENTITIES = {"{": "&#123;", "}": "&#125;", "|": "&#124;", "~": "&#126;", "$": "&#36;"}
# What a line may not start with: list items, setext and tab markers, block openers of
# pymdownx (``///``, ``???``, ``:::``), definition lists, abbreviations.
_LINE_START = re.compile(r"^([-+=?/:])")
_ORDERED_ITEM = re.compile(r"^(\d+)([.)])")


def markdown_text(text: str, limit: int = MAX_BLOCK_CHARS) -> str:
    """Model text as one line of Markdown that renders as exactly this text and nothing else.

    Whitespace runs (newlines included) become single spaces: a model string can never
    start a block of its own.
    """
    text = " ".join(model_text(text, limit).split())
    text = html.escape(text, quote=False)
    text = _BACKSLASHED.sub(r"\\\1", text)
    text = "".join(_ENTITIES.get(ch, ch) for ch in text)
    text = _ORDERED_ITEM.sub(r"\1\\\2", text)
    return _LINE_START.sub(lambda m: f"&#{ord(m.group(1))};", text)


def markdown_line(text: str) -> str:
    """A title, heading, caption or alt text: :func:`markdown_text` bounded to one line's length."""
    return markdown_text(text, MAX_LINE_CHARS)


def markdown_paragraphs(text: str) -> str:
    """Model text as Markdown paragraphs: one :func:`markdown_text` per part between blank
    lines, so a model's paragraph breaks survive and nothing else does."""
    parts = [part for part in text.replace("\r\n", "\n").split("\n\n") if part.strip()]
    return "\n\n".join(markdown_text(part) for part in parts)


def markdown_heading(text: str) -> str:
    """A title or heading's text: :func:`markdown_line`, with ``<`` and ``>`` shown as ``‹ ›``.

    A heading may become a page's title, and generators unescape a title's text
    before the theme writes it into ``<title>`` (MkDocs' ``get_heading_text``), so
    a heading's ``<`` / ``>`` must not survive as markup characters at all.
    """
    return markdown_line(text.replace("<", "\u2039").replace(">", "\u203a"))


def markdown_figure(target: str, alt: str, caption: str, caption_paragraph: bool = False) -> str:
    """An image and its caption in Markdown, alt text and caption escaped as model text.

    ``target`` is written as given: a :func:`url_path`, or a notebook's
    ``attachment:NAME``.  The caption (left out when empty) is an italic line under the
    image, or with ``caption_paragraph`` a paragraph of its own (a notebook cell).
    """
    image = f"![{markdown_line(alt)}]({target})"
    caption = markdown_line(caption)
    gap = "\n\n" if caption_paragraph else "\n"
    return f"{image}{gap}*{caption}*" if caption else image


def url_path(path: str | PurePath) -> str:
    """A file path as the target of a Markdown or HTML link, every unsafe character encoded."""
    posix = path.as_posix() if isinstance(path, PurePath) else str(path).replace("\\", "/")
    return quote(terminal_safe(posix), safe="/")


# -- HTML -------------------------------------------------------------------------------


def html_text(text: str, limit: int = MAX_BLOCK_CHARS) -> str:
    """Model text as HTML element content."""
    return html.escape(model_text(text, limit), quote=False)


def html_attribute(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """Model text as a double- or single-quoted HTML attribute value (one line)."""
    return html.escape(" ".join(model_text(text, limit).split()), quote=True)


def figure_html(
    url: str,
    alt: str,
    caption: str,
    css_class: str = "xcomposer-figure",
    *,
    data_images: bool = False,
) -> str:
    """A ``<figure>`` with lazily loaded image, alt text and caption, escaped and sanitised
    (``data_images``: ``url`` may be a base64 image, kept whole, see :func:`sanitise_html`)."""
    fragment = figure_fragment(url, alt, caption, css_class, data_images=data_images)
    return sanitise_html(fragment, data_images=data_images)


def figure_fragment(
    url: str,
    alt: str,
    caption: str,
    css_class: str = "xcomposer-figure",
    *,
    data_images: bool = False,
) -> str:
    """:func:`figure_html` before :func:`sanitise_html`: every value escaped, for a caller
    that sanitises the whole fragment it is part of once."""
    caption_html = f"\n<figcaption>{html_text(caption, MAX_LINE_CHARS)}</figcaption>"
    src = html.escape(url, quote=True) if data_images else html_attribute(url, MAX_BLOCK_CHARS)
    return (
        f'<figure class="{html_attribute(css_class)}">\n'
        f'<img src="{src}" alt="{html_attribute(alt)}" '
        f'loading="lazy">{caption_html if caption else ""}\n</figure>'
    )


#: The schemes a link in rendered output may have (anything else loses its link).
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_DATA_IMAGE = re.compile(r"^data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")


def sanitise_html(fragment: str, *, data_images: bool = False) -> str:
    """HTML cleaned with nh3: no script, no style, no event handlers, no ``javascript:`` URLs.

    Images load only from relative URLs (the project's own files), or from base64
    ``data:`` images when ``data_images`` is set (a notebook preview of attachments).
    """
    import nh3

    tags = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption"}
    attributes = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = {"class", "id", "title"}
    attributes["img"] = attributes.get("img", set()) | {"loading", "decoding"}
    attributes["a"] = attributes.get("a", set()) | {"href"}

    def own_urls_only(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in ("src", "href"):
            return value
        if value.startswith("data:"):
            ok = data_images and tag == "img" and bool(_DATA_IMAGE.match(value))
            return value if ok else None
        if tag == "img" and (":" in value.split("/", 1)[0] or value.startswith("//")):
            return None
        return value

    return nh3.clean(
        fragment,
        tags=tags,
        attributes=attributes,
        attribute_filter=own_urls_only,
        url_schemes=set(LINK_SCHEMES | {"data"}),
        link_rel="noopener noreferrer",
    )
