"""A page's finished blocks as replacements for the Markdown extension (its ``BlockSource``).

The plugin and the standalone extension (Zensical, ProperDocs without the plugin)
share this: which page a Markdown instance is rendering, and what each block of
it becomes (model text as neutralised Markdown, figures and notices as parts the
extension turns into elements).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs.plugins import get_plugin_logger
from xcomposer import MissingAlt, with_alt

from .blocks import Block, BlockError, each_error
from .extension import FigurePart, NoticePart, Part, Replacement
from .page_text import has_h1, lines_before
from .render import block_markdown

if TYPE_CHECKING:
    from markdown import Markdown
    from xcomposer import Outcome, Task

    from .extension import PageRef
    from .plugin import XComposerPlugin

plugin_log = get_plugin_logger("mkdocs_xcomposer.plugin")

_FIGURE = re.compile(r"\x00F(\d+)\x00")


def page_of(plugin: XComposerPlugin, md: Markdown, markdown: str) -> PageRef | None:
    """The page ``md`` renders: MkDocs' (and Material's excerpts') relative-path processor
    knows its file, Zensical's rendering context its path; else the page whose text it is."""
    from mkdocs.utils.meta import get_data

    from .extension import PageRef

    assert plugin.folders is not None
    docs_dir = plugin.folders.docs_dir
    relpath = md.treeprocessors["relpath"] if "relpath" in md.treeprocessors else None
    file = getattr(relpath, "file", None)
    if file is not None and getattr(file, "src_uri", None):
        src_uri = file.src_uri
        abs_path = Path(file.abs_src_path) if file.abs_src_path else docs_dir / src_uri
    else:
        src_uri = _zensical_page(md) or page_index(plugin).get(markdown.strip())
        if src_uri is None:
            return None
        abs_path = docs_dir / src_uri
    try:
        raw = abs_path.read_text(encoding="utf-8-sig")
    except (OSError, ValueError):
        raw = markdown
    body, meta = get_data(raw)
    return PageRef(
        src_uri=src_uri,
        abs_path=abs_path,
        line_offset=lines_before(raw, markdown) if body != markdown else lines_before(raw, body),
        title_meta=bool(meta.get("title")),
        context=file,
    )


def _zensical_page(md: Markdown) -> str | None:
    for processor in md.preprocessors:
        if type(processor).__name__ == "ContextPreprocessor":
            path = getattr(getattr(processor, "page", None), "path", None)
            return str(path).replace("\\", "/") if path else None
    return None


def replacements(plugin: XComposerPlugin, markdown: str, page: PageRef) -> list[Replacement]:
    """What each block and each image without alt text of the page becomes."""
    page_tasks = tasks_of_page(plugin, markdown, page)
    out: list[Replacement] = []
    first_compose = True
    h1 = has_h1(markdown, page_tasks)
    for item, task in page_tasks:
        outcome = plugin.outcomes[task.digest]
        if isinstance(item, MissingAlt):
            if outcome.result is not None:
                text = with_alt(item, outcome.result["alt"])
                out.append(Replacement(item.start, item.end, [text], generated=False))
                plugin.counts["alt filled"] += 1
            continue
        assert isinstance(item, Block)
        if outcome.state == "pending":
            notice = NoticePart(
                "info",
                "Being composed",
                f"The {item.kind} block at {task.where} is being composed in the background; "
                "this page reloads when it is ready.",
            )
            out.append(Replacement(item.start, item.end, [notice], item.indent))
            continue
        if outcome.result is None:
            notice = missing_block(plugin, task, outcome)
            out.append(Replacement(item.start, item.end, [notice], item.indent))
            continue
        spec = plugin.specs[task.digest]
        level = spec.title_level
        if level is None:
            first_thing = not markdown[: item.start].strip()
            own_title = h1 or page.title_meta or not first_thing
            level = 1 if first_compose and not own_title else 2
        if item.kind == "compose":
            first_compose = False
        parts = block_parts(plugin, spec, outcome.result, level)
        out.append(Replacement(item.start, item.end, parts, item.indent, item.kind != "illustrate"))
    return out


def block_parts(plugin: XComposerPlugin, spec: Any, result: Any, level: int) -> list[Part]:
    """A finished block as Markdown text and figures."""
    assert plugin.images is not None and plugin.folders is not None
    images = plugin.images
    figures: list[FigurePart] = []

    def figure(image: Path, alt: str, caption: str) -> str:
        figures.append(FigurePart(images.src_uri(image), alt, caption, images.size(image)))
        return f"\x00F{len(figures) - 1}\x00"

    markdown = block_markdown(spec, result, plugin.folders, figure, plugin.style, level)
    parts: list[Part] = []
    for i, piece in enumerate(_FIGURE.split(markdown)):
        if i % 2:
            parts.append(figures[int(piece)])
        elif piece.strip("\n"):
            parts.append(piece.strip("\n"))
    return parts


def images_of(plugin: XComposerPlugin, spec: Any, result: Any) -> list[Path]:
    """The image files a finished block shows."""
    assert plugin.folders is not None
    if spec.kind == "describe":
        return [spec.image] if spec.show_image and spec.image is not None else []
    if spec.kind not in ("compose", "illustrate") or not isinstance(result, dict):
        return []
    return [plugin.folders.absolute(fig["image"]) for fig in result.get("figures", [])]


def tasks_of_page(
    plugin: XComposerPlugin, markdown: str, page: PageRef
) -> list[tuple[Block | MissingAlt, Task]]:
    """The page's tasks with their outcomes known (another plugin, or Material's blog
    excerpts, may hand over Markdown that on_files did not see)."""
    assert plugin.workshop is not None
    try:
        page_tasks = plugin._page_tasks(
            markdown, page.src_uri, page.abs_path or Path(), page.line_offset
        )
    except BlockError as err:
        plugin._fail([str(e) for e in each_error(err)])
    unseen = [task for _, task in page_tasks if task.digest not in plugin.outcomes]
    if unseen:
        outcomes = plugin.workshop.resolve(unseen, background=plugin.serving)
        plugin.outcomes.update(outcomes)
        if not plugin.standalone:
            failed = [o.error for o in outcomes.values() if o.state == "failed"]
            if failed:
                plugin._fail([e or "failed" for e in failed])
    return page_tasks


def missing_block(plugin: XComposerPlugin, task: Task, outcome: Outcome) -> NoticePart:
    """A block without a result: the build fails, or (standalone, ``missing: notice``)
    the page shows a notice and a warning is logged."""
    message = outcome.error or f"{task.where}: failed"
    if plugin.standalone and plugin.on_missing == "notice":
        plugin_log.warning("%s", message)
        return NoticePart("failure", "Not composed yet", message)
    if plugin.standalone:
        from xcomposer import CacheMissError

        raise CacheMissError(f"xcomposer: {message}")
    plugin._fail([message])


def page_index(plugin: XComposerPlugin) -> dict[str, str]:
    """Every page's Markdown (front matter removed, stripped) to its path: how a
    generator that does not say which page it renders is answered."""
    if plugin._page_index is None:
        from mkdocs.utils.meta import get_data

        assert plugin.folders is not None
        index: dict[str, str] = {}
        for path in sorted(plugin.folders.docs_dir.rglob("*.md")):
            try:
                body, _ = get_data(path.read_text(encoding="utf-8-sig"))
            except (OSError, ValueError):
                continue
            index.setdefault(body.strip(), path.relative_to(plugin.folders.docs_dir).as_posix())
        plugin._page_index = index
    return plugin._page_index
