"""``xcomposer materialize PAGE.md [--line N]``: a block's cached expansion, written into its page.

The block is replaced by what the site shows for it now (from the block cache:
nothing is composed here), as plain Markdown the writer can take over: model text
escaped as in the build, figures as Markdown images with an italic caption.  The
original block is kept right above it in an HTML comment (``-->`` inside it is
written ``--&gt;``), which the plugin ignores.  Library images from outside
docs_dir are copied into ``docs_dir/assets/xcomposer/`` so the page keeps
working without the block.  The page is written atomically.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xcomposer import InputError, write_atomic

if TYPE_CHECKING:
    from .plugin import XComposerPlugin

# The CLI imports this module to list its commands: MkDocs and the plugin are
# imported only when `materialize` runs.
CONFIG_NAMES = ("mkdocs.yml", "mkdocs.yaml")


def add_command(subparsers: Any, common_parser: argparse.ArgumentParser) -> None:
    """Registers ``materialize`` with the ``xcomposer`` CLI (entry point ``xcomposer.commands``)."""
    p = subparsers.add_parser(
        "materialize",
        parents=[common_parser],
        help="write a block's cached expansion into its page, in place of the block",
        description=(
            "Replace compose/illustrate/describe blocks of PAGE.md by their current "
            "expansion from the MkDocs plugin's cache (run `mkdocs build` first); the "
            "original block is kept in an HTML comment above the text."
        ),
    )
    p.add_argument("page", metavar="PAGE.md", help="the Markdown page under docs_dir")
    p.add_argument(
        "--line", type=int, metavar="N", help="only the block whose header is on (or spans) line N"
    )
    p.add_argument(
        "-f",
        "--mkdocs-config",
        metavar="FILE",
        help="the site's mkdocs.yml (default: the nearest one above PAGE.md)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, engine: Any = None) -> None:
    """The command: the engine settings come from mkdocs.yml, as in the build."""
    page = Path(args.page).resolve()
    if not page.is_file():
        raise InputError(f"page {args.page} not found", "give the path of a Markdown page")
    config_file = Path(args.mkdocs_config).resolve() if args.mkdocs_config else find_config(page)
    written = materialize(page, config_file, args.line)
    if not getattr(args, "quiet", False):
        for where in written:
            print(f"materialized {where}")


def find_config(page: Path) -> Path:
    for folder in page.parents:
        for name in CONFIG_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise InputError(
        f"no mkdocs.yml found above {page}", "give the site's config with --mkdocs-config FILE"
    )


def materialize(
    page: Path, config_file: Path, line: int | None = None, backends: dict[str, Any] | None = None
) -> list[str]:
    """Replace the page's blocks (or the one at ``line``); returns their ``page.md:LINE``.

    ``backends``: backends by name that replace the configured ones, as in the plugin.
    """
    from .blocks import BlockError, find_blocks
    from .page_text import has_h1
    from .spec import build_spec

    if not page.is_file():
        raise InputError(f"page {page} not found", "give the path of a Markdown page")
    plugin, config = _load_plugin(config_file, backends)
    assert plugin.folders is not None and plugin.workshop is not None
    folders = plugin.folders
    if not page.is_relative_to(folders.docs_dir):
        raise InputError(
            f"page {page} is not under the site's docs_dir {folders.docs_dir}",
            "give a page of the site, or the right --mkdocs-config",
        )
    src_uri = page.relative_to(folders.docs_dir).as_posix()
    text = page.read_text(encoding="utf-8")
    try:
        blocks = find_blocks(text, src_uri)
    except BlockError as err:
        raise InputError(str(err)) from None
    if line is not None:
        blocks = [b for b in blocks if b.line <= line <= b.end_line]
        if not blocks:
            raise InputError(
                f"{src_uri}:{line}: no compose, illustrate or describe block there",
                "give the line of a block's header (/// compose ...)",
            )
    if not blocks:
        raise InputError(f"{src_uri} has no compose, illustrate or describe block", "nothing to do")

    found = []
    for block in blocks:
        try:
            spec = build_spec(block, folders, plugin.facts.backend_names)
        except BlockError as err:
            raise InputError(str(err)) from None
        result = plugin.workshop.cached(plugin.task_for(spec))
        if result is None:
            raise InputError(
                f"{block.where}: this {block.kind} block has no cached expansion for its "
                "current inputs",
                f"build the site first (mkdocs build -f {config_file}), then materialize",
            )
        found.append((block, spec, result))
    has_h1 = has_h1(text, [(b, None) for b, _, _ in found])
    out, pos, first = [], 0, True
    for block, spec, result in found:
        level = spec.title_level or (1 if first and not has_h1 else 2)
        first = first and block.kind != "compose"
        body = _markdown(spec, result, level, page, plugin)
        out.append(text[pos : block.start])
        out.append(_commented(text[block.start : block.end]))
        out.append(body.rstrip("\n") + "\n")
        pos = block.end
    out.append(text[pos:])
    write_atomic(page, "".join(out).encode("utf-8"))
    return [b.where for b, _, _ in found]


def _load_plugin(config_file: Path, backends: dict[str, Any] | None) -> tuple[XComposerPlugin, Any]:
    from mkdocs.config import load_config
    from mkdocs.exceptions import ConfigurationError, PluginError

    from .plugin import XComposerPlugin

    if not config_file.is_file():
        raise InputError(f"MkDocs config {config_file} not found", "check --mkdocs-config")
    try:
        config = load_config(str(config_file))
    except (ConfigurationError, OSError) as err:
        raise InputError(f"{config_file} cannot be loaded ({err})", "fix mkdocs.yml") from None
    plugin = config.plugins.get("xcomposer")
    if not isinstance(plugin, XComposerPlugin):
        raise InputError(
            f"{config_file} does not enable the xcomposer plugin", "add '- xcomposer' to plugins:"
        )
    plugin.backends = backends
    try:
        plugin.on_config(config)
    except PluginError as err:
        raise InputError(str(err)) from None
    assert plugin.workshop is not None
    # materialize reads the cache; it never composes
    plugin.workshop.settings = replace(plugin.workshop.settings, frozen=True)
    return plugin, config


def _commented(block_text: str) -> str:
    kept = block_text.rstrip("\n").replace("-->", "--&gt;")
    return (
        "<!-- xcomposer: materialized from this block; the text below is yours to edit.\n"
        f"{kept}\n-->\n\n"
    )


def _markdown(spec: Any, result: Any, level: int, page: Path, plugin: XComposerPlugin) -> str:
    from xcomposer import markdown_figure, url_path

    from .render import block_markdown

    def image_markdown(image: Path, alt: str, caption: str) -> str:
        url = url_path(Path(os.path.relpath(_page_image(image, plugin), page.parent)))
        return markdown_figure(url, alt, caption)

    return block_markdown(spec, result, plugin.folders, image_markdown, plugin.style, level)


def _page_image(image: Path, plugin: XComposerPlugin) -> Path:
    """The image inside docs_dir: as is, or copied where ``site fill`` puts it (never over a
    different file)."""
    assert plugin.images is not None
    plugin.images.copy_into_docs(image, replace=False)
    return plugin.images.docs_dir / plugin.images.src_uri(image)
