"""What the engine said last time, remembered, so a fully cached run never imports it.

Task names (:mod:`.reproducible`) need the engine's identity (settings, recipe
versions) and the model files' fingerprints.  Computing them imports the engine
(pydantic, numpy: a third of a second), which a run whose tasks all come from the
store otherwise never needs.  So the facts are kept in a state file (local, not
committed) under a signature of everything they derive from:

- the caller's settings, and the bytes of the config files it names;
- the working directory;
- every file of the installed ``xcomposer`` package, by size and mtime (a changed
  recipe or engine changes the signature);
- every model file the engine resolved, by size and mtime.

When the signature and the model files match, the stored facts are used; otherwise
(or when a model is named by a hub id, which has no file to check here) the caller
asks the live engine (:class:`~.engines.Engines`) and remembers its answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .cache import write_atomic
from .images import file_sha256

if TYPE_CHECKING:
    from .config import EngineConfig
    from .engines import Engines

FORMAT = 2
PACKAGE_DIR = Path(__file__).resolve().parent


class EngineFacts(Protocol):
    """What tasks need from the engine to name and check store entries."""

    @property
    def backend_names(self) -> set[str]: ...

    @property
    def library_roots(self) -> list[str]: ...

    @property
    def library_reads(self) -> dict[str, Any]: ...

    def identity(self, backend: str | None = None) -> dict[str, Any]: ...

    def models(self, backend: str | None = None) -> Any: ...


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


def facts_signature(settings: dict[str, Any], config_files: Sequence[Path] = ()) -> str:
    """A digest of everything the engine facts derive from: ``settings`` (JSON-able), the
    bytes of ``config_files``, the working directory and the installed engine's files."""
    blob = {
        "settings": settings,
        "config_bytes": [_file_digest(Path(p)) for p in config_files],
        "cwd": os.getcwd(),
        "package": _tree_stat(PACKAGE_DIR),
    }
    text = json.dumps(blob, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recall_facts(state_file: Path, signature: str) -> RememberedFacts | None:
    """The remembered facts if they were made under ``signature`` and the model files are
    unchanged; else ``None`` (ask the live engine)."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None
    if state.get("signature") != signature or state.get("files") is None:
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


def remember_facts(
    state_file: Path, signature: str, facts: EngineFacts, model_files: list[Path] | None
) -> None:
    """Remember ``facts`` (the live engine's) under ``signature``.  ``model_files``: the local
    files the model fingerprints come from (``None``, a hub id: the state is never trusted)."""
    choices: list[str | None] = [None, *sorted(facts.backend_names)]
    state = {
        "format": FORMAT,
        "signature": signature,
        "names": sorted(facts.backend_names),
        "identities": {c or "": facts.identity(c) for c in choices},
        "models": {c or "": facts.models(c) for c in choices},
        "library_roots": facts.library_roots,
        "library_reads": facts.library_reads,
        "files": None if model_files is None else [(str(p), _stat(p)) for p in model_files],
    }
    data = json.dumps(state, indent=1, sort_keys=True, default=str).encode("utf-8")
    write_atomic(state_file, data)


class ProjectEngines:
    """A project's engine facts and engines across runs (a preview server rebuilds on every
    edit): remembered facts while nothing they derive from changed, the live
    :class:`~.engines.Engines` once a task runs, renewed when the settings change.

    ``signature`` names the settings (:func:`facts_signature`); ``backends`` (tests, an
    embedding application) replace configured backends by name, and are never remembered.
    """

    def __init__(self) -> None:
        self.engines: Engines | None = None
        self._key: tuple[str, tuple[tuple[str, int], ...]] | None = None

    def facts(
        self,
        signature: str,
        config: Callable[[], EngineConfig],
        state_file: Path,
        backends: Mapping[str, Any] | None = None,
    ) -> EngineFacts:
        """The facts for ``signature``: the live engines', those remembered in ``state_file``,
        or asked anew (and remembered there)."""
        if self.engines is not None and self._key == _key(signature, backends):
            return self.engines
        if backends is None:
            remembered = recall_facts(state_file, signature)
            if remembered is not None:
                self.close()
                return remembered
        engines = self.live(signature, config, backends)
        if backends is None:
            remember_facts(state_file, signature, engines, engines.model_files())
        return engines

    def live(
        self,
        signature: str,
        config: Callable[[], EngineConfig],
        backends: Mapping[str, Any] | None = None,
    ) -> Engines:
        """The live engines for ``signature`` (``config()`` is asked only for new ones)."""
        from .engines import Engines

        key = _key(signature, backends)
        if self.engines is None or self._key != key:
            made = Engines(config(), backends)
            self.close()
            self.engines, self._key = made, key
        return self.engines

    def model_calls(self) -> int:
        """Real model calls the live engines made (none where no task ran)."""
        return self.engines.model_calls() if self.engines is not None else 0

    def close(self) -> None:
        if self.engines is not None:
            self.engines.close()
        self.engines, self._key = None, None


def _key(signature: str, backends: Mapping[str, Any] | None) -> tuple:
    # Backends by identity: the live engines hold them, so the ids stay unique.
    return (signature, tuple(sorted((k, id(v)) for k, v in (backends or {}).items())))


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


def _file_digest(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
