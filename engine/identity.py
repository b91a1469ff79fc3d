"""What decides an engine's output, from its config alone: no model loaded, no machine paths.

A cache of whole results (the MkDocs plugin's blocks, a notebook's cells) keys on
:func:`engine_identity`: when it changes, the results are made again.  It covers
every setting that can change an answer, by leaving out only the settings known
not to (:data:`NOT_OUTPUT`): a setting added later renews caches until someone
declares it harmless, never the other way round.  Model paths are reduced to their
file names (the same GGUF elsewhere is the same model); a served model keeps its name.

The file identities of the models themselves (size, hash) come from the backends,
which need the files: :meth:`xcomposer.Engine.model_fingerprints`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cache import cache_key
from .config import BackendConfig, EngineConfig
from .recipes import Recipe, load_recipe

#: The pipeline's steps; each can be served by its own backend (``[roles]``).
ROLES = ("write", "place", "caption", "select", "describe")

#: Settings that change where or how fast a model runs, never what it answers.
NOT_OUTPUT: dict[str, frozenset[str]] = {
    "backend": frozenset(
        {
            "n_threads",
            "n_gpu_layers",
            "device",
            "attn_implementation",
            "base_url",
            "api_key_env",
            "timeout",
            "max_retries",
            "concurrency",
            "allow_insecure_remote",
        }
    ),
    # roots, index and docs folders are paths: their *content* is fingerprinted by the caller
    "library": frozenset({"roots", "index_dir", "docs_dir"}),
    "engine": frozenset({"cache_dir", "frozen", "backends", "backend", "roles"}),
}


def recipe_for(config: BackendConfig) -> Recipe:
    """The prompt recipe a backend uses (``auto``: from the model's own name)."""
    name = config.recipe
    if name == "auto":
        # the model's own name (file, folder or repo), never the folders above it
        model = Path(config.model or "").name.lower()
        # a server applies the model's own template: it only ever takes chat messages
        served = config.backend == "openai"
        name = "xcomposer2" if "xcomposer" in model and not served else "chat"
    return load_recipe(name)


def backend_identity(config: BackendConfig) -> dict[str, Any]:
    """A backend's output-changing settings, paths reduced to file names, and its recipe."""
    settings = config.model_dump()
    found = {k: v for k, v in settings.items() if k not in NOT_OUTPUT["backend"]}
    if config.backend != "openai":
        found["model"] = _file_name(config.model)
        found["mmproj"] = _file_name(config.mmproj)
    found["recipe"] = recipe_for(config).key
    return found


def engine_identity(config: EngineConfig) -> dict[str, Any]:
    """Everything in ``config`` that decides the output, as plain JSON-able data.

    ``pipeline`` (:data:`~xcomposer.PIPELINE_VERSION`), per role the backend's name,
    settings and recipe version, the sampling settings and the library's matching settings.
    """
    from .compose import PIPELINE_VERSION

    roles = {}
    for role in ROLES:
        name, backend = config.backend_for(role)
        roles[role] = {"name": name, **backend_identity(backend)}
    library = config.library.model_dump()
    rest = config.model_dump(exclude={"library", "generation"})
    return {
        "pipeline": PIPELINE_VERSION,
        "roles": roles,
        "generation": config.generation.model_dump(),
        "library": {k: v for k, v in library.items() if k not in NOT_OUTPUT["library"]}
        | {"docs_dir": config.library.docs_dir is not None},
        **{k: v for k, v in rest.items() if k not in NOT_OUTPUT["engine"]},
    }


def identity_digest(config: EngineConfig) -> str:
    """A short hex digest of :func:`engine_identity`: equal digests, equal output."""
    return cache_key(engine_identity(config))[:16]


def serving_every_role(config: EngineConfig, backend: str | None) -> EngineConfig:
    """``config`` with every role served by the named backend (``None``: unchanged)."""
    if backend is None:
        return config
    roles = config.roles.model_copy(update=dict.fromkeys(ROLES, backend))
    updated = config.model_copy(update={"roles": roles})
    updated.backend_for(ROLES[0])  # an unknown name fails here, with the fix
    return updated


def local_model_files(config: EngineConfig) -> list[Path] | None:
    """The local files every backend's model comes from (weights, projector, the embedded
    GGUF), so a cache of results can check by ``stat`` that they did not change.

    ``None`` when a model is named by a hub id: no file here says whether it changed.
    A missing file is listed too (it may appear).  Served models have no local file.
    """
    from .backends.model_files import EMBEDDED_PACKAGE

    files: list[Path] = []
    for backend in [config.backend, *config.backends.values()]:
        if backend.backend == "openai":
            continue
        if backend.model is None and backend.backend == "llamacpp":
            files.extend(_package_files(EMBEDDED_PACKAGE, "*.gguf"))
        for name in (backend.model, backend.mmproj):
            if name is None:
                continue
            path = Path(name).expanduser()
            if path.is_dir():
                files.extend(sorted(p for p in path.iterdir() if p.is_file()))
            elif path.is_file() or path.suffix:
                files.append(path)
            else:
                return None  # a hub id: resolved at load time, nothing here to stat
    return files


def _package_files(package: str, pattern: str) -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec(package)  # found without importing it
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(Path(next(iter(spec.submodule_search_locations))).glob(pattern))


def _file_name(value: str | None) -> str | None:
    """A local model path reduced to its file or folder name; hub ids stay as they are."""
    if not value or ("/" not in value and "\\" not in value):
        return value
    path = Path(value).expanduser()
    weights = path.suffix.lower() in (".gguf", ".safetensors", ".bin")
    local = path.is_absolute() or value.startswith((".", "~")) or weights or path.exists()
    return path.name if local else value
