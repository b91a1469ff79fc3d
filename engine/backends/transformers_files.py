"""A transformers model's files: a local folder or a Hugging Face repo (downloaded or cached).

Also what the backend reads from them without loading the model: a cheap digest of the
folder for the cache fingerprint, and the parameter count for out-of-memory messages.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from ..errors import ModelError
from .model_files import hub_download, looks_like_repo_id

INSTALL_HINT = "install the runtime: pip install 'mkdocs-xcomposer[transformers]'"
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5"}
SMALL_FILE_SUFFIXES = {".json", ".jinja", ".py", ".model", ".txt", ".tiktoken"}


def model_folder(name: str) -> Path | None:
    """The model folder ``name`` names, or None for a hub repo id; a missing path raises."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model folder {path} has no config.json",
                "give the folder save_pretrained wrote (config.json and the weights)",
            )
        return path.resolve()
    if path.exists():
        raise ModelError(
            f"model {path} is a file, not a model folder",
            'give the folder with config.json, or use backend = "llamacpp" for a GGUF',
        )
    if looks_like_repo_id(name):
        return None
    raise ModelError(f"model folder {name} not found", "check the path given as model")


def hub_file(repo: str, filename: str, required: bool = True) -> Path | None:
    """A file of the hub repo: downloaded (online) or from the cache (offline)."""
    try:
        found = hub_download(repo, filename)
    except ImportError:
        raise ModelError(
            f"model {repo} is a Hugging Face repo id but huggingface_hub is not installed",
            f"{INSTALL_HINT}, or give a local folder",
        ) from None
    if found is not None or not required:
        return found
    raise ModelError(
        f"model {repo} is not in the local Hugging Face cache and could not be downloaded",
        f"download it while online (huggingface-cli download {repo}) or give a local folder",
    )


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids downloads."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def cached_hub_file(repo: str, filename: str) -> Path | None:
    """A file of the hub repo if the local cache has it (never downloads), else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def cached_snapshot(repo: str) -> Path | None:
    """The cached snapshot folder of the hub repo, or None."""
    found = cached_hub_file(repo, "config.json")
    return found.parent if found else None


def folder_digest(folder: Path) -> str:
    """config files by content, weights by name, size and mtime: cheap, and changes with them."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        stat = path.stat()
        if path.suffix in WEIGHT_SUFFIXES:
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        elif path.suffix in SMALL_FILE_SUFFIXES and stat.st_size < 10_000_000:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\n")
    return digest.hexdigest()[:16]


def count_parameters(folder: Path) -> tuple[float, bool]:
    """Parameters from safetensors headers (exact), else from weight file sizes (about)."""
    total, exact = 0.0, True
    files = sorted(folder.glob("*.safetensors"))
    for path in files:
        try:
            with open(path, "rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(size))
        except (OSError, ValueError):
            return 0.0, False
        for name, info in header.items():
            if name != "__metadata__":
                total += math.prod(info.get("shape") or [1])
    if not files:
        exact = False
        total = sum(p.stat().st_size for p in folder.glob("*.bin")) / 2.0
    return total, exact
