"""One engine per Jupyter server: created on first use, shared by every notebook, fed by one queue."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xcomposer import Engine, EngineConfig, Job, JobRunner, XComposerError

from .errors import http_status
from .operations import Limits, Prepared

log = logging.getLogger("jupyter_xcomposer")
EMBEDDED = "embedded default (SmolLM2-135M-Instruct)"


class EngineService:
    """The shared engine behind the REST API (and behind the kernel's fallback client)."""

    def __init__(
        self,
        config_factory: Callable[[], EngineConfig],
        engine_factory: Callable[[EngineConfig], Engine] | None = None,
        root: str | Path | None = None,
    ) -> None:
        self._config_factory = config_factory
        # Messages go to clients: the server's own folders are shown relative to its root.
        self._hidden_prefixes = sorted(
            {str(Path(root)), str(Path(root).resolve())} if root else set(), key=len, reverse=True
        )
        self._engine_factory = engine_factory or (lambda cfg: Engine(cfg))
        self._owns_engine = engine_factory is None  # an engine given to us is closed by its owner
        self._config: EngineConfig | None = None
        self._config_error: XComposerError | None = None
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._queue: JobRunner | None = None
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
    def queue(self) -> JobRunner:
        """The engine's job runner: as many jobs at once as the backends take (1 for a local model)."""
        _ = self.config  # a broken configuration fails here, before anything is queued
        with self._lock:
            if self._queue is None:
                self._queue = JobRunner(lambda: self.engine.concurrency())
            return self._queue

    @property
    def upload_dir(self) -> Path:
        with self._lock:
            if self._upload_dir is None:
                self._upload_dir = Path(tempfile.mkdtemp(prefix="xcomposer-uploads-"))
            return self._upload_dir

    def redact(self, message: str) -> str:
        """``message`` with the server's root folder left out (paths relative to the root)."""
        for prefix in self._hidden_prefixes:
            message = message.replace(prefix + "/", "").replace(prefix, ".")
        return message

    def job_reply(self, job: Job, since: int = 0) -> dict[str, Any]:
        """A job as clients see it: its ``op``, an HTTP ``status`` for an error, no server paths."""
        reply = job.to_dict(since)
        reply["op"] = reply.pop("name")
        if job.error is not None:
            reply["error"] = self.redact(reply["error"])
            err = job.error
            reply["status"] = http_status(err) if isinstance(err, XComposerError) else 500
        else:
            reply["status"] = None
        return reply

    def limits(self) -> Limits:
        """What a request is checked against before it is queued."""
        config = self.config
        return Limits(config.backend.n_ctx, default_library=bool(config.library.roots))

    def can_describe(self) -> bool:
        """Whether the describe role has a vision model (no model is loaded to find out)."""
        return self.engine.has_vision("describe")

    # -- operations ---------------------------------------------------------------------
    def submit(self, prepared: Prepared, owner: str | None = None) -> Job:
        """Queue a prepared call; the engine is created by the worker, not the request."""
        return self.queue.submit(
            lambda progress: prepared.work(self.engine, progress), name=prepared.op, owner=owner
        )

    def model_health(self) -> tuple[bool, str]:
        """Whether the main model can load (its file is there, its runtime installed)."""
        try:
            (_name, _roles, health), *_ = self.engine.models()
        except XComposerError as err:
            return False, self.redact(str(err))
        return health.ok, self.redact(health.detail)

    def status(self) -> dict[str, Any]:
        """What the status route answers; checks the model's health (may take a moment)."""
        try:
            config = self.config
        except XComposerError as err:
            return {"ok": False, "error": self.redact(str(err)), "loaded": False, "queue": 0}
        can_load, detail = self.model_health()
        engine = self._engine
        queue = self._queue
        if engine is not None:
            config = engine.config  # an engine_factory may have configured it its own way
        return {
            "ok": can_load,
            "can_load": can_load,
            "model_detail": detail,
            "backend": config.backend.backend,
            "model": self.redact(_model_name(config)),
            "mmproj": self.redact(config.backend.mmproj) if config.backend.mmproj else None,
            "base_url": config.backend.base_url,
            "library": [self.redact(str(r)) for r in config.library.roots],
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
            except Exception:  # noqa: BLE001 - closing must not stop the server's shutdown
                log.exception("jupyter_xcomposer: closing the engine failed")
        if self._upload_dir is not None:
            shutil.rmtree(self._upload_dir, ignore_errors=True)


def _model_name(config: EngineConfig) -> str:
    return config.backend.model or EMBEDDED
