"""Alt text and captions that Markdown pages under a docs folder already give an image.

A writer who used an image before has described it: ``![alt](path "title")``,
reference images (``![alt][ref]`` + ``[ref]: path``), HTML ``<img alt=...>``,
``<figcaption>`` in the same ``<figure>``, an italic line right below the image
(``*A caption*``), and pymdown's ``/// caption`` block.  Markdown images are
read as everywhere else (:mod:`xcomposer.page_images`: outside code and comments,
paths resolved like MkDocs does).
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections import defaultdict
from pathlib import Path

from ..page_images import markdown_images, resolve_src
from .sources import Source, clean_text, markdown_to_text

log = logging.getLogger("xcomposer.library")

MAX_PAGE_BYTES = 2_000_000
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown"}

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
        target = resolve_src(src, page, docs_dir)
        value = clean_text(markdown_to_text(value or "")) if value else ""
        if target and value:
            out.append((str(target), (source, value)))

    for image in markdown_images(text):
        add(image.src, "markdown-alt", image.alt.replace("\\", ""))
        add(image.src, "markdown-title", image.title_text)
        add(image.src, "markdown-caption", _caption_after(text, image.end))
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
        srcs += [image.src for image in markdown_images(body)]
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
