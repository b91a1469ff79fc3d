"""The Jupyter server extension: configuration, the shared engine service, the REST routes."""

from __future__ import annotations

from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
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
        """The engine config: the TOML file (or xcomposer.toml in the root), then these options."""
        root = self.root_dir
        if self.engine_config_file:
            config = load_config(root / Path(self.engine_config_file).expanduser())
        else:
            config = load_config(None, search_dir=root)
        config = config.with_overrides(
            backend=self.backend, model=self.model, mmproj=self.mmproj, base_url=self.base_url
        )
        updates: dict = {}
        if self.library:
            roots = [str((root / Path(p).expanduser()).resolve()) for p in self.library]
            updates["library"] = config.library.model_copy(update={"roots": roots})
        if self.cache_dir:
            updates["cache_dir"] = str((root / Path(self.cache_dir).expanduser()).resolve())
        return config.model_copy(update=updates) if updates else config

    def initialize_settings(self) -> None:
        self.service = EngineService(self.engine_config, self.engine_factory)

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes())

    async def stop_extension(self) -> None:
        self.service.close()
