"""One Engine per backend choice, sharing one answer cache: the live side of engine facts.

A project may name backends (``backends: {big: ...}``) and let each task choose
one; every choice gets its own :class:`Engine`, whose roles all run on that
backend, created on first use only (a run whose tasks all come from the store
never creates one).  The facts a task's name needs (identity, model fingerprints,
the library's reading settings) are the engines' own, remembered per choice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .cache import ResultCache
from .config import EngineConfig
from .engine import Engine
from .errors import XComposerError
from .identity import local_model_files, serving_every_role
from .library.fingerprint import library_reads


class Engines:
    """The engines of one configuration, by backend choice (``None``: the configured one)."""

    def __init__(self, config: EngineConfig, backends: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.cache = ResultCache(config.resolved_cache_dir())
        self._backends = dict(backends or {})
        self._engines: dict[str | None, Engine] = {}
        self._models: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    @property
    def backend_names(self) -> set[str]:
        return set(self.config.backends)

    @property
    def library_roots(self) -> list[str]:
        return list(self.config.library.roots)

    @property
    def library_reads(self) -> dict[str, Any]:
        """The library settings that decide which files it reads for an image."""
        return library_reads(self.config.library)

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
