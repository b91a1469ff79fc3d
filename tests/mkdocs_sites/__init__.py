"""Fixture MkDocs sites for the plugin's tests: written into a temp folder, built for real.

``make_site`` writes mkdocs.yml, the pages and a library of real captioned
images; ``build_site`` runs MkDocs' own build (``mkdocs.commands.build.build``
on a loaded ``MkDocsConfig``), with scripted backends handed to the plugin
where a test needs answers a real model cannot be made to give.
"""

from __future__ import annotations

import html.parser
import shutil
from pathlib import Path
from typing import Any

import yaml
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort, PluginError


def make_site(
    root: Path,
    pages: dict[str, str],
    *,
    images: Path | None = None,
    theme: str = "mkdocs",
    use_directory_urls: bool = True,
    plugin: dict[str, Any] | None = None,
    plugins_before: list[Any] | None = None,
    extra: dict[str, Any] | None = None,
    with_plugin: bool = True,
) -> Path:
    """A site under ``root``: ``docs/`` pages, the library copied to ``images/``; returns mkdocs.yml."""
    root.mkdir(parents=True, exist_ok=True)
    docs = root / "docs"
    for name, text in pages.items():
        path = docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if images is not None and not (root / "images").exists():
        shutil.copytree(images, root / "images")
    options = {"library": ["images"]} if images is not None else {}
    options |= plugin or {}
    plugins: list[Any] = list(plugins_before or ["search"])
    if with_plugin:
        plugins.append({"xcomposer": options})
    config: dict[str, Any] = {
        "site_name": "Fixture site",
        "theme": {"name": theme},
        "use_directory_urls": use_directory_urls,
        "plugins": plugins,
    }
    config |= extra or {}
    path = root / ("mkdocs.yml" if with_plugin else "mkdocs-plain.yml")
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def load_site(
    config_file: Path,
    backends: dict[str, Any] | None = None,
    serving: bool = False,
    **overrides: Any,
) -> Any:
    """The loaded MkDocsConfig, with ``backends`` given to the plugin (if it is enabled).

    MkDocs keeps one instance of a plugin that has ``on_startup`` per process, so
    every test sets what it needs (backends, serve mode) instead of inheriting it.
    """
    config = load_config(str(config_file), **overrides)
    plugin = config.plugins.get("xcomposer")
    if plugin is not None:
        plugin.backends = backends
        plugin.serving = serving
    return config


def build_site(
    config_file: Path,
    backends: dict[str, Any] | None = None,
    serving: bool = False,
    **overrides: Any,
) -> Any:
    """Build the site for real; returns the plugin instance (or None without the plugin).

    MkDocs logs a plugin's error and raises ``Abort``; the PluginError itself is
    raised here instead, so tests can read its message.
    """
    config = load_site(config_file, backends, serving, **overrides)
    try:
        build(config, serve_url="http://127.0.0.1:8000/" if serving else None)
    except Abort as abort:
        if isinstance(abort.__context__, PluginError):
            raise abort.__context__ from None
        raise
    return config.plugins.get("xcomposer")


def page_html(site: Path, src: str, use_directory_urls: bool = True) -> str:
    """The built HTML of page ``src`` (e.g. ``guide/setup.md``)."""
    return (site / output_path(src, use_directory_urls)).read_text(encoding="utf-8")


def output_path(src: str, use_directory_urls: bool = True) -> str:
    stem = src[: -len(".md")]
    if stem == "index" or stem.endswith("/index"):
        return stem + ".html"
    return f"{stem}/index.html" if use_directory_urls else f"{stem}.html"


class Elements(html.parser.HTMLParser):
    """Every start tag of a page as (tag, attributes), and the text inside <script> tags."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.tags if t == tag]


def main_content(page: str) -> str:
    """The part of a built page that holds the Markdown content (either theme)."""
    for start, end in (
        ('<div class="col-md-9" role="main">', "<footer"),
        ('<article class="md-content__inner md-typeset">', "</article>"),
    ):
        if start in page:
            return page.split(start, 1)[1].split(end, 1)[0]
    raise AssertionError("no main content found in the page")
