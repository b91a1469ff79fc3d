"""The one small interface every backend implements.

The pipeline builds a :class:`GenerateRequest` through a recipe and hands it to
whichever backend the config names; it never knows which one it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ImageRef:
    """An image in a prompt: a local file, identified in cache keys by its content hash."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class Message:
    """One chat turn; ``content`` mixes text and images in order."""

    role: str
    content: tuple[str | ImageRef, ...]

    @property
    def images(self) -> tuple[ImageRef, ...]:
        return tuple(p for p in self.content if isinstance(p, ImageRef))


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate.

    Chat recipes fill ``messages`` (the backend applies the model's own chat
    template); completion-style recipes fill ``prompt`` instead, a raw string in
    which each image of ``images`` stands where the recipe's placeholder is.

    ``choices`` and ``json_schema`` constrain the answer (llama.cpp grammar, a
    server's structured output, or scoring each choice): the text returned is then
    exactly one of ``choices``, or JSON valid against the schema.
    """

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    images: tuple[ImageRef, ...] = ()
    image_placeholder: str = "<image>"
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    repeat_penalty: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    json_schema: dict | None = None

    @property
    def all_images(self) -> tuple[ImageRef, ...]:
        return self.images + tuple(i for m in self.messages for i in m.images)

    def cache_payload(self) -> dict[str, Any]:
        """The request as plain data, images by content hash (never by path)."""

        def part(p: str | ImageRef) -> Any:
            return {"image": p.sha256} if isinstance(p, ImageRef) else p

        return {
            "messages": [[m.role, [part(p) for p in m.content]] for m in self.messages],
            "prompt": self.prompt,
            "images": [i.sha256 for i in self.images],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
            "stop": list(self.stop),
            "choices": list(self.choices) if self.choices is not None else None,
            "json_schema": self.json_schema,
        }


@dataclass
class Generation:
    """A model's answer and what it cost."""

    text: str
    prompt_tokens: int = 0
    """Prompt tokens submitted."""
    evaluated_prompt_tokens: int = 0
    """Prompt tokens actually run through the model (the rest came from a reused prefix)."""
    completion_tokens: int = 0
    seconds: float = 0.0
    """Generation time (prompt evaluation excluded where the backend can tell)."""
    cached: bool = False
    truncated: bool = False
    """The answer stopped at ``max_tokens`` rather than where the model ended it."""

    @property
    def tokens_per_s(self) -> float | None:
        if self.cached or not self.seconds or not self.completion_tokens:
            return None
        return self.completion_tokens / self.seconds


@dataclass
class Health:
    """What ``xcomposer models`` prints for one backend."""

    ok: bool
    backend: str
    model: str
    detail: str
    vision: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


TextCallback = Callable[[str], None]


class Backend(ABC):
    """A model runtime. Loads lazily: constructing one and asking its fingerprint is cheap."""

    #: How many requests may run at once (local runtimes: 1).
    concurrency: int = 1

    @property
    @abstractmethod
    def has_vision(self) -> bool:
        """Whether the model can look at images."""

    @abstractmethod
    def generate(self, request: GenerateRequest, on_text: TextCallback | None = None) -> Generation:
        """Generate an answer; ``on_text`` receives text pieces as they stream."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised text embeddings, one row per text."""
        raise ModelError(
            f"backend {type(self).__name__} does not embed text",
            "use the library's own embedding model (library.embeddings)",
        )

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies this model's answers in cache keys; never secrets, never loads the model."""

    @abstractmethod
    def health(self) -> Health:
        """Whether the backend can run, without loading the model where avoidable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model."""
