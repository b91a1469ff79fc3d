"""One typed configuration for the engine; adapters translate theirs into it.

The same TOML file serves the CLI (``--config`` or ``xcomposer.toml`` in the
current folder), the MkDocs plugin (``config: FILE``) and the Jupyter extension.

.. code-block:: toml

    [backend]                 # the main backend (default: the embedded SmolLM2)
    backend = "llamacpp"
    model = "models/qwen2-vl-2b-q4_k_m.gguf"
    mmproj = "models/mmproj-qwen2-vl-2b-f16.gguf"

    [backends.served]         # more backends, by name
    backend = "openai"
    base_url = "http://gpu-box:23333/v1"
    model = "internlm-xcomposer2d5-7b"

    [roles]                   # which backend does what (default: the main one)
    write = "served"

    [library]
    roots = ["docs/images"]
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

BackendKind = Literal["llamacpp", "transformers", "openai"]
RecipeName = Literal["auto", "chat", "completion", "xcomposer2"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendConfig(_Strict):
    """Where the model runs and how it is loaded."""

    backend: BackendKind = "llamacpp"
    """Which runtime: ``llamacpp`` (GGUF on CPU/GPU), ``transformers`` (PyTorch), ``openai`` (a server)."""
    model: str | None = None
    """A local path, a Hugging Face repo id, or the served model's name. ``None``: the embedded default."""
    model_file: str | None = None
    """With a repo id for ``llamacpp``: the GGUF file name (or glob) inside the repo."""
    mmproj: str | None = None
    """``llamacpp``: the vision projector GGUF (path, or file name inside the ``model`` repo)."""
    recipe: RecipeName = "auto"
    """Prompt family: ``chat`` (the model's chat template), ``completion`` (base models), ``xcomposer2``."""

    # llama.cpp
    n_ctx: int = Field(4096, ge=256)
    """Context window in tokens."""
    n_threads: int | None = Field(None, ge=1)
    """CPU threads for generation and prompt processing (default: the cores this process may
    use, less those the load average shows busy; set it to choose, e.g. ``n_threads = 2``
    beside a busy server, or the core count on a machine of your own)."""
    n_gpu_layers: int = 0
    """Layers offloaded to the GPU (-1: all)."""

    # transformers
    device: str = "auto"
    """``cuda``, ``cpu``, ``mps`` or ``auto`` (accelerate's device_map)."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Weights' dtype."""
    load_in_4bit: bool = False
    """Quantise to 4 bits on load (needs bitsandbytes)."""
    attn_implementation: str | None = None
    """e.g. ``sdpa``, ``flash_attention_2``, ``eager``."""
    trust_remote_code: bool = False
    """Allow the model's own code (the InternLM-XComposer family needs it)."""
    hd_num: int = Field(9, ge=1)
    """InternLM-XComposer 2.5: number of high-resolution image tiles."""

    # OpenAI-compatible servers
    base_url: str | None = None
    """e.g. ``http://127.0.0.1:8000/v1`` (LMDeploy, vLLM, llama.cpp's server)."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the API key (the key itself is never stored)."""
    timeout: float = Field(120.0, gt=0)
    """Seconds per request, wall clock, whole answer included (a trickling server is cut off)."""
    max_retries: int = Field(4, ge=0)
    """Retries on 429 and 5xx, with exponential backoff (Retry-After honoured)."""
    concurrency: int | None = Field(None, ge=1)
    """``openai``: requests in flight at once (default: the server's parallel slots where it
    says, as llama.cpp's ``/props`` does, else 4; local backends always run one at a time)."""
    image_max_side: int = Field(1024, ge=32)
    """Images are downscaled so their longer side is at most this before upload."""
    allow_insecure_remote: bool = False
    """Allow sending an API key over plain http to a non-loopback host."""
    vision: bool | None = None
    """``openai``: whether the served model sees images (unset: discovered from the server,
    e.g. llama.cpp's ``/props`` or Ollama's ``/api/show``, else one probe with a tiny image)."""


class GenerationConfig(_Strict):
    """Sampling settings shared by every backend; part of every cache key."""

    temperature: float = Field(0.3, ge=0)
    """0 turns sampling off (greedy, deterministic)."""
    top_p: float = Field(0.9, gt=0, le=1)
    repeat_penalty: float = Field(1.3, ge=1)
    """Small models loop on long outputs without it."""
    seed: int = 0
    """Sampling seed: the same seed gives the same article."""
    section_tokens: int = Field(180, ge=16)
    """Token budget of one section (small models: short sections avoid runaway repetition)."""


class RolesConfig(_Strict):
    """Which named backend serves which step (``None``: the main ``[backend]``)."""

    write: str | None = None
    """Outline, sections and edits."""
    place: str | None = None
    """Choosing where images go."""
    caption: str | None = None
    """Captions (retrieval queries) for the chosen spots."""
    select: str | None = None
    """Choosing among candidate images (needs vision to look at them)."""
    describe: str | None = None
    """Captions, alt text and answers about one image."""


class LibraryConfig(_Strict):
    """The writer's own images."""

    roots: list[str] = []
    """Image folders (relative paths are relative to the config file)."""
    index_dir: str | None = None
    """Where the index lives (default: ``.xcomposer/`` beside the first root)."""
    embeddings: str = "minilm"
    """Text embedding model: ``minilm`` (the embedded all-MiniLM-L6-v2), a local path or hub id."""
    image_embeddings: str | None = None
    """Optional CLIP/SigLIP model (path or hub id) for image embeddings fused with the text score."""
    docs_dir: str | None = None
    """A Markdown folder whose alt text and captions describe the images."""
    ocr: bool = False
    """Read text in screenshots and diagrams (needs the ``ocr`` extra)."""
    max_image_pixels: int = Field(64_000_000, ge=1)
    """Larger images are skipped (decompression bombs)."""
    max_file_bytes: int = Field(50_000_000, ge=1)
    """Larger files are skipped."""
    follow_symlinks_out: bool = False
    """Follow symlinks that leave the root."""


class EngineConfig(_Strict):
    """Everything the engine needs; defaults give the embedded, offline setup."""

    backend: BackendConfig = BackendConfig()
    backends: dict[str, BackendConfig] = {}
    roles: RolesConfig = RolesConfig()
    generation: GenerationConfig = GenerationConfig()
    library: LibraryConfig = LibraryConfig()
    cache_dir: str | None = None
    """Result cache (default: ``$XDG_CACHE_HOME/xcomposer``)."""
    frozen: bool = False
    """Never call a model: answers come from the cache or the call fails."""

    def backend_for(self, role: str) -> tuple[str, BackendConfig]:
        """The (name, config) of the backend that serves ``role``."""
        name = getattr(self.roles, role, None)
        if name is None:
            return "main", self.backend
        if name not in self.backends:
            known = ", ".join(sorted(self.backends)) or "none"
            raise ConfigError(
                f"roles.{role} names backend '{name}', which is not configured (known: {known})",
                f"add a [backends.{name}] table or fix roles.{role}",
            )
        return name, self.backends[name]

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "xcomposer"

    def with_overrides(self, **backend_overrides: Any) -> EngineConfig:
        """A copy with the main backend's keys overridden (``None`` values are ignored)."""
        changes = {k: v for k, v in backend_overrides.items() if v is not None}
        if not changes:
            return self
        data = self.backend.model_dump() | changes
        return self.model_copy(update={"backend": _validate(BackendConfig, data, "backend")})

    def with_settings(
        self, table: Mapping[str, Any], base_dir: Path, source: str = "config"
    ) -> EngineConfig:
        """A copy with ``table`` (shaped as the TOML: ``backends``, ``roles``, ``library`` ...)
        merged over it key by key, relative paths resolved against ``base_dir``."""
        if not table:
            return self
        data = _merged(self.model_dump(exclude_defaults=True), table)
        return config_from_dict(data, base_dir=base_dir, source=source)

    def for_folder(
        self,
        folder: Path,
        *,
        backend: Mapping[str, Any] | None = None,
        library: Sequence[str] = (),
        cache_dir: str | Path | None = None,
    ) -> EngineConfig:
        """A copy for a front end whose own options name paths relative to ``folder``
        (mkdocs.yml's folder, a Jupyter server's root).

        ``backend`` keys override the main backend's (``None``: not set); a ``model`` or
        ``mmproj`` that is a file in ``folder``, or names a ``.gguf``, becomes its path (a
        hub id or a served model's name stays as written).  ``library`` folders come first
        among the library roots; ``cache_dir`` replaces the result cache.
        """

        def in_folder(value: Any) -> Any:
            if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
                return value
            candidate = folder / value
            local = candidate.exists() or value.endswith(".gguf")
            return str(candidate.resolve()) if local else value

        overrides = {
            k: in_folder(v) if k in ("model", "mmproj") else v for k, v in (backend or {}).items()
        }
        cfg = self.with_overrides(**overrides)
        roots = [str((folder / Path(p).expanduser()).resolve()) for p in library]
        roots += [r for r in cfg.library.roots if r not in roots]
        updates: dict[str, Any] = {"library": cfg.library.model_copy(update={"roots": roots})}
        if cache_dir is not None:
            updates["cache_dir"] = str((folder / Path(cache_dir).expanduser()).resolve())
        return cfg.model_copy(update=updates)


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _validate(model: type[BaseModel], data: dict, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in (where, *first["loc"]) if p)
        if first["type"] == "extra_forbidden":
            raise ConfigError(
                f"unknown option '{key}'", "remove it or check its spelling in the docs"
            ) from None
        raise ConfigError(
            f"bad value for '{key}': {first['msg']}", "fix it in the configuration"
        ) from None


def config_from_dict(
    data: dict, base_dir: Path | None = None, source: str = "config"
) -> EngineConfig:
    """Validate a plain dict (from TOML, mkdocs.yml or traitlets) into an EngineConfig.

    Relative library roots and index/cache dirs are resolved against ``base_dir``.
    """
    cfg: EngineConfig = _validate(EngineConfig, data, "")
    if base_dir is None:
        return cfg
    lib = cfg.library

    def rel(p: str | None) -> str | None:
        return None if p is None else str((base_dir / Path(p).expanduser()).resolve())

    library = lib.model_copy(
        update={
            "roots": [rel(r) for r in lib.roots],
            "index_dir": rel(lib.index_dir),
            "docs_dir": rel(lib.docs_dir),
        }
    )
    return cfg.model_copy(update={"library": library, "cache_dir": rel(cfg.cache_dir)})


def load_config(
    path: str | os.PathLike | None = None, search_dir: Path | None = None
) -> EngineConfig:
    """Load the engine config: ``path``, else ``xcomposer.toml`` in ``search_dir`` (cwd), else defaults."""
    if path is None:
        candidate = (search_dir or Path.cwd()) / "xcomposer.toml"
        if not candidate.is_file():
            return EngineConfig()
        path = candidate
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found", "check the path given to --config"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(
            f"config file {path} is not valid TOML ({err})", "fix the syntax"
        ) from None
    try:
        return config_from_dict(data, base_dir=path.parent.resolve())
    except ConfigError as err:
        raise ConfigError(f"{path}: {err.what}", err.fix) from None
