"""Structured output over OpenAI-compatible APIs: the request forms servers honour, and checks.

Servers differ in how they take a constraint.  ``constraint_fields`` writes one
form; ``check_answer`` verifies what came back, whatever the server claims to
support, so an ignored constraint is caught instead of becoming a wrong answer.
``schema_error`` checks JSON against the subset of JSON Schema that recipes use
(types, enum, const, properties, required, additionalProperties, items,
min/max lengths, items and values, anyOf/oneOf/allOf).
"""

from __future__ import annotations

import json
from typing import Any

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
    """``(answer, "")`` when ``text`` satisfies the request's constraint, else ``(None, why)``."""
    shown = one_line(repr(text), 120)
    if request.choices is not None:
        choices = request.choices
        for candidate in (text, text.strip()):
            if candidate in choices:
                return candidate, ""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = data.get("answer")
        if isinstance(data, str) and data in choices:
            return data, ""
        listed = one_line(", ".join(repr(c) for c in choices), 160)
        return None, f"the answer {shown} is not one of {listed}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"the answer {shown} is not JSON ({err.msg})"
    error = schema_error(data, request.json_schema or {})
    if error:
        return None, f"the answer {shown} does not match the schema ({error})"
    return text.strip(), ""


_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def schema_error(value: Any, schema: dict, where: str = "$") -> str | None:
    """The first way ``value`` breaks ``schema`` (a practical subset of JSON Schema), or None."""
    if not isinstance(schema, dict):
        return None
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        ok = any(
            isinstance(value, _TYPES.get(n, object))
            and not (isinstance(value, bool) and n in ("integer", "number"))
            for n in names
        )
        if not ok:
            return f"{where} is not {' or '.join(names)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} is not one of the allowed values"
    if "const" in schema and value != schema["const"]:
        return f"{where} is not {schema['const']!r}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{where} is too short"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where} is too long"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where} is below {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where} is above {schema['maximum']}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return f"{where} has fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where} has more than {schema['maxItems']} items"
        for i, item in enumerate(value):
            if error := schema_error(item, schema.get("items", {}), f"{where}[{i}]"):
                return error
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return f"{where}.{name} is missing"
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                sub = props[name]
            elif extra is False:
                return f"{where}.{name} is not allowed"
            else:
                sub = extra if isinstance(extra, dict) else {}
            if error := schema_error(item, sub, f"{where}.{name}"):
                return error
    for key in ("anyOf", "oneOf"):
        if key in schema and all(schema_error(value, s, where) for s in schema[key]):
            return f"{where} matches none of {key}"
    for sub in schema.get("allOf", []):
        if error := schema_error(value, sub, where):
            return error
    return None
