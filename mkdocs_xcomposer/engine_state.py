"""What the engine said last time, remembered, so a fully cached rebuild never imports it.

Cache keys need the engine's identity (settings, recipe versions) and the model
files' fingerprints.  Computing them means importing the engine (pydantic, numpy:
a third of a second), which a build whose blocks all come from the cache otherwise
never needs.  So the facts are stored in ``cache_dir/index/plugin-state.json``
(local, not committed) under a signature of everything they are derived from:

- the plugin's engine settings, the engine TOML's bytes, the working directory;
- every file of the installed ``xcomposer`` package, by size and mtime (a changed
  recipe or engine changes the signature);
- every model file the engine resolved, by size and mtime.

When the signature and the model files match, the stored facts are used; otherwise
(or when a model is named by a hub id, which has no file to check here) the engine
is imported and asked, and the state rewritten.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .config import BACKEND_KEYS, XComposerConfig

FORMAT = 2
STATE_FILE = "plugin-state.json"


class EngineFacts(Protocol):
    """What jobs need from the engine to name and check cache entries."""

    @property
    def backend_names(self) -> set[str]: ...

    def identity(self, backend: str | None = None) -> dict[str, Any]: ...

    def models(self, backend: str | None = None) -> Any: ...

    @property
    def library_reads(self) -> dict[str, Any]: ...


@dataclass
class RememberedFacts:
    """Engine facts read back from the state file."""

    names: list[str]
    identities: dict[str, dict[str, Any]]
    model_prints: dict[str, Any]
    library_roots: list[str] = field(default_factory=list)
    library_reads: dict[str, Any] = field(default_factory=dict)
    """The library settings that decide which files it reads for an image."""

    @property
    def backend_names(self) -> set[str]:
        return set(self.names)

    def identity(self, backend: str | None = None) -> dict[str, Any]:
        return self.identities[backend or ""]

    def models(self, backend: str | None = None) -> Any:
        return self.model_prints[backend or ""]


def signature(plugin: XComposerConfig, config_dir: Path, cache_dir: Path) -> str | None:
    """A digest of everything the engine facts derive from (``None``: no engine installed)."""
    package = _package_dir("xcomposer")
    if package is None:
        return None
    settings: dict[str, Any] = {k: plugin[k] for k in BACKEND_KEYS}
    settings |= {
        "engine": plugin["engine"],
        "library": plugin["library"],
        "config": plugin["config"],
        "config_dir": str(config_dir),
        "cache_dir": str(cache_dir),
        "cwd": os.getcwd(),
    }
    if plugin["config"]:
        settings["config_bytes"] = _sha256(Path(plugin["config"]))
    settings["package"] = _tree_stat(package)
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load(cache_dir: Path, sig: str | None) -> RememberedFacts | None:
    """The remembered facts if they were made under ``sig`` and the model files are unchanged."""
    if sig is None:
        return None
    try:
        state = json.loads((cache_dir / "index" / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None
    if state.get("signature") != sig or state.get("files") is None:
        return None
    if any(_stat(Path(p)) != (tuple(s) if s else None) for p, s in state["files"]):
        return None
    try:
        return RememberedFacts(
            state["names"],
            state["identities"],
            state["models"],
            state["library_roots"],
            state["library_reads"],
        )
    except (KeyError, TypeError):
        return None


def store(cache_dir: Path, sig: str | None, facts: EngineFacts, roots: list[str]) -> None:
    """Remember ``facts`` (computed by the live engine) under ``sig``."""
    if sig is None:
        return
    engines: Any = facts
    names = sorted(facts.backend_names)
    choices: list[str | None] = [None, *names]
    files = engines.model_files() if hasattr(engines, "model_files") else None
    state = {
        "format": FORMAT,
        "signature": sig,
        "names": names,
        "identities": {c or "": facts.identity(c) for c in choices},
        "models": {c or "": facts.models(c) for c in choices},
        "library_roots": roots,
        "library_reads": facts.library_reads,
        # None: a model without a local file to watch (a hub id): never trust the state.
        "files": None if files is None else [(str(p), _stat(p)) for p in files],
    }
    path = cache_dir / "index" / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)  # finds, without importing
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _tree_stat(root: Path) -> list[tuple[str, int, int]]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith((".py", ".toml", ".json", ".txt")):
                st = (Path(folder) / name).stat()
                rel = os.path.relpath(os.path.join(folder, name), root)
                found.append((rel, st.st_size, st.st_mtime_ns))
    return sorted(found)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
