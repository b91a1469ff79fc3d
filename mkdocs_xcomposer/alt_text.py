"""``alt_text: missing``: Markdown images without alt text, and filling them in.

Only ``![](path)`` (and ``![](path "title")``, ``![](<path with spaces.jpg>)``,
reference-style ``![][cat]`` with its ``[cat]: path`` definition) with nothing
between the brackets counts as missing: a person's alt text is never touched, and
neither is an HTML ``<img alt="">`` (an empty alt there is a deliberate
"decorative" marker).  Code fences, inline code and HTML comments (one line or
many) are skipped; only local image files inside docs_dir are described (remote
URLs are left alone).  A reference without a definition is reported, not guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

_EMPTY_ALT = re.compile(
    r"!\[\]\(\s*(?:<(?P<asrc>[^>\n]+)>|(?P<src>[^)\s]+))"
    r"(?P<title>\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
    r"|!\[\] ?\[(?P<ref>[^\]\n]+)\]"
)
_DEFINITION = re.compile(
    r"^[ ]{0,3}\[(?P<label>[^\]\n]+)\]:[ \t]*(?:<(?P<asrc>[^>\n]+)>|(?P<src>\S+))",
    re.MULTILINE,
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class MissingAlt:
    """One image without alt text."""

    line: int
    """1-based line in the Markdown it was found in."""
    start: int
    end: int
    """Character offsets of the whole ``![](...)``."""
    src: str
    title: str
    image: Path | None
    """The image file, resolved like MkDocs does (relative to the page, or to docs_dir);
    ``None`` with a ``problem`` for a reference without a definition."""
    ref: str = ""
    """Reference-style: the label (``![][cat]``)."""
    angle: bool = False
    """The source was written in angle brackets (``![](<a b.jpg>)``)."""
    problem: str = ""


def find_missing(
    markdown: str,
    page_path: Path,
    docs_dir: Path,
    skip: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> list[MissingAlt]:
    """Local images with empty alt text, outside code, comments and the ``skip`` spans."""
    found: list[MissingAlt] = []
    comments = [(m.start(), m.end()) for m in _COMMENT.finditer(markdown)]
    definitions = {
        _label(m.group("label")): m.group("asrc") or m.group("src")
        for m in _DEFINITION.finditer(markdown)
    }
    fence: str | None = None
    in_comment = False
    offset = 0
    for number, line in enumerate(markdown.splitlines(keepends=True), 1):
        start = offset
        offset += len(line)
        text = line.rstrip("\r\n")
        if fence is not None:
            if text.lstrip(" \t").startswith(fence) and not text.strip().strip(fence[0]):
                fence = None
            continue
        if in_comment:
            in_comment = "-->" not in text
            continue
        opened = _FENCE.match(text)
        if opened:
            fence = opened.group(1)
            continue
        if "<!--" in text and "-->" not in text[text.index("<!--") :]:
            in_comment = True
        if any(a <= start < b for a, b in skip):
            continue
        for match in _EMPTY_ALT.finditer(text):
            if text[: match.start()].count("`") % 2:  # inside inline code
                continue
            if any(a <= start + match.start() < b for a, b in comments):
                continue
            ref = match.group("ref") or ""
            if ref:
                src = definitions.get(_label(ref))
                if src is None:
                    found.append(
                        MissingAlt(
                            line=number,
                            start=start + match.start(),
                            end=start + match.end(),
                            src="",
                            title="",
                            image=None,
                            ref=ref,
                            problem=f"image reference [{ref}] has no definition "
                            f"([{ref}]: path); its alt text is not filled",
                        )
                    )
                    continue
            else:
                src = match.group("asrc") or match.group("src")
            image = _local_image(src, page_path, docs_dir)
            if image is None:
                continue
            found.append(
                MissingAlt(
                    line=number,
                    start=start + match.start(),
                    end=start + match.end(),
                    src=src,
                    title=(match.group("title") or ""),
                    image=image,
                    ref=ref,
                    angle=bool(match.group("asrc")),
                )
            )
    return found


def _label(text: str) -> str:
    return " ".join(text.split()).casefold()


def _local_image(src: str, page_path: Path, docs_dir: Path) -> Path | None:
    from xcomposer import IMAGE_SUFFIXES

    parts = urlsplit(src)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = unquote(parts.path)
    base = docs_dir if target.startswith("/") else page_path.parent
    path = (base / target.lstrip("/")).resolve()
    if not path.is_relative_to(docs_dir) or not path.is_file():
        return None
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return path


def escape_alt(text: str) -> str:
    """Alt text for the inside of ``![...]``: one line, Markdown and HTML characters escaped."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]{}!":
        text = text.replace(ch, "\\" + ch)
    return text


def with_alt(missing: MissingAlt, alt: str) -> str:
    """The image's Markdown with ``alt`` filled in (source and title as written)."""
    if missing.ref:
        return f"![{escape_alt(alt)}][{missing.ref}]"
    src = f"<{missing.src}>" if missing.angle else missing.src
    return f"![{escape_alt(alt)}]({src}{missing.title})"
