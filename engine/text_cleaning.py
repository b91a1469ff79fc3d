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


# ------------------------------------------------------------------ hygiene
_FIELD = re.compile(r"\{[a-z_]+\}")
_CJK = re.compile(r"[\u3400-\u9fff]")
_MARKDOWN = re.compile(r"`+|\*{1,3}|(?<!\w)_{1,3}|_{1,3}(?!\w)|~~|^#+\s*|^>\s*")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_CLAUSE_END = re.compile(r"[,;:，；：、—–]\s*")
# Words a phrase cannot end on: a caption cut after one of them reads as cut.
_DANGLING = frozenset(
    "a an the of to and or but with for from by in on at as into than that which who whose "
    "its their his her our your".split()
)


_EXAMPLES = re.compile(r"[(（](?:for example|e\.g\.|例如)[^)）]*[)）]")
_WORD = re.compile(r"[\w']+")
_CJK_RUN = re.compile(r"[\u3400-\u9fff0-9]+")
#: An echo is this many words (or CJK characters and digits) in a row taken from a prompt.
ECHO_WORDS = 5
ECHO_CJK = 5


def _literals(template: str) -> list[str]:
    """The prompt's own words: the template without its fields and its example lists."""
    return [p for p in _FIELD.split(_EXAMPLES.sub(" ", template)) if p.strip()]


def _shingles(text: str) -> set[str]:
    words = [w.casefold() for w in _WORD.findall(_CJK_RUN.sub(" ", text))]
    out = {" ".join(words[i : i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)}
    for run in _CJK_RUN.findall(text):
        out |= {"\0" + run[i : i + ECHO_CJK] for i in range(len(run) - ECHO_CJK + 1)}
    return out


def echoes_prompt(text: str, templates: list[str]) -> bool:
    """Whether ``text`` repeats a run of a prompt's own words (its scaffolding, not its fields)."""
    prompt: set[str] = set()
    for template in templates:
        for literal in _literals(template):
            prompt |= _shingles(literal)
    return bool(prompt & _shingles(text))


# A sentence ends at . ! ? before white space (not inside 1.6.1, pypi.org or a.b_c), or at
# a CJK full stop, which needs none.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def _sentences(line: str) -> list[str]:
    """``line`` cut into sentences, each with the white space after it (they join back to it)."""
    pieces, start = [], 0
    for match in _SENTENCE_BREAK.finditer(line):
        if match.end() > start:
            pieces.append(line[start : match.end()])
            start = match.end()
    pieces.append(line[start:])
    return [p for p in pieces if p]


def remove_scaffolding(text: str, templates: list[str]) -> str:
    """``text`` without any prompt text the model echoed back.

    A template line that comes back whole (its fields filled with anything on the
    same line, e.g. ``The previous section ended: "..."``) goes with what filled it;
    then every sentence that still repeats a run of the prompt's words goes.
    """
    for template in templates:
        for line in template.splitlines():
            parts = _FIELD.split(line.strip())
            if sum(len(p.strip()) for p in parts) < 8:
                continue
            pattern = "[^\\n]{0,400}?".join(re.escape(p) for p in parts)
            if line.strip().endswith("}"):
                pattern += "[^\\n]*"
            text = re.sub(pattern, "\n", text)
    kept_lines = []
    for line in text.split("\n"):
        kept = (s for s in _sentences(line) if s.strip() and not echoes_prompt(s, templates))
        kept_lines.append(" ".join("".join(kept).split()))
    text = "\n".join(kept_lines)
    text = re.sub(r"^[\s\"'“”‘’:：,，.。]+", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def without_heading(text: str, heading: str) -> str:
    """A section's text without the heading the model repeated in front of it
    (``What It Is: The day...`` under the heading "What It Is")."""
    lead = re.match(
        r"\s*[#*_\s]*" + re.escape(heading.strip()) + r"[*_ \t]*(?:[:：\-–—]|\n)\s*", text, re.I
    )
    if lead is None or not heading.strip():
        return text
    rest = text[lead.end() :]
    return rest if rest.strip() else text


def plain_text(text: str) -> str:
    """One line of text with Markdown syntax taken out (links keep their words)."""
    text = _LINK.sub(r"\1", " ".join(text.split()))
    text = _MARKDOWN.sub("", text)
    return " ".join(text.split())


def heading_text(text: str, max_chars: int = 60, cut: bool = False) -> str:
    """A heading within ``max_chars``, ending on a word boundary.

    ``cut``: the text was stopped at its length limit, so its last word may be
    partial and is dropped.  Trailing punctuation and dangling words go too.
    """
    text = plain_text(one_line(text))
    spaced = " " in text
    shortened = cut
    if cut and spaced:
        text = text.rsplit(" ", 1)[0]
    if len(text) > max_chars:
        text = text[: max_chars + 1]
        text = text.rsplit(" ", 1)[0] if spaced else text[:max_chars]
        shortened = True
    text = _trim_phrase(text) if shortened else text.rstrip(" ,;:-–—、，；：")
    return text.rstrip(".。")


def _trim_phrase(text: str) -> str:
    text = text.rstrip(" ,;:-–—、，；：")
    words = text.split(" ")
    while len(words) > 1 and words[-1].casefold() in _DANGLING:
        words.pop()
        text = " ".join(words).rstrip(" ,;:-–—")
        words = text.split(" ")
    return text


def caption_text(text: str, max_words: int = 20, truncated: bool = False) -> str:
    """A caption: a whole sentence, or a clean phrase, with no Markdown syntax.

    The first sentence is kept; one longer than ``max_words`` (or cut off at the
    token limit, ``truncated``) is shortened to its last whole clause, else to a
    phrase that does not end on a partial or dangling word.
    """
    sentence = first_sentence(plain_text(one_line(text)))
    ended = bool(_SENTENCE_END.search(sentence))
    cjk = len(_CJK.findall(sentence)) > len(sentence) / 3
    words = sentence.split(" ")
    limit = max_words * 2 if cjk else max_words
    length = len(sentence) if cjk else len(words)
    if length <= limit and (ended or not truncated):
        return sentence
    head = sentence[:limit] if cjk else " ".join(words[:limit])
    clauses = list(_CLAUSE_END.finditer(head))
    for clause in reversed(clauses):  # the longest whole clause that says something
        kept = head[: clause.start()]
        if (len(kept) >= 6) if cjk else (len(kept.split()) >= 4):
            return _trim_phrase(kept)
    if not cjk and length <= limit and len(words) > 1:
        head = head.rsplit(" ", 1)[0]  # cut at the token limit: the last word may be partial
    return _trim_phrase(head)
