"""Alt text and captions that Markdown pages under a docs folder already give an image.

A writer who used an image before has described it: ``![alt](path "title")``,
reference images (``![alt][ref]`` + ``[ref]: path``), HTML ``<img alt=...>``,
``<figcaption>`` in the same ``<figure>``, an italic line right below the image
(``*A caption*``), and pymdown's ``/// caption`` block.  Paths are resolved like
MkDocs does: relative to the page, or to the docs folder when they start with
``/``.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .sources import Source, clean_text, markdown_to_text

log = logging.getLogger("xcomposer.library")

MAX_PAGE_BYTES = 2_000_000
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown"}

_INLINE = re.compile(
    r"!\[(?P<alt>(?:[^\]\\]|\\.)*)\]\(\s*<?(?P<src>[^)\s>]+)>?"
    r"(?:\s+(?:\"(?P<t1>[^\"]*)\"|'(?P<t2>[^']*)'|\((?P<t3>[^)]*)\)))?\s*\)"
)
_REFERENCE = re.compile(r"!\[(?P<alt>(?:[^\]\\]|\\.)*)\]\[(?P<ref>[^\]]*)\]")
_DEFINITION = re.compile(
    r"^\s{0,3}\[(?P<ref>[^\]]+)\]:\s*<?(?P<src>\S+?)>?(?:\s+[\"'(](?P<title>.*?)[\"')])?\s*$",
    re.MULTILINE,
)
_IMG_TAG = re.compile(r"<img\b(?P<attrs>[^>]*)>", re.IGNORECASE)
_ATTR = re.compile(
    r"(?P<name>[\w:-]+)\s*=\s*(?:\"(?P<v1>[^\"]*)\"|'(?P<v2>[^']*)'|(?P<v3>[^\s>]+))"
)
_FIGURE = re.compile(r"<figure\b.*?</figure>", re.IGNORECASE | re.DOTALL)
_FIGCAPTION = re.compile(
    r"<figcaption\b[^>]*>(?P<text>.*?)</figcaption>", re.IGNORECASE | re.DOTALL
)
_ITALIC_LINE = re.compile(r"^\s*(?:\*(?!\*)(?P<a>[^*].*?)\*|_(?!_)(?P<b>[^_].*?)_)\s*$")
_CAPTION_BLOCK = re.compile(r"^\s*///\s*caption\b.*?\n(?P<text>.*?)\n\s*///", re.DOTALL)


def _resolve(src: str, page: Path, docs_dir: Path) -> str | None:
    parts = urlsplit(src)
    if parts.scheme or parts.netloc:
        return None
    target = unquote(parts.path)
    if not target:
        return None
    base = docs_dir if target.startswith("/") else page.parent
    return os.path.realpath(base / target.lstrip("/"))


def _attrs(text: str) -> dict[str, str]:
    return {
        m["name"].lower(): html.unescape(m["v1"] or m["v2"] or m["v3"] or "")
        for m in _ATTR.finditer(text)
    }


def _caption_after(text: str, end: int) -> str | None:
    """An italic line or a ``/// caption`` block right after the image ending at ``end``."""
    rest = text[end : end + 4000]
    line_end = rest.find("\n")
    if line_end < 0:
        return None
    if rest[:line_end].strip():  # more on the image's own line: not a figure
        return None
    following = rest[line_end + 1 :].lstrip("\n")
    block = _CAPTION_BLOCK.match(following)
    if block:
        return markdown_to_text(block["text"])
    first = following.split("\n", 1)[0]
    italic = _ITALIC_LINE.match(first)
    if italic:
        return italic["a"] or italic["b"]
    return None


def page_references(page: Path, text: str, docs_dir: Path) -> list[tuple[str, Source]]:
    """``(real image path, (source, text))`` for every image use on one page."""
    out: list[tuple[str, Source]] = []

    def add(src: str, source: str, value: str | None) -> None:
        target = _resolve(src, page, docs_dir)
        value = clean_text(markdown_to_text(value or "")) if value else ""
        if target and value:
            out.append((target, (source, value)))

    for m in _INLINE.finditer(text):
        add(m["src"], "markdown-alt", m["alt"].replace("\\", ""))
        add(m["src"], "markdown-title", m["t1"] or m["t2"] or m["t3"])
        add(m["src"], "markdown-caption", _caption_after(text, m.end()))
    definitions = {
        d["ref"].strip().lower(): (d["src"], d["title"]) for d in _DEFINITION.finditer(text)
    }
    for m in _REFERENCE.finditer(text):
        ref = (m["ref"] or m["alt"]).strip().lower()
        if ref in definitions:
            src, title = definitions[ref]
            add(src, "markdown-alt", m["alt"].replace("\\", ""))
            add(src, "markdown-title", title)
            add(src, "markdown-caption", _caption_after(text, m.end()))
    for m in _IMG_TAG.finditer(text):
        attrs = _attrs(m["attrs"])
        if "src" in attrs:
            add(attrs["src"], "markdown-alt", attrs.get("alt"))
            add(attrs["src"], "markdown-title", attrs.get("title"))
    for fig in _FIGURE.finditer(text):
        caption = _FIGCAPTION.search(fig.group(0))
        if not caption:
            continue
        body = fig.group(0)
        srcs = [_attrs(m["attrs"]).get("src") for m in _IMG_TAG.finditer(body)]
        srcs += [m["src"] for m in _INLINE.finditer(body)]
        for src in filter(None, srcs):
            add(src, "markdown-caption", re.sub(r"<[^>]+>", " ", caption["text"]))
    return out


def collect_references(docs_dir: Path | None) -> dict[str, list[Source]]:
    """Real image path -> the alt texts and captions pages give it (each text once)."""
    refs: dict[str, list[Source]] = defaultdict(list)
    if docs_dir is None:
        return refs
    docs_dir = Path(docs_dir)
    if not docs_dir.is_dir():
        log.warning("docs folder %s does not exist; no Markdown captions used", docs_dir)
        return refs
    for folder, dirs, files in os.walk(docs_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() not in MARKDOWN_SUFFIXES:
                continue
            page = Path(folder) / name
            try:
                if page.stat().st_size > MAX_PAGE_BYTES:
                    continue
                text = page.read_text(encoding="utf-8", errors="replace")
            except OSError as err:
                log.warning("cannot read %s (%s)", page, err.strerror)
                continue
            for target, source in page_references(page, text, docs_dir):
                if source not in refs[target]:
                    refs[target].append(source)
    return refs
