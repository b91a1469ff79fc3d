"""Structured output over OpenAI-compatible APIs: the request forms servers honour, and checks.

Servers differ in how they take a constraint.  ``constraint_fields`` writes one
form; ``check_answer`` verifies what came back, whatever the server claims to
support, so an ignored constraint is caught instead of becoming a wrong answer.
``schema_error`` checks JSON with ``jsonschema`` (every keyword: ``pattern``,
``uniqueItems``, ``oneOf`` as exactly one, ...), for every backend.
"""

from __future__ import annotations

import json
from typing import Any

from ..json_input import load_json
from .base import GenerateRequest
from .http_client import one_line

DIALECTS = {
    ("/chat/completions", "choice"): ("json_schema", "json_object", "guided", "grammar"),
    ("/chat/completions", "json"): ("json_schema", "json_object", "guided"),
    ("/completions", "choice"): ("json_schema", "guided", "grammar"),
    ("/completions", "json"): ("json_schema", "guided"),
}
"""Structured-output forms to try, per endpoint and constraint kind, in order."""


def constraint_fields(dialect: str, request: GenerateRequest) -> dict[str, Any]:
    choices = list(request.choices) if request.choices is not None else None
    if choices is not None:
        schema: dict = {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": choices}},
            "required": ["answer"],
            "additionalProperties": False,
        }
        # Room for the {"answer": ...} wrapper: a budget sized for the bare choice would cut
        # the JSON short.  The constraint ends the answer anyway.
        wrapped = {"max_tokens": max(request.max_tokens, 24 + max(map(len, choices), default=0))}
    else:
        schema = request.json_schema or {}
        wrapped = {}
    if dialect == "json_schema":
        spec = {"name": "answer", "schema": schema}
        return {"response_format": {"type": "json_schema", "json_schema": spec}} | wrapped
    if dialect == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}} | wrapped
    if dialect == "guided":
        return {"guided_choice": choices} if choices is not None else {"guided_json": schema}
    if dialect == "grammar" and choices is not None:
        return {"grammar": "root ::= " + " | ".join(json.dumps(c) for c in choices)}
    raise AssertionError(dialect)


def check_answer(text: str, request: GenerateRequest) -> tuple[str | None, str]:
    """``(answer, "")`` when ``text`` satisfies the request's constraint, else ``(None, why)``.

    A reasoning block before the answer (``<think>...</think>``) is not part of it.
    Nothing is repaired: an answer that breaks its constraint is reported.
    """
    from ..answers import without_reasoning

    text = without_reasoning(text)
    shown = one_line(repr(text), 120)
    if request.choices is not None:
        choices = request.choices
        for candidate in (text, text.strip()):
            if candidate in choices:
                return candidate, ""
        try:
            data = load_json(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = data.get("answer")
        if isinstance(data, str) and data in choices:
            return data, ""
        listed = one_line(", ".join(repr(c) for c in choices), 160)
        return None, f"the answer {shown} is not one of {listed}"
    try:
        data = load_json(text)
    except ValueError as err:
        return None, f"the answer {shown} is not JSON ({getattr(err, 'msg', err)})"
    clean = _terminal_safe_strings(data)  # JSON escapes (\u001b, \u202e) hide them from text
    error = schema_error(clean, request.json_schema or {})
    if error:
        return None, f"the answer {shown} does not match the schema ({error})"
    return (text.strip() if clean == data else json.dumps(clean, ensure_ascii=False)), ""


def _terminal_safe_strings(value: Any) -> Any:
    """``value`` with every string in it (keys too) made terminal-safe."""
    from ..safe_text import terminal_safe

    if isinstance(value, str):
        return terminal_safe(value)
    if isinstance(value, list):
        return [_terminal_safe_strings(v) for v in value]
    if isinstance(value, dict):
        return {terminal_safe(k): _terminal_safe_strings(v) for k, v in value.items()}
    return value


def schema_error(value: Any, schema: dict, where: str = "$") -> str | None:
    """The most relevant way ``value`` breaks ``schema`` (JSON Schema, checked by
    ``jsonschema`` with the draft the schema names, 2020-12 by default), or None."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as err:
        return f"the schema itself is invalid: {one_line(err.message, 120)}"
    error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(value))
    if error is None:
        return None
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where}{path}: {one_line(error.message, 160)}"
