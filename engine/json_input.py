"""JSON from outside (a model's answer, a server's body, a REST request), parsed safely.

``json.loads`` recurses once per level of nesting, so ``[[[[...]]]]`` a few thousand
levels deep (well inside any size limit) raises ``RecursionError``: a traceback, not an
error a caller handles.  :func:`load_json` refuses nesting deeper than ``max_depth``
with a ``ValueError``, as it refuses malformed JSON (``json.JSONDecodeError`` is a
``ValueError`` too), so every caller's ``except ValueError`` covers both.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 32


class JSONTooDeepError(ValueError):
    """JSON nested deeper than the caller allows."""


def load_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)``, with more than ``max_depth`` levels of nesting a ValueError."""
    try:
        data = json.loads(text)
    except RecursionError:
        data = None
        too_deep = True
    else:
        too_deep = json_depth(data) > max_depth
    if too_deep:
        raise JSONTooDeepError(f"nests deeper than {max_depth} levels")
    return data


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: a hostile value cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest
