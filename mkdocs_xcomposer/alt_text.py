"""``alt_text: missing``: Markdown images without alt text, and filling them in.

The page's images are the engine's reading of them (``xcomposer.markdown_images``:
inline and reference images, outside code and comments).  Only ``![](path)`` (and
``![](path "title")``, ``![](<path with spaces.jpg>)``, reference-style ``![][cat]``
with its ``[cat]: path`` definition) with nothing between the brackets counts as
missing: a person's alt text is never touched, and neither is an HTML
``<img alt="">`` (an empty alt there is a deliberate "decorative" marker).  Only
local image files inside docs_dir are described (remote URLs are left alone).  A
reference without a definition is reported, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xcomposer import IMAGE_SUFFIXES, MarkdownImage, markdown_images, resolve_src


@dataclass(frozen=True)
class MissingAlt:
    """One image without alt text: where it is, and the file it shows."""

    found: MarkdownImage
    image: Path | None
    """The image file; ``None`` with a ``problem`` for a reference without a definition."""
    problem: str = ""

    @property
    def line(self) -> int:
        return self.found.line

    @property
    def start(self) -> int:
        return self.found.start

    @property
    def end(self) -> int:
        return self.found.end


def find_missing(
    markdown: str, page_path: Path, docs_dir: Path, skip: list[tuple[int, int]] = ()
) -> list[MissingAlt]:  # type: ignore[assignment]
    """Local images with empty alt text, outside code, comments and the ``skip`` spans."""
    missing = []
    for found in markdown_images(markdown, skip):
        if found.alt:
            continue
        if found.ref and not found.src:
            problem = (
                f"image reference [{found.ref}] has no definition ([{found.ref}]: path); "
                "its alt text is not filled"
            )
            missing.append(MissingAlt(found, None, problem))
            continue
        path = resolve_src(found.src, page_path, docs_dir)
        if path is None or not path.is_relative_to(docs_dir) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            missing.append(MissingAlt(found, path))
    return missing


def with_alt(missing: MissingAlt, alt: str) -> str:
    """The image's Markdown with ``alt`` filled in (source and title as written)."""
    from xcomposer import markdown_line

    found = missing.found
    if found.ref:
        return f"![{markdown_line(alt)}][{found.ref}]"
    src = f"<{found.src}>" if found.angle else found.src
    return f"![{markdown_line(alt)}]({src}{found.title})"
