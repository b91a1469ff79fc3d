"""Prompt recipes: one per model family, kept as data in ``recipes/*.toml``.

A recipe turns a task (``outline``, ``section``, ``place``, ``caption``, ``select``,
``describe_*``, edits) and its fields into a :class:`GenerateRequest`: chat
messages for ``chat`` recipes (the model's own template does the rest), one raw
prompt string for ``raw`` recipes (``completion``, ``xcomposer2``).  In a
template, ``<image>`` marks where an image goes.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from .backends.base import GenerateRequest, ImageRef, Message
from .errors import ConfigError

IMAGE_MARK = "<image>"
RECIPE_NAMES = ("chat", "completion", "xcomposer2")
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}


@dataclass(frozen=True)
class Recipe:
    """A prompt family: its texts per language and how turns and images are laid out."""

    name: str
    version: str
    style: str  # "chat" | "raw"
    texts: dict[str, dict[str, str]]
    turn: str = ""
    image_placeholder: str = IMAGE_MARK
    paragraph_marker: str = ""
    digest: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """``name@version#digest``: in every cache key, so edited prompts never hit stale answers."""
        return f"{self.name}@{self.version}#{self.digest}"

    def text(self, task: str, lang: str) -> str:
        table = self.texts.get(lang) or self.texts["en"]
        if task in table:
            return table[task]
        if task in self.texts["en"]:
            return self.texts["en"][task]
        raise KeyError(f"recipe {self.name} has no task '{task}'")

    def numbered(self, paragraphs: list[str]) -> str:
        """Paragraphs one per line, numbered from 1 (with the family's marker, e.g. ``<Seg1>``)."""
        marker = self.paragraph_marker or "{index}."
        return "\n".join(f"{marker.format(index=i)} {p}" for i, p in enumerate(paragraphs, 1))

    def build(
        self,
        task: str,
        lang: str,
        images: tuple[ImageRef, ...] = (),
        language: str | None = None,
        insist_language: bool = False,
        **fields: object,
    ) -> GenerateRequest:
        """The request for ``task``; ``images`` fill the template's ``<image>`` marks in order.

        ``insist_language``: the model answered in another language before, so the
        output language is demanded again, more strongly, at the end of the prompt.
        """
        user = self.text(task, lang).format(**fields)
        if language and language != lang:
            name = LANGUAGE_NAMES.get(language, language)
            user += "\n" + self.text("language", lang).format(language=name)
        if insist_language:
            name = LANGUAGE_NAMES.get(language or lang, language or lang)
            user += "\n" + self.text("language_strict", lang).format(language=name)
        system = self.text("system", lang)
        pieces = user.split(IMAGE_MARK)
        if len(pieces) - 1 != len(images):
            raise ValueError(f"task {task} has {len(pieces) - 1} image marks, got {len(images)}")
        if self.style == "chat":
            content: list[str | ImageRef] = []
            for i, piece in enumerate(pieces):
                if piece.strip():
                    content.append(piece.strip("\n") if i else piece.rstrip("\n"))
                if i < len(images):
                    content.append(images[i])
            return GenerateRequest(
                messages=(
                    Message("system", (system,)),
                    Message("user", tuple(content)),
                )
            )
        prompt = self.turn.format(
            system=system, user=user.replace(IMAGE_MARK, self.image_placeholder)
        )
        return GenerateRequest(
            prompt=prompt, images=images, image_placeholder=self.image_placeholder
        )


def _load_table(name: str) -> dict:
    try:
        raw = resources.files("xcomposer").joinpath("recipes", f"{name}.toml").read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"unknown recipe '{name}'", f"use one of: {', '.join(RECIPE_NAMES)}"
        ) from None
    data = tomllib.loads(raw)
    parent = data.pop("extends", None)
    if parent:
        base = _load_table(parent)
        for lang in ("en", "zh"):
            data[lang] = base.get(lang, {}) | data.get(lang, {})
        data = {k: v for k, v in base.items() if k not in ("name", "version")} | data
    return data


@cache
def load_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (``chat``, ``completion`` or ``xcomposer2``)."""
    data = _load_table(name)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    return Recipe(
        name=data["name"],
        version=str(data["version"]),
        style=data.get("style", "chat"),
        texts={"en": data["en"], "zh": data.get("zh", {})},
        turn=data.get("turn", ""),
        image_placeholder=data.get("image_placeholder", IMAGE_MARK),
        paragraph_marker=data.get("paragraph_marker", ""),
        digest=digest,
    )


def detect_language(text: str) -> str:
    """``zh`` when a good share of the letters are CJK ideographs, else ``en``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return "zh" if cjk / len(letters) > 0.3 else "en"
