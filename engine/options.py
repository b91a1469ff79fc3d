"""What one compose, illustrate, describe or edit may ask for: the one validation with bounds.

The CLI, the MkDocs plugin (block options) and the Jupyter REST API all check
their options through these models, so a bound lives in one place::

    from xcomposer import ComposeOptions, OptionError
    try:
        options = ComposeOptions.parse({"candidates": 12})
    except OptionError as err:   # an InputError: one line, naming the option and the fix
        print(err.option, err)   # candidates  candidates must be a whole number from 1 to 10 ...

Options are typed strictly: ``true`` is not a number and ``no`` is not a language
(YAML reads ``no`` and ``off`` as booleans).  Where an option means on or off, an
adapter declares it as a :data:`Switch`, which takes YAML's booleans and their words.
Adapters extend a model with their own fields by subclassing it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError
from pydantic.fields import FieldInfo

from .errors import InputError, TooLargeError

#: Selection names each candidate with a letter A..J: more than ten cannot be offered.
MAX_CANDIDATES = 10
#: A fixed number of images above this is a typo, not a wish (each costs model calls).
MAX_IMAGES = 20
DESCRIBE_STYLE = Literal["caption", "alt", "explain"]

_ON = frozenset({"on", "yes", "true", "1"})
_OFF = frozenset({"off", "no", "false", "0"})


class OptionError(InputError):
    """A bad option: ``option`` names it (``None`` for the whole set), ``str(err)`` says the fix."""

    def __init__(self, what: str, fix: str | None = None, option: str | None = None) -> None:
        super().__init__(what, fix)
        self.option = option


def _switch(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _ON | _OFF:
        return value.strip().lower() in _ON
    return value


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


#: An on/off option: ``true``/``false`` and ``on``/``off``/``yes``/``no`` (YAML's booleans).
Switch = Annotated[bool, BeforeValidator(_switch), Strict()]
Count = Annotated[int, Strict()]


def _image_count(value: Any) -> Any:
    """``auto``, a number, or a number written as text (the CLI's ``-n 2``)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


ImageCount = Annotated[
    Literal["auto"] | Annotated[int, Strict(), Ge(0), Le(MAX_IMAGES)], BeforeValidator(_image_count)
]


class _Options(BaseModel):
    """Strict, frozen, unknown keys refused; construction raises :class:`OptionError`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise _option_error(type(self), err) from None

    @classmethod
    def parse(cls, values: Mapping[str, Any] | _Options | None = None, **more: Any) -> Any:
        """Options from a mapping (a block's, a request body's) and keywords; ``None`` values
        mean "the default".  An instance of ``cls`` is returned as it is (updated by ``more``)."""
        if isinstance(values, _Options):  # an adapter's subclass too: only ``cls``'s fields
            values = values.model_dump(exclude_unset=True, include=set(cls.model_fields))
        data = {k: v for k, v in {**(values or {}), **more}.items() if v is not None}
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise _option_error(cls, err) from None


class IllustrateOptions(_Options):
    """Images for text a person wrote."""

    n_images: ImageCount = "auto"
    """A fixed number of images (0 to 20), or ``auto`` (the model decides, 1 to 4)."""
    candidates: Annotated[Count, Ge(1), Le(MAX_CANDIDATES)] = 4
    """Images retrieved per spot for the selection step (1 to 10)."""
    seed: Count | None = None
    """Overrides the configured sampling seed."""
    min_score: Annotated[float, Strict(), Ge(-1.0), Le(1.0)] | None = None
    """``auto``'s threshold on the placement evidence (-1 to 1); default: calibrated for
    the embedding model."""


class ComposeOptions(IllustrateOptions):
    """How one article is written and illustrated."""

    language: Annotated[str, Strict(), MinLen(2), MaxLen(35)] | None = None
    """Output language (``en``, ``zh`` ...); default: the instruction's."""
    sections: Annotated[Count, Ge(1), Le(12)] = 4
    """Sections in the outline (1 to 12)."""
    words: Annotated[Count, Ge(10), Le(1000)] = 80
    """Words per section (10 to 1000)."""
    title: Annotated[str, Strict(), MaxLen(200)] | None = None
    """Use this title instead of asking the model for one."""


class DescribeOptions(_Options):
    """A caption, alt text, an explanation, or an answer about one image."""

    question: (
        Annotated[str, BeforeValidator(_stripped), Strict(), MinLen(1), MaxLen(2000)] | None
    ) = None
    """A question about the image (then ``style`` is not used)."""
    style: DESCRIBE_STYLE = "caption"
    """``caption``, ``alt`` (alt text) or ``explain``."""
    language: Annotated[str, Strict(), MinLen(2), MaxLen(35)] | None = None
    """Answer language; default: the question's, else English."""


class EditOptions(_Options):
    """Options shared by the edit operations (rewrite, insert or replace an image ...)."""

    candidates: Annotated[Count, Ge(1), Le(MAX_CANDIDATES)] = 4
    """Images retrieved for an inserted or replaced image (1 to 10)."""
    seed: Count | None = None
    """Overrides the configured sampling seed."""


EDIT_OPS = (
    "rewrite",
    "expand",
    "shorten",
    "insert_paragraph",
    "insert_image",
    "replace_image",
    "remove_image",
    "choose_image",
)
Index = Annotated[int, Strict(), Ge(0)]
Words = Annotated[str, Strict(), MaxLen(2000)]


class Edit(EditOptions):
    """One edit of an article by name, with what it acts on: what a panel's buttons and the
    REST API send (:meth:`xcomposer.Engine.edit`)."""

    op: Literal[EDIT_OPS]  # type: ignore[valid-type]
    """``rewrite``, ``expand``, ``shorten`` (paragraph ``index``), ``insert_paragraph``
    (after paragraph ``after``, about ``topic``), ``insert_image`` (after ``after``),
    ``replace_image``, ``remove_image``, ``choose_image`` (figure ``figure``; ``image``:
    one of its candidates)."""
    index: Index | None = None
    how: Words = ""
    """A direction for ``rewrite`` (e.g. "for beginners")."""
    after: Annotated[int, Strict(), Ge(-1)] | None = None
    topic: Words = ""
    figure: Index | None = None
    image: str | None = None

    @property
    def target(self) -> str:
        """The field this edit's ``op`` acts on."""
        if self.op in ("rewrite", "expand", "shorten"):
            return "index"
        return "after" if self.op in ("insert_paragraph", "insert_image") else "figure"


#: A cautious estimate: English is ~4 characters a token, other scripts fewer.
CHARS_PER_TOKEN = 3


def max_text_chars(context_tokens: int) -> int:
    """The longest instruction or text for a model with ``context_tokens`` of context: half
    of it, the other half left for the prompt's instructions and the answer."""
    return context_tokens * CHARS_PER_TOKEN // 2


def check_text_fits(text: str, what: str, context_tokens: int) -> None:
    """Refuse an empty ``text`` (:class:`InputError`) or one longer than the model's context
    takes (:class:`TooLargeError`), before any model call; ``what`` names it in the message
    (``instruction``, ``text to illustrate``)."""
    if not text.strip():
        raise InputError(f"the {what} is empty", f"give the {what}")
    longest = max_text_chars(context_tokens)
    if len(text) > longest:
        raise TooLargeError(
            f"the {what} is {len(text):,} characters, more than this model's context takes "
            f"(about {longest:,})",
            f"give a shorter {what}, or split it into parts",
        )


def _option_error(model: type[BaseModel], err: ValidationError) -> OptionError:
    first = err.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else None
    known = list(model.model_fields)
    if name is None:
        return OptionError("the options are not a mapping", "give options as key: value pairs")
    if first["type"] == "missing":
        return OptionError(f"'{name}' is missing", f"give '{name}'", name)
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known options: {', '.join(known)}"
        return OptionError(f"unknown option '{name}'", f"remove it; {hint}", name)
    field = model.model_fields[name]
    rule = describe_rule(field)
    default = "or leave it out" if field.default is None else f"default {field.default!r}"
    return OptionError(
        f"{name} must be {rule}, not {first['input']!r}", f"give {rule} ({default})", name
    )


def describe_rule(field: FieldInfo) -> str:
    """What a field accepts, in words: ``a whole number from 1 to 10``, ``on or off`` ..."""
    return _rule(field.annotation, list(field.metadata))


def _rule(annotation: Any, metadata: list[Any]) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _rule(args[0], [*annotation.__metadata__, *metadata])
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        kinds = [a for a in args if a is not type(None)]
        return " or ".join(_rule(a, metadata if len(kinds) == 1 else []) for a in kinds)
    low = next((m.ge for m in metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in metadata if isinstance(m, Le)), None)
    if annotation is bool:
        return "on or off (true or false)"
    if annotation is float:
        return f"a number from {low} to {high}" if low is not None else "a number"
    if annotation is int:
        if low is not None and high is not None:
            return f"a whole number from {low} to {high}"
        return "a whole number" + (f" of at least {low}" if low is not None else "")
    if annotation is str:
        longest = next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)
        return "text" + (f" of at most {longest} characters" if longest else "")
    return getattr(annotation, "__name__", str(annotation))
