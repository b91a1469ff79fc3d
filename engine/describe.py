"""Describing one image: a caption, alt text, an explanation, or an answer to a question."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .backends.base import ImageRef
from .errors import InputError, ModelError
from .images import file_sha256, open_image
from .text_cleaning import one_line

if TYPE_CHECKING:
    from .compose import ModelCaller

DescribeStyle = Literal["caption", "alt", "explain"]
STYLES = ("caption", "alt", "explain")
DESCRIBE_STYLES = STYLES
NO_VISION = (
    "no vision model is configured, so images cannot be described",
    # Option names, not CLI flags: the same keys serve xcomposer.toml, mkdocs.yml and the
    # CLI's --model/--mmproj/--backend, so every front end can show this line as it is.
    "configure one: set 'model' to a vision GGUF and 'mmproj' to its projector, "
    "or 'backend' to transformers or openai with a vision-language model",
)


def image_ref(path: str | Path) -> ImageRef:
    """Validate an image file and name it by content hash."""
    path = Path(path)
    open_image(path).close()
    return ImageRef(path.resolve(), file_sha256(path))


def describe_image(
    caller: ModelCaller,
    image: str | Path,
    question: str | None = None,
    style: DescribeStyle = "caption",
    lang: str = "en",
) -> str:
    """The model's description of ``image`` (one line for caption/alt; a paragraph otherwise)."""
    if style not in STYLES:
        raise InputError(f"unknown description style '{style}'", f"use one of: {', '.join(STYLES)}")
    if question is not None and not question.strip():
        raise InputError("the question is empty", "ask something about the image, or leave it out")
    ref = image_ref(image)
    if not caller.has_vision("describe"):
        raise ModelError(*NO_VISION)
    task = "describe_question" if question else f"describe_{style}"
    recipe = caller.recipe("describe")
    request = recipe.build(task, lang, images=(ref,), question=question or "")
    short = style in ("caption", "alt") and not question
    request = replace(request, max_tokens=60 if short else 256, temperature=0.0)
    answer = caller.ask("describe", request).text
    return one_line(answer, 40) if short else " ".join(answer.split())
