"""One engine per Jupyter server: created on first use, shared by every notebook, fed by one queue."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xcomposer import Engine, EngineConfig, XComposerError

from .jobs import Job, JobQueue
from .operations import Prepared

log = logging.getLogger("jupyter_xcomposer")
EMBEDDED = "embedded default (SmolLM2-135M-Instruct)"


def queue_workers(config: EngineConfig) -> int:
    """One worker when any backend runs locally; a remote backend's concurrency otherwise."""
    backends = [config.backend, *config.backends.values()]
    if all(b.backend == "openai" for b in backends):
        return min(b.concurrency for b in backends)
    return 1


class EngineService:
    """The shared engine behind the REST API (and behind the kernel's fallback client)."""

    def __init__(
        self,
        config_factory: Callable[[], EngineConfig],
        engine_factory: Callable[[EngineConfig], Engine] | None = None,
    ) -> None:
        self._config_factory = config_factory
        self._engine_factory = engine_factory or (lambda cfg: Engine(cfg))
        self._owns_engine = engine_factory is None  # an engine given to us is closed by its owner
        self._config: EngineConfig | None = None
        self._config_error: XComposerError | None = None
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._queue: JobQueue | None = None
        self._upload_dir: Path | None = None

    # -- lazily built parts ------------------------------------------------------------
    @property
    def config(self) -> EngineConfig:
        """The engine configuration (a ConfigError is raised again on every use until fixed)."""
        with self._lock:
            if self._config is None and self._config_error is None:
                try:
                    self._config = self._config_factory()
                except XComposerError as err:
                    self._config_error = err
            if self._config_error is not None:
                raise self._config_error
            assert self._config is not None
            return self._config

    @property
    def engine(self) -> Engine:
        """The shared Engine, created on first use (its model loads on its first call)."""
        config = self.config
        with self._lock:
            if self._engine is None:
                log.info("jupyter_xcomposer: starting the engine (%s)", _model_name(config))
                self._engine = self._engine_factory(config)
            return self._engine

    @property
    def queue(self) -> JobQueue:
        config = self.config
        with self._lock:
            if self._queue is None:
                self._queue = JobQueue(queue_workers(config))
            return self._queue

    @property
    def upload_dir(self) -> Path:
        with self._lock:
            if self._upload_dir is None:
                self._upload_dir = Path(tempfile.mkdtemp(prefix="xcomposer-uploads-"))
            return self._upload_dir

    # -- operations ---------------------------------------------------------------------
    def submit(self, prepared: Prepared) -> Job:
        """Queue a prepared call; the engine is created by the worker, not the request."""
        return self.queue.submit(prepared.op, lambda progress: prepared.work(self.engine, progress))

    def status(self) -> dict[str, Any]:
        try:
            config = self.config
        except XComposerError as err:
            return {"ok": False, "error": str(err), "loaded": False, "queue": 0}
        engine = self._engine
        queue = self._queue
        if engine is not None:
            config = engine.config  # an engine_factory may have configured it its own way
        return {
            "ok": True,
            "backend": config.backend.backend,
            "model": _model_name(config),
            "mmproj": config.backend.mmproj,
            "base_url": config.backend.base_url,
            "library": list(config.library.roots),
            "engine_started": engine is not None,
            "loaded": bool(engine is not None and engine.stats.model_calls > 0),
            "model_calls": engine.stats.model_calls if engine else 0,
            "cache_hits": engine.stats.cache_hits if engine else 0,
            "queue": queue.pending() if queue else 0,
            "running": queue.running() if queue else 0,
            "workers": queue.workers if queue else queue_workers(config),
        }

    def close(self) -> None:
        if self._queue is not None:
            self._queue.shutdown()
        if self._engine is not None and self._owns_engine:
            try:
                self._engine.close()
            except Exception:  # noqa: BLE001 - closing must not stop the server's shutdown
                log.exception("jupyter_xcomposer: closing the engine failed")
        if self._upload_dir is not None:
            shutil.rmtree(self._upload_dir, ignore_errors=True)


def _model_name(config: EngineConfig) -> str:
    return config.backend.model or EMBEDDED
