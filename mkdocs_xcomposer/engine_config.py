"""The engine configuration that the plugin's options in mkdocs.yml describe.

The plugin's live engines are the engine's own ``xcomposer.Engines`` over it (one
per block ``backend:`` choice), created on first use only: a build whose blocks
all come from the cache never creates one that loads a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from xcomposer import ResultStore, facts_signature  # the package is lazy: no pydantic

from .config import BACKEND_KEYS, XComposerConfig

if TYPE_CHECKING:  # pydantic: imported only when an engine is configured
    from xcomposer import EngineConfig


def engine_config(
    plugin: XComposerConfig, config_dir: Path, store: ResultStore, frozen: bool
) -> EngineConfig:
    """The EngineConfig the plugin's options describe (raises ConfigError): the engine's
    TOML, the ``engine:`` table over it, then the backend keys and folders of mkdocs.yml."""
    from xcomposer import EngineConfig, load_config

    base = load_config(Path(plugin.config)) if plugin.config else EngineConfig()
    cfg = base.with_settings(dict(plugin.engine), config_dir, "mkdocs.yml").for_folder(
        config_dir,
        backend={k: plugin[k] for k in BACKEND_KEYS},
        library=plugin.library,
        cache_dir=store.answers_dir,
    )
    index_dir = cfg.library.index_dir or str(store.index_dir)
    library = cfg.library.model_copy(update={"index_dir": index_dir})
    return cfg.model_copy(update={"library": library, "frozen": frozen})


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
