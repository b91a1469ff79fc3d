"""The plugin's settings outside MkDocs: for the Markdown extension and ``xcomposer site``.

Zensical (and any Python-Markdown user) runs only the extension; it finds the site's
config file (properdocs.yml, mkdocs.yml, mkdocs.yaml or zensical.toml in the project
folder), reads the ``xcomposer`` plugin's options from it (``plugins: - xcomposer:``
in YAML, ``[project.plugins.xcomposer]`` in TOML), merges the extension's own
``options:`` on top, and configures a frozen :class:`XComposerPlugin` over the
committed cache.  Unknown YAML tags (``!!python/name:...``, ``!ENV``) are read as
plain values: this needs neither the theme nor the other plugins installed.
"""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path
from typing import Any

import yaml

from .plugin import XComposerPlugin

CONFIG_NAMES = ("properdocs.yml", "mkdocs.yml", "mkdocs.yaml", "zensical.toml")

_lock = threading.Lock()
_sources: dict[tuple[str, str], XComposerPlugin] = {}


class _LenientLoader(yaml.SafeLoader):
    """A safe loader that reads any tag as the plain value under it."""


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_LenientLoader.add_multi_constructor("", _plain)
_LenientLoader.add_multi_constructor("!", _plain)
_LenientLoader.add_multi_constructor("tag:yaml.org,2002:python/", _plain)


def find_site_config(given: str | os.PathLike[str] | None = None) -> Path:
    """The site config file: ``given``, or the first of CONFIG_NAMES in the working folder."""
    from xcomposer import InputError

    if given:
        path = Path(given).resolve()
        if path.is_dir():
            return find_site_config_in(path)
        if not path.is_file():
            raise InputError(f"site config {given} not found", "give mkdocs.yml or zensical.toml")
        return path
    return find_site_config_in(Path.cwd())


def find_site_config_in(folder: Path) -> Path:
    from xcomposer import InputError

    for name in CONFIG_NAMES:
        if (folder / name).is_file():
            return (folder / name).resolve()
    raise InputError(
        f"no {', '.join(CONFIG_NAMES)} in {folder}",
        "run in the site's folder or give the config file",
    )


def read_site_config(path: Path) -> tuple[Path, dict[str, Any]]:
    """The site's docs_dir (absolute) and the xcomposer plugin's options in ``path``."""
    from xcomposer import ConfigError

    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            data = data.get("project", data)
        else:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LenientLoader) or {}
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path.name} cannot be read ({err})", f"fix {path.name}") from None
    docs_dir = (path.parent / str(data.get("docs_dir") or "docs")).resolve()
    return docs_dir, plugin_options(data.get("plugins"))


def plugin_options(plugins: Any) -> dict[str, Any]:
    entries: list[Any] = list(plugins.items()) if isinstance(plugins, dict) else []
    if isinstance(plugins, list):
        for item in plugins:
            if isinstance(item, dict):
                entries.extend(item.items())
            else:
                entries.append((item, {}))
    for name, options in entries:
        if name == "xcomposer":
            return dict(options or {})
    return {}


def configured_plugin(
    config_file: Path,
    overrides: dict[str, Any] | None = None,
    frozen: bool = True,
    backends: dict[str, Any] | None = None,
) -> XComposerPlugin:
    """An XComposerPlugin configured from the site config file, outside MkDocs."""
    from mkdocs.exceptions import PluginError
    from xcomposer import ConfigError

    docs_dir, options = read_site_config(config_file)
    options |= overrides or {}
    plugin = XComposerPlugin()
    plugin.standalone = True
    plugin.backends = backends
    errors, _ = plugin.load_config(options, str(config_file))
    if errors:
        listed = "; ".join(f"{key}: {err}" for key, err in errors)
        raise ConfigError(f"xcomposer options in {config_file.name}: {listed}", "fix them")
    try:
        plugin.configure(config_file, docs_dir, frozen=frozen)
    except PluginError as err:
        raise ConfigError(str(err)) from None
    return plugin


def frozen_source(config_file: str = "", options: dict[str, Any] | None = None) -> XComposerPlugin:
    """The extension's source of cached blocks, one per site config per process."""
    path = find_site_config(config_file or _zensical_root())
    options = dict(options or {})
    key = (str(path), repr(sorted(options.items())))
    missing = str(options.pop("missing", "fail"))
    with _lock:
        if key not in _sources:
            plugin = configured_plugin(path, options, frozen=True)
            plugin.on_missing = missing
            plugin.begin_build()
            _sources[key] = plugin
        return _sources[key]


def _zensical_root() -> str | None:
    """Zensical's project folder, where it is the generator running (else ``None``)."""
    try:
        from zensical.config import get_config
    except ImportError:
        return None
    try:
        config = get_config()
    except Exception:  # noqa: BLE001 (not under Zensical's build: no config loaded)
        return None
    root = config.get("root_dir") if isinstance(config, dict) else None
    return str(root) if root else None
