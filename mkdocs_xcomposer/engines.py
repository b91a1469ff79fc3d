"""The engine behind the plugin: its config from mkdocs.yml, one Engine per backend choice.

Engines are created on first use only: a build whose blocks all come from the
cache never creates one that loads a model.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xcomposer import (
    Engine,
    EngineConfig,
    ResultCache,
    XComposerError,
    config_from_dict,
    load_config,
    local_model_files,
    serving_every_role,
)

from .config import BACKEND_KEYS, XComposerConfig


def engine_config(
    plugin: XComposerConfig, config_dir: Path, cache_dir: Path, frozen: bool
) -> EngineConfig:
    """The EngineConfig the plugin's options describe (raises ConfigError)."""
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
            "index_dir": cfg.library.index_dir or str(cache_dir / "index"),
        }
    )
    return cfg.model_copy(
        update={"library": library, "cache_dir": str(cache_dir / "answers"), "frozen": frozen}
    )


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class Engines:
    """One Engine per block ``backend:`` choice, sharing the answer cache.

    Identities and model fingerprints are the engine's own (``Engine.identity``,
    ``Engine.model_fingerprints``), remembered per choice for the build.
    """

    def __init__(self, config: EngineConfig, backends: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.cache = ResultCache(config.resolved_cache_dir())
        self._backends = dict(backends or {})
        self._engines: dict[str | None, Engine] = {}
        self._models: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    def same(self, config: EngineConfig, backends: Mapping[str, Any] | None) -> bool:
        """Whether these engines serve ``config`` with ``backends`` (serve rebuilds keep them)."""
        given = dict(backends or {})
        return (
            self.config == config
            and given.keys() == self._backends.keys()
            and all(given[k] is self._backends[k] for k in given)
        )

    @property
    def backend_names(self) -> set[str]:
        return set(self.config.backends)

    @property
    def library_reads(self) -> dict[str, Any]:
        """The library settings that decide which files it reads for an image."""
        lib = self.config.library
        return {"docs_dir": lib.docs_dir, "follow_symlinks_out": lib.follow_symlinks_out}

    def get(self, backend: str | None = None) -> Engine:
        with self._lock:
            if backend not in self._engines:
                self._engines[backend] = Engine(
                    serving_every_role(self.config, backend),
                    cache=self.cache,
                    backends=self._backends,
                )
            return self._engines[backend]

    def identity(self, backend: str | None = None) -> dict[str, Any]:
        """What, in the settings, decides the answers: no model needed, no machine paths."""
        return self.get(backend).identity()

    def models(self, backend: str | None = None) -> Any:
        """The model fingerprints (file identities) per role, or ``None`` where no model is here."""
        with self._lock:
            if backend in self._models:
                return self._models[backend]
        try:
            found: Any = self.get(backend).model_fingerprints()
        except XComposerError:
            found = None
        with self._lock:
            self._models[backend] = found
        return found

    def model_files(self) -> list[Path] | None:
        """The local files the model fingerprints come from (``None``: a hub id)."""
        return local_model_files(self.config)

    def model_calls(self) -> int:
        """Real model calls made so far by every engine (answers from a cache not counted)."""
        with self._lock:
            engines = list(self._engines.values())
        return sum(e.stats.model_calls for e in engines)

    def close(self) -> None:
        with self._lock:
            engines, self._engines, self._models = list(self._engines.values()), {}, {}
        for engine in engines:
            engine.close()
