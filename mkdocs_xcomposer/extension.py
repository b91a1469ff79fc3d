"""The blocks as a Python-Markdown extension: the one renderer of every generator.

``markdown_extensions: [xcomposer]`` makes any generator that runs Python-Markdown
(Zensical, ProperDocs, MkDocs, a plain ``markdown.Markdown``) render
``/// compose``, ``/// illustrate`` and ``/// describe`` blocks from the committed
block cache.  The MkDocs plugin adds this same extension itself, with its live
results (composing, ``serve``), so a page renders to the same HTML either way.

How a page is rendered:

1. a preprocessor (before any other) replaces each block by Markdown: the model's
   text neutralised (escaped, so the page's own Markdown makes its headings, and
   the table of contents and the theme treat them as the site's own), and one
   placeholder paragraph per figure or notice;
2. a treeprocessor replaces the placeholders by ``<figure>`` elements whose image
   URLs are relative to the page's source, as a writer's own ``![](img/x.png)``
   is, so the generator's link handling (MkDocs' relative URLs, Material's blog
   excerpts) treats them like the writer's images; links in model text keep only
   http(s) and mailto targets.  No marker is left in the HTML.
"""

from __future__ import annotations

import posixpath
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree as etree

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from xcomposer import LINK_SCHEMES  # the package is lazy: no pydantic

from .render import FigureStyle


@dataclass
class FigurePart:
    """A figure to show: ``image`` is its file inside docs_dir, as a docs-relative path."""

    src_uri: str
    alt: str
    caption: str
    size: tuple[int, int] | None = None


@dataclass
class NoticePart:
    """A visible notice in place of a block (being composed, or missing from the cache)."""

    kind: str
    """The admonition type: ``info`` or ``failure``."""
    title: str
    text: str


Part = str | FigurePart | NoticePart


@dataclass
class Replacement:
    """What replaces ``markdown[start:end]``: Markdown text, figures and notices."""

    start: int
    end: int
    parts: list[Part]
    indent: str = ""
    generated: bool = True
    """Model text inside: its links are checked (an alt-text fill is not)."""


@dataclass
class PageRef:
    """The page being rendered, as its generator names it."""

    src_uri: str
    """Relative to docs_dir, with ``/``."""
    abs_path: Path | None = None
    line_offset: int = 0
    """Lines before the Markdown in the file (front matter)."""
    title_meta: bool = False
    """The page names its own title (front matter ``title:``)."""
    context: Any = field(default=None, repr=False)
    """The generator's own page object, where it has one (MkDocs' File)."""


class BlockSource(Protocol):
    """Where a page's rendered blocks come from: the plugin's live results, or the cache."""

    style: FigureStyle

    def page_of(self, md: Markdown, markdown: str) -> PageRef | None: ...

    def replacements(self, markdown: str, page: PageRef) -> list[Replacement]: ...


class XComposerExtension(Extension):
    """``markdown_extensions: - xcomposer`` (options as the plugin's, e.g. ``cache_dir``)."""

    def __init__(self, source: BlockSource | None = None, **kwargs: Any) -> None:
        self.config = {
            "config_file": ["", "The site's mkdocs.yml, properdocs.yml or zensical.toml "
                                "(default: found in the project folder)"],
            "options": [{}, "Plugin options that override the site config's"],
        }  # fmt: skip
        super().__init__(**kwargs)
        self.source = source

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 (Python-Markdown's name)
        if self.source is None:
            from .standalone import frozen_source

            self.source = frozen_source(self.getConfig("config_file"), self.getConfig("options"))
        state = _PageState()
        md.preprocessors.register(BlockPreprocessor(md, self.source, state), "xcomposer", 40)
        # After inline parsing (20), before MkDocs' relative URLs (relpath, 0).
        md.treeprocessors.register(FigureTreeprocessor(md, self.source, state), "xcomposer", 8)
        md.registerExtension(self)


def makeExtension(**kwargs: Any) -> XComposerExtension:  # noqa: N802
    return XComposerExtension(**kwargs)


@dataclass
class _PageState:
    token: str = ""
    page: PageRef | None = None
    placeholders: dict[str, FigurePart | NoticePart] = field(default_factory=dict)


class BlockPreprocessor(Preprocessor):
    """Blocks become Markdown and placeholders (runs first: it sees the page as written)."""

    def __init__(self, md: Markdown, source: BlockSource, state: _PageState) -> None:
        super().__init__(md)
        self.source = source
        self.state = state

    def run(self, lines: list[str]) -> list[str]:
        self.state.token = secrets.token_hex(6)
        self.state.placeholders = {}
        markdown = "\n".join(lines)
        if "![" not in markdown and "///" not in markdown:
            self.state.page = None
            return lines
        page = self.source.page_of(self.md, markdown)
        self.state.page = page
        if page is None:
            return lines
        replacements = self.source.replacements(markdown, page)
        if not replacements:
            return lines
        out, pos = [], 0
        for rep in replacements:
            out.append(markdown[pos : rep.start])
            out.append(self._text(rep))
            pos = rep.end
        out.append(markdown[pos:])
        return "".join(out).split("\n")

    def _text(self, rep: Replacement) -> str:
        if all(isinstance(p, str) for p in rep.parts) and not rep.generated:
            return "".join(rep.parts)  # type: ignore[arg-type]  (an alt text filled in)
        token = self.state.token
        pieces = [f"XCOMPOSER{token}BEGIN"] if rep.generated else []
        for part in rep.parts:
            if isinstance(part, str):
                pieces.append(part)
            else:
                name = f"XCOMPOSER{token}P{len(self.state.placeholders)}"
                self.state.placeholders[name] = part
                pieces.append(name)
        if rep.generated:
            pieces.append(f"XCOMPOSER{token}END")
        text = "\n\n".join(pieces)
        lines = [rep.indent + line if line.strip() else "" for line in text.split("\n")]
        return "\n".join(lines) + "\n"


class FigureTreeprocessor(Treeprocessor):
    """Placeholders become figures and notices; links in generated text are checked."""

    def __init__(self, md: Markdown, source: BlockSource, state: _PageState) -> None:
        super().__init__(md)
        self.source = source
        self.state = state

    def run(self, root: etree.Element) -> None:
        if self.state.page is None or not self.state.token:
            return
        prefix = f"XCOMPOSER{self.state.token}"
        for parent in list(root.iter()):
            children = list(parent)
            inside = False
            for child in children:
                text = (child.text or "").strip() if len(child) == 0 else ""
                if child.tag == "p" and text.startswith(prefix):
                    name = text[len(prefix) :]
                    if name == "BEGIN":
                        inside = True
                        parent.remove(child)
                        continue
                    if name == "END":
                        inside = False
                        parent.remove(child)
                        continue
                    part = self.state.placeholders.get(text)
                    if part is not None:
                        parent.insert(list(parent).index(child), self._element(part))
                        parent.remove(child)
                        continue
                if inside:
                    _check_links(child)

    def _element(self, part: FigurePart | NoticePart) -> etree.Element:
        if isinstance(part, NoticePart):
            return notice_element(part)
        page = self.state.page
        assert page is not None
        return figure_element(part, page, self.source.style)


def page_relative(src_uri: str, page: PageRef) -> str:
    """A docs-relative path as a URL relative to the page's source (spaces and all quoted)."""
    rel = posixpath.relpath(src_uri, posixpath.dirname(page.src_uri) or ".")
    return quote(rel, safe="/")


def figure_element(part: FigurePart, page: PageRef, style: FigureStyle) -> etree.Element:
    """``<figure><img ...><figcaption>`` (ElementTree escapes every value)."""
    figure = etree.Element("figure", {"class": style.css_class})
    attrs = {"src": page_relative(part.src_uri, page), "alt": part.alt}
    if part.size is not None:
        width, height = part.size
        if style.width:
            width, height = style.width, round(height * style.width / max(width, 1))
        attrs |= {"width": str(width), "height": str(height)}
    attrs |= {"loading": "lazy", "decoding": "async"}
    etree.SubElement(figure, "img", attrs)
    if part.caption:
        etree.SubElement(figure, "figcaption").text = part.caption
    return figure


def notice_element(part: NoticePart) -> etree.Element:
    box = etree.Element("div", {"class": f"admonition {part.kind} xcomposer-notice"})
    box.set("role", "status" if part.kind == "info" else "alert")
    etree.SubElement(box, "p", {"class": "admonition-title"}).text = part.title
    etree.SubElement(box, "p").text = part.text
    return box


def _check_links(element: etree.Element) -> None:
    """Model text's links keep safe targets only; any other image or handler goes."""
    for node in element.iter():
        for name in [a for a in node.attrib if a.lower().startswith("on")]:
            del node.attrib[name]
        if node.tag == "a":
            href = node.get("href", "")
            scheme = urlsplit(href.strip()).scheme.lower()
            if scheme and scheme not in LINK_SCHEMES:
                node.tag = "span"  # the link's text stays, as text
                node.attrib.clear()
