"""The engine configuration that the plugin's options in mkdocs.yml describe.

The plugin's live engines are the engine's own ``xcomposer.Engines`` over it (one
per block ``backend:`` choice), created on first use only: a build whose blocks
all come from the cache never creates one that loads a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xcomposer import ResultStore, facts_signature  # the package is lazy: no pydantic

from .config import BACKEND_KEYS, XComposerConfig

if TYPE_CHECKING:  # pydantic: imported only when an engine is configured
    from xcomposer import EngineConfig


def engine_config(
    plugin: XComposerConfig, config_dir: Path, store: ResultStore, frozen: bool
) -> EngineConfig:
    """The EngineConfig the plugin's options describe (raises ConfigError)."""
    from xcomposer import EngineConfig, config_from_dict, load_config

    if plugin.config:
        base = load_config(Path(plugin.config))
    else:
        base = EngineConfig()
    if plugin.engine:
        data = _merge(base.model_dump(exclude_defaults=True), dict(plugin.engine))
        base = config_from_dict(data, base_dir=config_dir, source="mkdocs.yml")
    overrides = {k: plugin[k] for k in BACKEND_KEYS if plugin[k] is not None}
    cfg = base.with_overrides(**overrides)
    roots = [str((config_dir / r).resolve()) for r in plugin.library]
    roots += [r for r in cfg.library.roots if r not in roots]
    library = cfg.library.model_copy(
        update={
            "roots": roots,
            "index_dir": cfg.library.index_dir or str(store.index_dir),
        }
    )
    return cfg.model_copy(
        update={"library": library, "cache_dir": str(store.answers_dir), "frozen": frozen}
    )


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def facts_signature_of(
    plugin: XComposerConfig, config_dir: Path, store: ResultStore, frozen: bool
) -> str:
    """The signature of everything in the plugin's options that the engine facts derive from
    (``xcomposer.facts_signature``): a remembered state made under another is not used."""
    settings: dict[str, Any] = {k: plugin[k] for k in BACKEND_KEYS}
    settings |= {
        "engine": plugin["engine"],
        "library": plugin["library"],
        "config": plugin["config"],
        "config_dir": str(config_dir),
        "cache_dir": str(store.cache_dir),
        "frozen": frozen,
    }
    return facts_signature(settings, [Path(plugin["config"])] if plugin["config"] else [])
