"""Article, Paragraph, Figure: plain data that round-trips through JSON and renders to Markdown."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


@dataclass
class Paragraph:
    """One block of text: ``heading`` paragraphs are section titles (rendered as ``##``)."""

    text: str
    kind: str = "text"  # "text" | "heading" | "verbatim" (a person's Markdown block, kept as is)


@dataclass
class Candidate:
    """An image the retrieval step offered for a figure."""

    image: str
    score: float
    sha256: str = ""


@dataclass
class Figure:
    """An image placed after paragraph ``after``.

    ``caption`` is written for the spot (it was the retrieval query); ``alt`` says
    what the image shows.  ``provenance`` records how each part was decided
    (``model``, ``cache``, ``retrieval-score``, ``person``).
    """

    after: int
    image: str
    caption: str
    alt: str
    score: float = 0.0
    sha256: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)


@dataclass
class Article:
    """An illustrated article: paragraphs in order, figures anchored after paragraphs."""

    title: str
    paragraphs: list[Paragraph]
    figures: list[Figure] = field(default_factory=list)
    language: str = "en"
    instruction: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    # -- JSON -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, **asdict(self)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        data = dict(data)
        data.pop("format", None)
        figures = []
        for f in data.pop("figures", []):
            f = dict(f)
            f["candidates"] = [Candidate(**c) for c in f.get("candidates", [])]
            figures.append(Figure(**f))
        paragraphs = [Paragraph(**p) for p in data.pop("paragraphs", [])]
        return cls(paragraphs=paragraphs, figures=figures, **data)

    @classmethod
    def from_json(cls, text: str) -> Article:
        return cls.from_dict(json.loads(text))

    # -- queries ----------------------------------------------------------
    def figures_after(self, index: int) -> list[Figure]:
        return [f for f in self.figures if f.after == index]

    @property
    def used_images(self) -> set[str]:
        return {f.sha256 or f.image for f in self.figures}

    def text_until(self, index: int) -> str:
        """The article's text up to and including paragraph ``index``."""
        return "\n\n".join(p.text for p in self.paragraphs[: index + 1])

    # -- Markdown ---------------------------------------------------------
    def to_markdown(
        self,
        image_url: Callable[[Figure], str] | None = None,
        title_level: int = 1,
        figure_html: bool = False,
    ) -> str:
        """Render to Markdown.

        ``image_url`` maps a figure to the URL written in the page (default: its
        path as stored).  With ``figure_html`` figures become ``<figure>``
        elements with escaped caption and alt text; otherwise a Markdown image
        followed by an italic caption line.
        """
        url_of = image_url or (lambda f: Path(f.image).as_posix())
        out: list[str] = []
        if self.title and title_level:
            out.append(f"{'#' * title_level} {self.title}")
        for i, para in enumerate(self.paragraphs):
            if para.kind == "heading":
                out.append(f"{'#' * (title_level + 1)} {para.text}")
            else:
                out.append(para.text)
            for fig in self.figures_after(i):
                out.append(render_figure(fig, url_of(fig), figure_html))
        return "\n\n".join(out) + "\n"


def render_figure(fig: Figure, url: str, as_html: bool) -> str:
    """One figure as Markdown (or as an HTML ``<figure>``); text is escaped either way."""
    if as_html:
        return (
            f'<figure class="xcomposer-figure">\n'
            f'<img src="{html.escape(url, quote=True)}" alt="{html.escape(fig.alt, quote=True)}" '
            f'loading="lazy">\n'
            f"<figcaption>{html.escape(fig.caption)}</figcaption>\n</figure>"
        )
    alt = _md_escape(fig.alt).replace("[", "\\[").replace("]", "\\]")
    target = url.replace(" ", "%20").replace(")", "%29").replace("(", "%28")
    return f"![{alt}]({target})\n*{_md_escape(fig.caption)}*"


def _md_escape(text: str) -> str:
    """Escape Markdown and HTML in one line of model text."""
    text = " ".join(text.split())
    text = html.escape(text, quote=False)
    for ch in "\\`*_{}#|":
        text = text.replace(ch, "\\" + ch)
    return text
