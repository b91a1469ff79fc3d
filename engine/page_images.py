"""The images a Markdown page shows: ``![alt](src "title")`` and ``![alt][ref]``.

One reading for everything that looks at a page's images: the library (the alt
text and captions pages already give an image) and the images a page shows without
alt text (:func:`images_without_alt`, :func:`with_alt`: the MkDocs plugin's
``alt_text: missing``).  Inline images (``<path with spaces.jpg>`` in angle brackets,
titles in ``"..."``, ``'...'`` or ``(...)``) and reference images (``![alt][ref]``,
``![alt][]``, ``![][ref]``, with their ``[ref]: path "title"`` definitions) are
found outside code fences, inline code and HTML comments.  Paths are resolved the
way MkDocs resolves them: relative to the page, or to the docs folder when they
start with ``/``; remote URLs are not local images.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .images import IMAGE_SUFFIXES
from .safe_text import markdown_line

_IMAGE = re.compile(
    r"!\[(?P<alt>(?:[^\]\\\n]|\\.)*)\]"
    r"(?:\(\s*(?:<(?P<asrc>[^>\n]+)>|(?P<src>[^)\s]+))"
    r"(?P<title>\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?\s*\)"
    r"| ?\[(?P<ref>[^\]\n]*)\])"
)
_DEFINITION = re.compile(
    r"^[ ]{0,3}\[(?P<label>[^\]\n]+)\]:[ \t]*(?:<(?P<asrc>[^>\n]+)>|(?P<src>\S+))"
    r"(?:[ \t]+(?:\"(?P<t1>[^\"\n]*)\"|'(?P<t2>[^'\n]*)'|\((?P<t3>[^)\n]*)\)))?[ \t]*$",
    re.MULTILINE,
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class MarkdownImage:
    """One image on a page, as written."""

    line: int
    """1-based line of the page."""
    start: int
    end: int
    """Character offsets of the whole ``![...](...)`` or ``![...][...]``."""
    alt: str
    """The alt text as written (Markdown escapes kept)."""
    src: str
    """The path or URL as written ("" for a reference without a definition)."""
    title: str
    """The title as written, quotes and leading space included (inline images)."""
    ref: str = ""
    """Reference-style: the label (``![][cat]``)."""
    angle: bool = False
    """The source was written in angle brackets (``![](<a b.jpg>)``)."""
    defined_title: str = ""
    """Reference-style: the title its definition gives."""

    @property
    def title_text(self) -> str:
        """The title without its quotes."""
        title = self.title.strip()
        return title[1:-1] if len(title) >= 2 else self.defined_title


def resolve_src(src: str, page: Path, docs_dir: Path) -> Path | None:
    """The local file ``src`` names, resolved as MkDocs does (symlinks too); ``None`` for
    a URL or an empty path."""
    parts = urlsplit(src)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = unquote(parts.path)
    base = docs_dir if target.startswith("/") else page.parent
    return Path(os.path.realpath(base / target.lstrip("/")))


class HiddenLines:
    """Line by line, whether a Markdown line is fenced code or inside an HTML comment: what
    a page shows as code, or not at all (the one reading for images and blocks).

    Feed every line in order to :meth:`hidden`.  A fence's opening, content and closing
    lines are hidden; so are a comment's lines after the one that opens it (that line may
    hold text before ``<!--``).  ``comments=False`` tracks fences only.
    """

    def __init__(self, comments: bool = True) -> None:
        self.comments = comments
        self.fence: str | None = None
        self.in_comment = False

    def hidden(self, text: str) -> bool:
        """Whether ``text`` (one line, without its newline) is code or comment."""
        if self.fence is not None:
            if text.lstrip(" \t").startswith(self.fence) and not text.strip().strip(self.fence[0]):
                self.fence = None
            return True
        if self.in_comment:
            self.in_comment = "-->" not in text
            return True
        opened = _FENCE.match(text)
        if opened:
            self.fence = opened.group(1)
            return True
        if self.comments and "<!--" in text and "-->" not in text[text.index("<!--") :]:
            self.in_comment = True
        return False


def _label(text: str) -> str:
    return " ".join(text.split()).casefold()


def markdown_images(markdown: str, skip: Sequence[tuple[int, int]] = ()) -> list[MarkdownImage]:
    """Every image of ``markdown`` outside code, comments and the ``skip`` spans (offsets).

    A reference image whose label has no definition keeps ``src`` empty.
    """
    found: list[MarkdownImage] = []
    comments = [(m.start(), m.end()) for m in _COMMENT.finditer(markdown)]
    definitions = {
        _label(m["label"]): (m["asrc"] or m["src"], m["t1"] or m["t2"] or m["t3"] or "")
        for m in _DEFINITION.finditer(markdown)
    }
    lines = HiddenLines()
    offset = 0
    for number, line in enumerate(markdown.splitlines(keepends=True), 1):
        start = offset
        offset += len(line)
        text = line.rstrip("\r\n")
        if lines.hidden(text):
            continue
        if any(a <= start < b for a, b in skip):
            continue
        for match in _IMAGE.finditer(text):
            if text[: match.start()].count("`") % 2:  # inside inline code
                continue
            if any(a <= start + match.start() < b for a, b in comments):
                continue
            where = {"line": number, "start": start + match.start(), "end": start + match.end()}
            if match["ref"] is not None:
                ref = match["ref"] or match["alt"]
                if not ref:  # ``![][]`` names nothing
                    continue
                src, title = definitions.get(_label(ref), ("", ""))
                image = MarkdownImage(
                    **where, alt=match["alt"], src=src, title="", ref=ref, defined_title=title
                )
            else:
                src = match["asrc"] or match["src"]
                image = MarkdownImage(
                    **where,
                    alt=match["alt"],
                    src=src,
                    title=match["title"] or "",
                    angle=bool(match["asrc"]),
                )
            found.append(image)
    return found


@dataclass(frozen=True)
class MissingAlt:
    """One image without alt text: where it is, and the file it shows."""

    found: MarkdownImage
    image: Path | None
    """The image file; ``None`` with a ``problem`` for a reference without a definition."""
    problem: str = ""

    @property
    def line(self) -> int:
        return self.found.line

    @property
    def start(self) -> int:
        return self.found.start

    @property
    def end(self) -> int:
        return self.found.end


def images_without_alt(
    markdown: str, page_path: Path, docs_dir: Path, skip: list[tuple[int, int]] = ()
) -> list[MissingAlt]:  # type: ignore[assignment]
    """Local images (files under ``docs_dir``) with empty alt text, outside code, comments
    and the ``skip`` spans: only ``![](path)`` counts, never a person's alt text nor an
    HTML ``<img alt="">`` (an empty alt there marks a decorative image)."""
    missing = []
    for found in markdown_images(markdown, skip):
        if found.alt:
            continue
        if found.ref and not found.src:
            problem = (
                f"image reference [{found.ref}] has no definition ([{found.ref}]: path); "
                "its alt text is not filled"
            )
            missing.append(MissingAlt(found, None, problem))
            continue
        path = resolve_src(found.src, page_path, docs_dir)
        if path is None or not path.is_relative_to(docs_dir) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            missing.append(MissingAlt(found, path))
    return missing


def with_alt(missing: MissingAlt, alt: str) -> str:
    """The image's Markdown with ``alt`` filled in (source and title as written)."""
    found = missing.found
    if found.ref:
        return f"![{markdown_line(alt)}][{found.ref}]"
    src = f"<{found.src}>" if found.angle else found.src
    return f"![{markdown_line(alt)}]({src}{found.title})"
