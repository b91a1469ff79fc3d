"""``xcomposer site fill`` and ``xcomposer site check``: the whole workflow without the plugin.

For generators that run only the Markdown extension (Zensical), and for CI:

- ``site fill [CONFIG]`` composes every block of the site where the model runs
  (the cache answers what it can), copies the library images the pages show into
  ``docs_dir/assets/xcomposer/`` (so a generator that copies only docs_dir publishes
  them), and prunes cache entries and copies no page uses;
- ``site check [CONFIG]`` is frozen: it fails (exit 2) when a block is not in the
  cache or a shown image is missing from docs_dir, naming each ``page.md:LINE``.

CONFIG is mkdocs.yml, properdocs.yml or zensical.toml (default: found in the
working folder).  Registered through the ``xcomposer.commands`` entry points.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_command(subparsers: Any, common_parser: argparse.ArgumentParser) -> None:
    """Registers ``site fill`` and ``site check`` with the ``xcomposer`` CLI."""
    site = subparsers.add_parser("site", help="fill or check the block cache of a whole site")
    actions = site.add_subparsers(dest="site_command", required=True)
    for name, help_text in (
        ("fill", "compose every block of the site, copy its images, prune what no page uses"),
        ("check", "frozen: fail if any block is not cached or any shown image is missing"),
    ):
        p = actions.add_parser(name, parents=[common_parser], help=help_text)
        p.add_argument(
            "site_config",
            nargs="?",
            metavar="CONFIG",
            help="mkdocs.yml, properdocs.yml or zensical.toml (default: in this folder)",
        )
        p.set_defaults(run=run)


def run(args: argparse.Namespace, engine: Any = None) -> None:
    from .standalone import find_site_config

    config_file = find_site_config(args.site_config)
    if args.site_command == "fill":
        report = fill(config_file)
    else:
        report = check(config_file)
    if not getattr(args, "quiet", False):
        print(report)


def _pages(docs_dir: Path) -> list[tuple[str, Path, str]]:
    pages = []
    for path in sorted(docs_dir.rglob("*.md")):
        if any(part.startswith(".") for part in path.relative_to(docs_dir).parts):
            continue
        text = path.read_text(encoding="utf-8-sig")
        pages.append((path.relative_to(docs_dir).as_posix(), path, text))
    return pages


def fill(config_file: Path, backends: dict[str, Any] | None = None) -> str:
    """Compose what is missing, copy the shown images into docs_dir, prune; a summary."""
    from .page_blocks import images_of
    from .site_files import ASSETS

    plugin = _plugin(config_file, frozen=False, backends=backends)
    assert plugin.folders is not None and plugin.images is not None and plugin.workshop
    resolved = plugin.resolve_site(_pages(plugin.folders.docs_dir))
    shown: set[Path] = set()
    copied = 0
    for task, outcome in resolved:
        spec = plugin.specs.get(task.digest)
        if spec is None or outcome.result is None:
            continue
        for image in images_of(plugin, spec, outcome.result):
            if plugin.images.copy_into_docs(image) is not None:
                copied += 1
            shown.add((plugin.folders.docs_dir / plugin.images.src_uri(image)).resolve())
    removed = plugin.workshop.store.prune()
    stale = 0
    assets = plugin.folders.docs_dir / ASSETS
    if assets.is_dir():
        for path in sorted(assets.rglob("*")):
            if path.is_file() and path.resolve() not in shown:
                path.unlink()
                stale += 1
    counts = plugin.counts
    plugin.on_shutdown()
    return (
        f"{len(resolved)} block(s) and alt text(s): {counts['composed'] + counts['alt composed']} "
        f"composed, {counts['cached'] + counts['alt cached']} from the cache; {copied} image(s) "
        f"copied into {ASSETS}/; removed {len(removed)} unused cache entr(ies) and {stale} "
        "unused image copies"
    )


def check(config_file: Path) -> str:
    """Every block cached and every shown image inside docs_dir, or InputError listing each."""
    from xcomposer import InputError

    from .page_blocks import images_of

    plugin = _plugin(config_file, frozen=True)
    plugin.on_missing = "notice"  # collect every miss instead of stopping at the first
    assert plugin.folders is not None and plugin.images is not None
    resolved = plugin.resolve_site(_pages(plugin.folders.docs_dir))
    problems = [o.error or f"{j.where}: missing" for j, o in resolved if o.result is None]
    for task, outcome in resolved:
        spec = plugin.specs.get(task.digest)
        if spec is None or outcome.result is None:
            continue
        for image in images_of(plugin, spec, outcome.result):
            target = plugin.folders.docs_dir / plugin.images.src_uri(image)
            if not target.is_file():
                problems.append(
                    f"{task.where}: image {plugin.images.src_uri(image)} is not in docs_dir "
                    f"(generators without the plugin would not publish it); run "
                    f"`xcomposer site fill {config_file.name}` and commit it"
                )
    if problems:
        raise InputError(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return f"{len(resolved)} block(s) and alt text(s) cached; every shown image is in docs_dir"


def _plugin(config_file: Path, frozen: bool, backends: dict[str, Any] | None = None) -> Any:
    from .standalone import configured_plugin

    plugin = configured_plugin(config_file, frozen=frozen, backends=backends)
    plugin.begin_build()
    return plugin
