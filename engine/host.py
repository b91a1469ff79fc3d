"""A long-lived front end's engine: configured and created on first use, fed by one job queue.

A notebook server, a chat persona or an editor plugin serves many requests from one
:class:`Engine`.  :class:`EngineHost` holds it: the configuration is read on first
use (a broken one raises its ``ConfigError`` again on every use, until fixed), the
engine is created by the first job that needs it (so a request is answered before
any model loads), and the jobs run on one :class:`JobRunner` at the backends'
concurrency (one at a time for a local model).  ``status()`` says what runs and how
the model stands, as JSON-able data; :meth:`shown` is where a front end hides its
machine's folders from what it shows.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import XComposerError
from .jobs import Job, JobRunner

if TYPE_CHECKING:
    from .config import EngineConfig
    from .engine import Engine
    from .progress import ProgressCallback

log = logging.getLogger("xcomposer.host")


class EngineHost:
    """One shared Engine and its job queue, created on first use and closed once."""

    def __init__(
        self,
        config_factory: Callable[[], EngineConfig],
        engine_factory: Callable[[EngineConfig], Engine] | None = None,
    ) -> None:
        self._config_factory = config_factory
        self._engine_factory = engine_factory
        self._owns_engine = engine_factory is None  # an engine given to us is closed by its owner
        self._config: EngineConfig | None = None
        self._config_error: XComposerError | None = None
        self._engine: Engine | None = None
        self._queue: JobRunner | None = None
        self._upload_dir: Path | None = None
        self._lock = threading.Lock()

    def shown(self, text: str) -> str:
        """``text`` as callers may see it (a front end hides its own folders here)."""
        return text

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
                log.info("starting the engine (%s)", model_name(config))
                if self._engine_factory is None:
                    from .engine import Engine

                    self._engine = Engine(config)
                else:
                    self._engine = self._engine_factory(config)
            return self._engine

    @property
    def queue(self) -> JobRunner:
        """The job queue: as many jobs at once as the backends take (1 for a local model)."""
        _ = self.config  # a broken configuration fails here, before anything is queued
        with self._lock:
            if self._queue is None:
                self._queue = JobRunner(lambda: self.engine.concurrency())
            return self._queue

    @property
    def started_queue(self) -> JobRunner | None:
        """The job queue if a job was ever submitted (nothing is created to find out)."""
        with self._lock:
            return self._queue

    @property
    def upload_dir(self) -> Path:
        """A private folder for uploaded images (:func:`store_image_bytes`), removed on close."""
        with self._lock:
            if self._upload_dir is None:
                self._upload_dir = Path(tempfile.mkdtemp(prefix="xcomposer-uploads-"))
            return self._upload_dir

    # -- work ---------------------------------------------------------------------------
    def submit(
        self,
        work: Callable[[Engine, ProgressCallback], Any],
        name: str,
        owner: str | None = None,
    ) -> Job:
        """Queue ``work(engine, progress)``; the engine is created by the worker, not the caller."""
        return self.queue.submit(
            lambda progress: work(self.engine, progress), name=name, owner=owner
        )

    def can_describe(self) -> bool:
        """Whether the describe role has a vision model (no model is loaded to find out)."""
        return self.engine.has_vision("describe")

    def model_health(self) -> tuple[bool, str]:
        """Whether the main model can load (its file is there, its runtime installed)."""
        try:
            (_name, _roles, health), *_ = self.engine.models()
        except XComposerError as err:
            return False, self.shown(str(err))
        return health.ok, self.shown(health.detail)

    def status(self) -> dict[str, Any]:
        """The configured model and how it stands, and the queue; checks the model's health
        (which may take a moment, but loads no model)."""
        try:
            config = self.config
        except XComposerError as err:
            return {"ok": False, "error": self.shown(str(err)), "loaded": False, "queue": 0}
        can_load, detail = self.model_health()
        engine, queue = self._engine, self.started_queue
        if engine is not None:
            config = engine.config  # an engine_factory may have configured it its own way
        backend = config.backend
        return {
            "ok": can_load,
            "can_load": can_load,
            "model_detail": detail,
            "backend": backend.backend,
            "model": self.shown(model_name(config)),
            "mmproj": self.shown(backend.mmproj) if backend.mmproj else None,
            "base_url": backend.base_url,
            "library": [self.shown(str(r)) for r in config.library.roots],
            "engine_started": engine is not None,
            "loaded": bool(engine is not None and engine.stats.model_calls > 0),
            "model_calls": engine.stats.model_calls if engine else 0,
            "cache_hits": engine.stats.cache_hits if engine else 0,
            "queue": queue.pending() if queue else 0,
            "running": queue.running() if queue else 0,
            "workers": queue.workers if queue else (engine.concurrency() if engine else None),
        }

    def close(self) -> None:
        if self._queue is not None:
            self._queue.shutdown()
        if self._engine is not None and self._owns_engine:
            try:
                self._engine.close()
            except Exception:  # noqa: BLE001 - closing must not stop the front end's shutdown
                log.exception("closing the engine failed")
        if self._upload_dir is not None:
            shutil.rmtree(self._upload_dir, ignore_errors=True)


def model_name(config: EngineConfig) -> str:
    """The main model as a person would name it (the embedded default when none is set)."""
    from .backends.model_files import EMBEDDED_MODEL_NAME

    return config.backend.model or f"embedded default ({EMBEDDED_MODEL_NAME})"
