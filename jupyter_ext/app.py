"""The Jupyter server extension: configuration, the shared engine service, the REST routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Callable, Float, Int, List, Unicode
from xcomposer import EngineConfig, load_config

from .handlers import routes
from .service import EngineService


class XComposerApp(ExtensionApp):
    """Illustrated writing in Jupyter: one engine per server, shared by every notebook.

    Configure it as ``c.XComposerApp.<option>`` in ``jupyter_server_config.py``, or
    ``--XComposerApp.<option>=...`` on the command line.  Without options the
    engine reads ``xcomposer.toml`` in the server's root, else runs the embedded
    default model.
    """

    name = "jupyter_xcomposer"
    description = "Draft, illustrate and describe notebook content with a vision-language model"
    load_other_extensions = True

    engine_config_file = Unicode(
        "",
        config=True,
        help="The engine's TOML configuration (default: xcomposer.toml in the server root, if any). "
        "Relative paths are relative to the server root.",
    )
    backend = Unicode(
        None, allow_none=True, config=True, help="Backend: llamacpp, transformers or openai."
    )
    model = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Model: a GGUF path, a Hugging Face repo id, or a served model's name.",
    )
    mmproj = Unicode(
        None, allow_none=True, config=True, help="llama.cpp vision projector GGUF (for describe)."
    )
    base_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1.",
    )
    library = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Image folders used when a request names none (relative to the server root).",
    )
    cache_dir = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Result cache folder (default: the engine's, $XDG_CACHE_HOME/xcomposer).",
    )
    max_body_bytes = Int(
        2_000_000, config=True, help="Largest JSON request body in bytes (larger: HTTP 413)."
    )
    max_upload_bytes = Int(
        20_000_000, config=True, help="Largest uploaded image in bytes (larger: HTTP 413)."
    )
    max_wait = Float(
        30.0, config=True, help="Longest a request may wait (?wait=SECONDS) for a job to change."
    )
    job_lease = Float(
        60.0,
        config=True,
        help="Seconds a job whose owner (a kernel, a browser tab) stops following it is kept "
        "before it is cancelled.",
    )
    engine_factory = Callable(
        None,
        allow_none=True,
        config=True,
        help="Advanced: a callable EngineConfig -> Engine (tests, embedding applications).",
    )

    @property
    def root_dir(self) -> Path:
        return Path(self.serverapp.contents_manager.root_dir)

    def engine_config(self) -> EngineConfig:
        """The engine config: the TOML file (or xcomposer.toml in the root), then these options,
        their relative paths relative to the server root."""
        root = self.root_dir
        if self.engine_config_file:
            config = load_config(root / Path(self.engine_config_file).expanduser())
        else:
            config = load_config(None, search_dir=root)
        backend = {"backend": self.backend, "model": self.model, "mmproj": self.mmproj}
        return config.for_folder(
            root,
            backend=backend | {"base_url": self.base_url},
            library=self.library,
            cache_dir=self.cache_dir or None,
        )

    def initialize_settings(self) -> None:
        self.service = EngineService(self.engine_config, self.engine_factory, root=self.root_dir)
        self._expiry = PeriodicCallback(self.expire_jobs, max(1.0, self.job_lease / 4) * 1000)
        self._expiry.start()
        self._watch_kernels()

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes())

    def kernel_alive(self, owner: str) -> bool:
        if not owner.startswith("kernel:"):
            return True
        return owner.removeprefix("kernel:") in self.serverapp.kernel_manager

    def expire_jobs(self) -> None:
        """Cancel the jobs of owners that went away or stopped following them."""
        queue = self.service.started_queue
        if queue is not None:
            queue.expire(self.job_lease, self.kernel_alive)

    def _watch_kernels(self) -> None:
        """A kernel restarted or shut down: its jobs are cancelled at once."""
        logger = getattr(self.serverapp, "event_logger", None)
        if logger is None:
            return

        async def on_kernel_action(logger: Any, schema_id: str, data: dict) -> None:
            if data.get("action") in ("restart", "shutdown", "interrupt") and data.get("kernel_id"):
                queue = self.service.started_queue
                if queue is not None:
                    queue.cancel_owner(f"kernel:{data['kernel_id']}")

        try:
            logger.add_listener(schema_id=KERNEL_ACTIONS, listener=on_kernel_action)
        except Exception:  # noqa: BLE001 - an older jupyter_server: the lease still applies
            self.log.debug("jupyter_xcomposer: kernel action events not available")

    async def stop_extension(self) -> None:
        self._expiry.stop()
        self.service.close()


KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
