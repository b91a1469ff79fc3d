"""Finding ``/// compose``, ``/// illustrate`` and ``/// describe`` blocks in a page's Markdown.

The syntax is pymdownx.blocks': a header line, YAML options indented by four
spaces right below it, a body, and a closing line with as many slashes::

    /// compose | Lighthouses
        images: images/coast
        max_images: 2

    Write a short article about how lighthouses work.
    ///

The blocks are parsed here, so they work whether or not ``pymdownx.blocks`` is
enabled.  A header may be indented (a block inside a list item, a content tab or
an admonition): its options, body and closing line then carry the same indent.
Fenced code and HTML comments are skipped (a page that *shows* the syntax, or a
block commented out, is left alone).  Every block keeps its line numbers, and
every problem is a :class:`BlockError` that says ``page.md:LINE``; a page's
problems are all reported together (:class:`BlockErrors`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from xcomposer import HiddenLines  # the package is lazy: no pydantic

# libyaml's loader where it is built in: a cached build parses every block's options.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: The block names this plugin handles; any other ``/// name`` belongs to pymdownx.
KINDS = ("compose", "illustrate", "describe")

#: pymdownx.blocks' own block names: never taken for a misspelling of ours.
PYMDOWNX_BLOCKS = {
    "admonition", "attention", "caution", "danger", "error", "hint", "important", "note",
    "tip", "warning", "details", "tab", "html", "define", "caption", "figure-caption",
    "table-caption", "abstract", "info", "success", "question", "failure", "bug",
    "example", "quote", "todo", "settings", "new",
}  # fmt: skip

_HEADER = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>/{3,})[ \t]*(?P<name>[\w-]+)[ \t]*(?:\|[ \t]*(?P<arg>.*?))?[ \t]*$"
)


class BlockError(Exception):
    """A block that cannot be used: ``str(err)`` is ``"page.md:LINE: what; fix"``."""

    def __init__(self, page: str, line: int, message: str) -> None:
        self.page = page
        self.line = line
        self.message = message
        super().__init__(f"{page}:{line}: {message}")


class BlockErrors(BlockError):
    """Every problem of one page (``errors``); ``str()`` lists them one per line."""

    def __init__(self, errors: list[BlockError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.page, first.line, first.message)
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return self.args[0]


def each_error(err: BlockError) -> list[BlockError]:
    """The single problems inside ``err``."""
    return list(err.errors) if isinstance(err, BlockErrors) else [err]


@dataclass
class Block:
    """One block as written: where it is, what it says."""

    kind: str
    """``compose``, ``illustrate`` or ``describe``."""
    argument: str
    """The text after ``|`` in the header: a title, or the image of a ``describe`` block."""
    options: dict[str, Any]
    """The YAML options, as written (checked by ``spec.build_spec``)."""
    body: str
    """The instruction (compose), the writer's text (illustrate), unused for describe."""
    page: str
    """The page's path relative to docs_dir, for messages."""
    line: int
    """1-based line of the header."""
    end_line: int
    """1-based line of the closing ``///``."""
    start: int = field(repr=False, default=0)
    """Character offset of the header in the page's Markdown."""
    end: int = field(repr=False, default=0)
    """Character offset just past the closing line (its newline included)."""
    indent: str = ""
    """The header's indent (a block inside a list item or tab); rendered text gets it too."""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def error(self, message: str, line: int | None = None) -> BlockError:
        return BlockError(self.page, line or self.line, message)


def find_blocks(markdown: str, page: str, line_offset: int = 0) -> list[Block]:
    """Every compose/illustrate/describe block of a page, in order.

    ``line_offset``: lines that precede ``markdown`` in the file (front matter), so
    line numbers are the file's.  Raises :class:`BlockErrors` listing every unclosed
    block, options that are not YAML or not indented by four spaces, and block names
    that look like a misspelling of ours.
    """
    lines = markdown.splitlines(keepends=True)
    offsets = [0]
    for text in lines:
        offsets.append(offsets[-1] + len(text))
    blocks: list[Block] = []
    errors: list[BlockError] = []
    hidden = HiddenLines()  # fenced code and HTML comments: a page that shows the syntax
    i = 0
    while i < len(lines):
        text = lines[i].rstrip("\r\n")
        if hidden.hidden(text):
            i += 1
            continue
        header = _HEADER.match(text)
        if header and header.group("name") in KINDS:
            try:
                block, i = _read_block(lines, offsets, i, header, page, line_offset)
            except BlockError as err:
                errors.append(err)
                i += 1
                continue
            blocks.append(block)
            continue
        if header and (guess := misspelt(header.group("name"))):
            errors.append(
                BlockError(
                    page,
                    i + 1 + line_offset,
                    f"unknown block '/// {header.group('name')}'; did you mean "
                    f"'/// {guess}'? (xcomposer's blocks: {', '.join(KINDS)})",
                )
            )
        i += 1
    if errors:
        raise BlockErrors(errors)
    return blocks


def misspelt(name: str) -> str | None:
    """Our block name that ``name`` is probably a misspelling of (``None``: it is not)."""
    lowered = name.lower()
    if lowered in KINDS:
        return lowered if name != lowered else None
    if lowered in PYMDOWNX_BLOCKS:
        return None
    close = difflib.get_close_matches(lowered, KINDS, n=1, cutoff=0.75)
    return close[0] if close else None


def _read_block(
    lines: list[str],
    offsets: list[int],
    first: int,
    header: re.Match,
    page: str,
    line_offset: int,
) -> tuple[Block, int]:
    kind = header.group("name")
    slashes = header.group("fence")
    indent = header.group("indent")
    line_no = first + 1 + line_offset
    # Options: the lines right below the header indented by four more spaces (or a tab).
    i = first + 1
    option_lines: list[str] = []
    while i < len(lines):
        text = _dedent(lines[i].rstrip("\r\n"), indent)
        if text.startswith(("    ", "\t")) and text.strip():
            option_lines.append(text[4:] if text.startswith("    ") else text[1:])
            i += 1
            continue
        if not option_lines and _SHALLOW_OPTION.match(text):
            raise BlockError(
                page,
                i + 1 + line_offset,
                f"the {kind} block's options are indented by "
                f"{len(text) - len(text.lstrip(' '))} space(s); indent them by four spaces "
                "under the header (pymdownx.blocks' rule), or leave a blank line before the body",
            )
        break
    options = _parse_options(option_lines, page, line_no)
    # Body: until a line of exactly as many slashes; nested `/// name` blocks of the
    # same fence length (pymdownx's own, inside an illustrate body) must close first.
    body_lines: list[str] = []
    depth = 0
    code = HiddenLines(comments=False)
    while i < len(lines):
        text = _dedent(lines[i].rstrip("\r\n"), indent)
        if code.hidden(text):
            pass
        elif text.rstrip() == slashes:
            if depth == 0:
                body = "".join(body_lines).strip("\n")
                block = Block(
                    kind=kind,
                    argument=(header.group("arg") or "").strip(),
                    options=options,
                    body=body,
                    page=page,
                    line=line_no,
                    end_line=i + 1 + line_offset,
                    start=offsets[first],
                    end=offsets[i + 1],
                    indent=indent,
                )
                return block, i + 1
            depth -= 1
        elif (nested := _HEADER.match(text)) is not None and nested.group("fence") == slashes:
            depth += 1
        body_lines.append(text + "\n")
        i += 1
    raise BlockError(
        page,
        line_no,
        f"the {kind} block is not closed; end it with a line '{slashes}' "
        "(as many slashes as its header)",
    )


_SHALLOW_OPTION = re.compile(r"^ {1,3}[A-Za-z_][\w-]*:(\s|$)")


def _dedent(text: str, indent: str) -> str:
    """A line of an indented block without the header's indent (blank lines stay blank)."""
    if not indent:
        return text
    return text[len(indent) :] if text.startswith(indent) else text.lstrip(" \t")


def _parse_options(option_lines: list[str], page: str, line_no: int) -> dict[str, Any]:
    if not option_lines:
        return {}
    try:
        data = yaml.load("\n".join(option_lines), Loader=_SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        offset = min(mark.line, len(option_lines) - 1) if mark is not None else 0
        where = line_no + 1 + offset
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise BlockError(
            page,
            where,
            f"the block's options are not valid YAML ({problem}); write them as "
            "'key: value' lines indented by four spaces under the header",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BlockError(
            page,
            line_no + 1,
            "the block's options must be 'key: value' lines; indent only options by four "
            "spaces (leave a blank line before the body)",
        )
    return {str(k): v for k, v in data.items()}
