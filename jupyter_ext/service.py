"""One engine per Jupyter server: the engine's ``EngineHost``, as the REST API shows it.

Everything a client is shown leaves the server's own root folder out (paths are
relative to the root), and a job's error carries the HTTP status it maps to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from xcomposer import Engine, EngineConfig, EngineHost, Job, XComposerError

from .errors import http_status
from .operations import Limits, Prepared
from .paths import RootPaths


class EngineService(EngineHost):
    """The shared engine behind the REST API (and behind the kernel's fallback client)."""

    def __init__(
        self,
        config_factory: Callable[[], EngineConfig],
        engine_factory: Callable[[EngineConfig], Engine] | None = None,
        root: str | Path | None = None,
    ) -> None:
        super().__init__(config_factory, engine_factory)
        # Messages go to clients: the server's own folders are shown relative to its root.
        self._hidden_prefixes = sorted(
            {str(Path(root)), str(Path(root).resolve())} if root else set(), key=len, reverse=True
        )

    def shown(self, text: str) -> str:
        """``text`` with the server's root folder left out (paths relative to the root)."""
        for prefix in self._hidden_prefixes:
            text = text.replace(prefix + "/", "").replace(prefix, ".")
        return text

    def job_reply(self, job: Job, since: int = 0) -> dict[str, Any]:
        """A job as clients see it: its ``op``, an HTTP ``status`` for an error, no server paths."""
        reply = job.to_dict(since)
        reply["op"] = reply.pop("name")
        if job.error is not None:
            reply["error"] = self.shown(reply["error"])
            err = job.error
            reply["status"] = http_status(err) if isinstance(err, XComposerError) else 500
        else:
            reply["status"] = None
        return reply

    def paths(self, contents_manager: Any) -> RootPaths:
        """Request paths under the server's root; the configured library folders count as
        inside it (none while the configuration is broken)."""
        try:
            trusted = list(self.config.library.roots)
        except XComposerError:
            trusted = []
        return RootPaths(contents_manager, trusted)

    def limits(self) -> Limits:
        """What a request is checked against before it is queued."""
        config = self.config
        return Limits(config.backend.n_ctx, default_library=bool(config.library.roots))

    def submit_prepared(self, prepared: Prepared, owner: str | None = None) -> Job:
        """Queue a checked request (``operations.prepare``)."""
        return self.submit(prepared.work, prepared.op, owner)
