"""Finding ``/// compose``, ``/// illustrate`` and ``/// describe`` blocks in a page's Markdown.

The syntax is pymdownx.blocks': a header line, YAML options indented by four
spaces right below it, a body, and a closing line with as many slashes::

    /// compose | Lighthouses
        images: images/coast
        max_images: 2

    Write a short article about how lighthouses work.
    ///

The plugin parses the blocks itself, so they work whether or not
``pymdownx.blocks`` is enabled.  Only headers at the start of a line count;
fenced code and HTML comments are skipped (a page that *shows* the syntax, or a
block commented out, is left alone).  Every block keeps its line numbers, and
every problem is a :class:`BlockError` that says ``page.md:LINE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

# libyaml's loader where it is built in: a cached build parses every block's options.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: The block names this plugin handles; any other ``/// name`` belongs to pymdownx.
KINDS = ("compose", "illustrate", "describe")

_HEADER = re.compile(
    r"^(?P<fence>/{3,})[ \t]*(?P<name>[\w-]+)[ \t]*(?:\|[ \t]*(?P<arg>.*?))?[ \t]*$"
)
_FENCE_OPEN = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})")

_COMMON = {"images", "backend"}
#: The options each block accepts, besides its header argument.
OPTIONS: dict[str, set[str]] = {
    "compose": _COMMON
    | {"max_images", "candidates", "words", "sections", "language", "seed", "title_level"},
    "illustrate": _COMMON | {"max_images", "candidates", "seed"},
    "describe": {"backend", "question", "style", "language", "show_image"},
}


class BlockError(Exception):
    """A block that cannot be used: ``str(err)`` is ``"page.md:LINE: what; fix"``."""

    def __init__(self, page: str, line: int, message: str) -> None:
        self.page = page
        self.line = line
        self.message = message
        super().__init__(f"{page}:{line}: {message}")


@dataclass
class Block:
    """One block as written: where it is, what it says."""

    kind: str
    """``compose``, ``illustrate`` or ``describe``."""
    argument: str
    """The text after ``|`` in the header: a title, or the image of a ``describe`` block."""
    options: dict[str, Any]
    """The YAML options, as written (validated by :func:`check_options`)."""
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

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def error(self, message: str, line: int | None = None) -> BlockError:
        return BlockError(self.page, line or self.line, message)


def find_blocks(markdown: str, page: str, line_offset: int = 0) -> list[Block]:
    """Every compose/illustrate/describe block of a page, in order.

    ``line_offset``: lines that precede ``markdown`` in the file (front matter), so
    line numbers are the file's.  Raises :class:`BlockError` for an unclosed block
    or options that are not YAML.
    """
    lines = markdown.splitlines(keepends=True)
    offsets = [0]
    for text in lines:
        offsets.append(offsets[-1] + len(text))
    blocks: list[Block] = []
    fence: str | None = None
    in_comment = False
    i = 0
    while i < len(lines):
        text = lines[i].rstrip("\r\n")
        if in_comment:
            in_comment = "-->" not in text
            i += 1
            continue
        if fence is not None:
            if text.lstrip(" \t").startswith(fence) and not text.strip().strip(fence[0]):
                fence = None
            i += 1
            continue
        opened = _FENCE_OPEN.match(text)
        if opened:
            fence = opened.group("fence")
            i += 1
            continue
        if text.lstrip().startswith("<!--"):
            in_comment = "-->" not in text[text.index("<!--") + 4 :]
            i += 1
            continue
        header = _HEADER.match(text)
        if header and header.group("name") in KINDS:
            block, i = _read_block(lines, offsets, i, header, page, line_offset)
            blocks.append(block)
            continue
        i += 1
    return blocks


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
    line_no = first + 1 + line_offset
    # Options: the lines right below the header indented by four spaces (or a tab).
    i = first + 1
    option_lines: list[str] = []
    while i < len(lines):
        text = lines[i].rstrip("\r\n")
        if text.startswith(("    ", "\t")) and text.strip():
            option_lines.append(text[4:] if text.startswith("    ") else text[1:])
            i += 1
            continue
        break
    options = _parse_options(option_lines, page, line_no)
    # Body: until a line of exactly as many slashes; nested `/// name` blocks of the
    # same fence length (pymdownx's own, inside an illustrate body) must close first.
    body_lines: list[str] = []
    depth = 0
    fence: str | None = None
    while i < len(lines):
        text = lines[i].rstrip("\r\n")
        if fence is not None:
            if text.lstrip(" \t").startswith(fence) and not text.strip().strip(fence[0]):
                fence = None
        elif (opened := _FENCE_OPEN.match(text)) is not None:
            fence = opened.group("fence")
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
                )
                return block, i + 1
            depth -= 1
        elif (nested := _HEADER.match(text)) is not None and nested.group("fence") == slashes:
            depth += 1
        body_lines.append(lines[i])
        i += 1
    raise BlockError(
        page,
        line_no,
        f"the {kind} block is not closed; end it with a line '{slashes}' "
        "(as many slashes as its header)",
    )


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


def check_options(block: Block) -> None:
    """Unknown options are errors: a typo must not silently change the result."""
    known = OPTIONS[block.kind]
    for name in block.options:
        if name not in known:
            raise block.error(
                f"unknown option '{name}' for a {block.kind} block; "
                f"known options: {', '.join(sorted(known))}"
            )
