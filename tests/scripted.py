"""A scripted backend for pipeline logic and for answers a real model cannot be made to give.

Never the only test of a feature: every stage also runs on the real embedded model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from xcomposer.backends.base import Backend, GenerateRequest, Generation, Health


def request_text(request: GenerateRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(p for m in request.messages for p in m.content if isinstance(p, str))


def default_answer(request: GenerateRequest) -> str:
    """A valid answer for any request: the first choice, minimal JSON, or fixed prose."""
    if request.choices is not None:
        return request.choices[0]
    if request.json_schema is not None:
        schema = request.json_schema
        if schema.get("type") == "array":
            n = schema.get("minItems", 1)
            return json.dumps([f"Scripted heading {i + 1}" for i in range(n)])
        return "{}"
    return "Scripted prose about the subject. It has two sentences."


class ScriptedBackend(Backend):
    """Answers with ``answer(request)`` (default: :func:`default_answer`); records every request."""

    def __init__(
        self,
        answer: Callable[[GenerateRequest], str] | None = None,
        vision: bool = False,
        name: str = "scripted",
        concurrency: int = 1,
    ) -> None:
        self.answer = answer or default_answer
        self.concurrency = concurrency
        self.vision = vision
        self.name = name
        self.requests: list[GenerateRequest] = []

    @property
    def has_vision(self) -> bool:
        return self.vision

    def generate(self, request: GenerateRequest, on_text: Any = None) -> Generation:
        self.requests.append(request)
        text = self.answer(request)
        return Generation(
            text=text,
            prompt_tokens=10,
            evaluated_prompt_tokens=10,
            completion_tokens=len(text.split()),
            seconds=0.01,
        )

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": self.name, "vision": self.vision}

    def health(self) -> Health:
        return Health(True, self.name, "scripted", "answers from a script", vision=self.vision)
