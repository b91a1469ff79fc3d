"""Article, Paragraph, Figure: plain data that round-trips through JSON and renders to Markdown."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .safe_text import (
    MAX_LINE_CHARS,
    figure_fragment,
    figure_html,
    html_text,
    json_safe,
    markdown_figure,
    markdown_heading,
    markdown_paragraphs,
    sanitise_html,
    terminal_safe,
    url_path,
)

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
        return json_safe(json.dumps(self.to_dict(), ensure_ascii=False, indent=indent))

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
    def parse(cls, data: Any) -> Article:
        """An article from JSON data someone sent back (a client, a file), or an
        :class:`InputError` in one line when it is not article JSON."""
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError):
            raise InputError(
                "the article is not valid article JSON",
                "send the 'article' of an earlier result unchanged",
            ) from None

    @classmethod
    def from_json(cls, text: str) -> Article:
        return cls.from_dict(json.loads(text))

    def with_image_paths(self, path: Callable[[str], str]) -> Article:
        """A copy whose figures and candidates name their images by ``path(image)``: paths
        relative to a site or a notebook's root for storing and showing, absolute again
        for use."""
        copy = Article.from_dict(self.to_dict())
        for fig in copy.figures:
            fig.image = path(fig.image)
            for cand in fig.candidates:
                cand.image = path(cand.image)
        return copy

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
    @property
    def model_written(self) -> bool:
        """Whether the paragraphs are the model's (composed) rather than a person's (illustrated)."""
        return bool(self.instruction)

    def to_markdown(
        self,
        image_url: Callable[[Figure], str] | None = None,
        title_level: int = 1,
        figure_html: bool = False,
        caption_paragraph: bool = False,
    ) -> str:
        """Render to Markdown through the safe renderer (``xcomposer.safe_text``).

        Model text (title, headings, the paragraphs of a composed article, captions,
        alt text) renders as literal text: no HTML, links, images or block structure
        can come out of it.  A person's text (an illustrated article's paragraphs,
        ``verbatim`` blocks) stays as written, made terminal-safe.  ``image_url`` maps a
        figure to the file path written in the page (default: its path as stored); it
        is URL-encoded here.  With ``figure_html`` figures become sanitised ``<figure>``
        elements; otherwise a Markdown image followed by an italic caption line (a
        paragraph of its own with ``caption_paragraph``, as in notebook cells).
        """
        url_of = image_url or (lambda f: Path(f.image).as_posix())
        out: list[str] = []
        for text, _heading, figures in self.markdown_parts(title_level):
            out.append(text)
            out.extend(
                render_figure(fig, url_of(fig), figure_html, caption_paragraph) for fig in figures
            )
        return "\n\n".join(out) + "\n"

    def to_html(
        self,
        image_url: Callable[[Figure], str | None] | None = None,
        *,
        data_images: bool = False,
        numbered: bool = False,
    ) -> str:
        """The article as one sanitised HTML fragment (a preview): every text escaped, figures
        as ``<figure>`` elements, a figure whose ``image_url`` is ``None`` as its path.

        ``data_images``: figure URLs may be base64 ``data:`` images (a notebook's
        attachments).  ``numbered``: each paragraph shows its index (what an edit names).
        """
        url_of = image_url or (lambda f: url_path(Path(f.image).as_posix()))
        out = [f"<h2>{html_text(self.title, MAX_LINE_CHARS)}</h2>"] if self.title else []
        for i, para in enumerate(self.paragraphs):
            text = html_text(para.text)
            if para.kind == "heading":
                out.append(f"<h3>{text}</h3>")
            elif para.kind == "verbatim":
                out.append(f"<pre>{text}</pre>")
            else:
                index = f'<span class="xcomposer-index">[{i}]</span> ' if numbered else ""
                out.append(f"<p>{index}{text}</p>")
            for fig in self.figures_after(i):
                url = url_of(fig)
                if url is None:
                    caption = html_text(fig.caption, MAX_LINE_CHARS)
                    shown = f"<code>{html_text(fig.image)}</code><figcaption>{caption}</figcaption>"
                    out.append(f"<figure>{shown}</figure>")
                else:
                    out.append(figure_fragment(url, fig.alt, fig.caption, data_images=data_images))
        return sanitise_html("\n".join(out), data_images=data_images)  # once, as a whole

    def markdown_parts(
        self, title_level: int = 1, *, model_written: bool | None = None, exact: bool = False
    ) -> list[tuple[str, bool, list[Figure]]]:
        """The title and each paragraph as Markdown by the one policy of :meth:`to_markdown`,
        each with whether it opens a section (the title, a heading) and the figures after
        it: for front ends that lay an article out their own way (notebook cells, pages).

        The title and headings are model text on one line (``<``/``>`` shown as ``‹ ›``:
        a heading may become the page's ``<title>``); ``title_level`` 0 leaves the title
        out, headings one level below it (at least ``##``).  A composed article's text
        renders as literal text, its blank-line paragraphs kept.  A person's text
        (``model_written`` False; default: :attr:`model_written`) and ``verbatim``
        blocks stay as written: made terminal-safe, or with ``exact`` untouched (a page
        that holds them already).
        """
        model = self.model_written if model_written is None else model_written
        parts: list[tuple[str, bool, list[Figure]]] = []
        if self.title and title_level:
            parts.append((f"{'#' * title_level} {markdown_heading(self.title)}", True, []))
        section = "#" * min(max(title_level, 1) + 1, 6)
        for i, para in enumerate(self.paragraphs):
            if para.kind == "heading":
                text = f"{section} {markdown_heading(para.text)}"
            elif para.kind == "text" and model:
                text = markdown_paragraphs(para.text)
            else:
                text = para.text if exact else terminal_safe(para.text)
            parts.append((text, para.kind == "heading", self.figures_after(i)))
        return parts


def render_figure(fig: Figure, url: str, as_html: bool, caption_paragraph: bool = False) -> str:
    """One figure as Markdown (or as a sanitised HTML ``<figure>``); model text escaped either way."""
    target = url_path(url)
    if as_html:
        return figure_html(target, fig.alt, fig.caption)
    return markdown_figure(target, fig.alt, fig.caption, caption_paragraph)
