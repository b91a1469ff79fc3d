"""Cleaning model output: it is untrusted text, shaped here before it becomes an Article.

Nothing here interprets the text (no HTML, no paths): escaping happens where it is rendered.
"""

from __future__ import annotations

import re

_LEADING_MARKS = re.compile(r"^\s*(?:#+|\*+|-+|>|\d+[.):]|[A-Za-z][.)]\s)\s*")
_LABEL = re.compile(r"^\s*(?:caption|title|heading|answer|paragraph|标题|答案)\s*[:：]\s*", re.I)
_SENTENCE_END = re.compile(r"[.!?。！？](?=[\"'”’)\]]*(?:\s|$))")


def one_line(text: str, max_words: int | None = None) -> str:
    """A label-like answer (heading, caption, title) on one tidy line."""
    text = text.strip().splitlines()[0] if text.strip() else ""
    text = _LABEL.sub("", text)
    text = _LEADING_MARKS.sub("", text)
    text = text.strip().strip("\"'“”‘’`*_").strip()
    text = " ".join(text.split())
    if max_words is not None:
        words = text.split(" ")
        if len(words) > max_words:
            text = " ".join(words[:max_words])
    return text.rstrip(" ,;:-")


def prose(text: str, truncated: bool) -> list[str]:
    """A written section as paragraphs; a cut-off last sentence is dropped when ``truncated``."""
    text = text.replace("\r\n", "\n").strip()
    blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", text) if b.strip()]
    blocks = [_LABEL.sub("", b) for b in blocks if not b.startswith("#")]
    if truncated and blocks:
        last = blocks[-1]
        ends = list(_SENTENCE_END.finditer(last))
        if ends:
            blocks[-1] = last[: ends[-1].end()].strip()
    return [b for b in blocks if b]


def last_words(text: str, count: int = 30) -> str:
    words = text.split()
    return " ".join(words[-count:])


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph (all of it when no sentence end is found)."""
    match = _SENTENCE_END.search(text)
    return text[: match.end()] if match else text
