"""A model's answer as the pipeline may take it in: no reasoning, no control characters, bounded.

Every answer, from every backend and from the cache, passes ``admit_answer`` in
``Engine.ask`` before anything reads, stores or prints it.  Reasoning models
write their thoughts inside ``<think>`` (or ``<thinking>``, ``<reasoning>``,
``<reflection>``) blocks: those never reach an article, and a JSON answer after
one still parses.  An answer much longer than its token budget allows is cut.
"""

from __future__ import annotations

import re

from .backends.base import GenerateRequest, Generation
from .safe_text import terminal_safe

_TAGS = "think|thinking|reasoning|reflection"
_CLOSED = re.compile(rf"<({_TAGS})\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_OPENING = re.compile(rf"<(?:{_TAGS})\b[^>]*>", re.IGNORECASE)
_CLOSING = re.compile(rf"</(?:{_TAGS})\s*>", re.IGNORECASE)

CHARS_PER_TOKEN = 32
"""Headroom for the size bound: no tokenizer writes more characters than this per token."""


def without_reasoning(text: str) -> str:
    """``text`` without reasoning blocks: closed ones anywhere; an unclosed one to the end;
    and everything before a closing tag whose opening tag was in the prompt."""
    original = text
    text = _CLOSED.sub("", text)
    closing = list(_CLOSING.finditer(text))
    if closing:
        text = text[closing[-1].end() :]
    opening = _OPENING.search(text)
    if opening:
        text = text[: opening.start()]
    return text if text == original else text.strip()


def max_answer_chars(max_tokens: int) -> int:
    """The most characters an answer of ``max_tokens`` tokens may have."""
    return 1024 + CHARS_PER_TOKEN * max(max_tokens, 0)


def admit_answer(answer: Generation, request: GenerateRequest) -> Generation:
    """``answer`` cleaned in place (and returned): reasoning and control characters removed,
    its length bounded by the request's token budget (a cut answer counts as truncated)."""
    text = terminal_safe(without_reasoning(answer.text))
    limit = max_answer_chars(request.max_tokens)
    if len(text) > limit:
        text = text[:limit]
        answer.truncated = True
    answer.text = text
    return answer
