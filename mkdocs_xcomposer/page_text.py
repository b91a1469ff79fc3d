"""What a page's Markdown says around its blocks: its own h1, its front matter."""

from __future__ import annotations

import os
import re
from typing import Any

_H1 = re.compile(r"^(#[ \t]+\S|[^\n]+\n=+[ \t]*$)", re.MULTILINE)


def has_h1(markdown: str, page_tasks: list[tuple[Any, Any]]) -> bool:
    """Whether the page has its own level-1 heading outside its blocks (``(item, _)`` pairs
    whose items have ``start``/``end`` offsets)."""
    parts, pos = [], 0
    for item, _ in page_tasks:
        parts.append(markdown[pos : item.start])
        pos = item.end
    parts.append(markdown[pos:])
    return any(_H1.search(without_fences(p)) for p in parts)


def without_fences(text: str) -> str:
    return re.sub(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", "", text, flags=re.MULTILINE | re.DOTALL)


def lines_before(raw: str, markdown: str) -> int:
    if not markdown or raw.startswith(markdown):
        return 0
    pos = raw.find(markdown)
    return raw[:pos].count("\n") if pos > 0 else 0


def shown(path: str | None) -> str:
    if not path:
        return "mkdocs.yml"
    try:
        shown = os.path.relpath(path)
    except ValueError:
        return path
    return path if shown.startswith("..") else shown
