"""A content fingerprint of image folders, taken from the library's own scan.

A cached result that chose among a folder's images (a composed block) is stale
when anything the library would read for those images changed.  So the
fingerprint walks the roots exactly as an index update does
(:func:`~.scan.scan_root`: the same suffixes, hidden folders, symlink policy
and skipped folders) and covers, by relative path and SHA-256, every file the
library reads for an image: the image, its sidecars (``NAME.txt``,
``NAME.md``, ``NAME.png.txt``, ``NAME.png.md``), its folder's captions file,
and, when a docs folder is configured, the alt text and captions its Markdown
pages give the image.  Modification times are not part of it (a fresh clone
has new ones), but they let a long-lived process skip re-reading unchanged
files.  No model, no index, no image decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..images import IMAGE_SUFFIXES, file_sha256
from .docs_refs import collect_references
from .scan import FOLDER_CAPTION_FILES, Found, Skip, scan_root
from .sources import sidecar_names

if TYPE_CHECKING:  # not imported at run time: a frozen build computes this without pydantic
    from ..config import LibraryConfig

_HASHES: dict[str, tuple[int, int, str]] = {}
_LOCK = threading.Lock()
_VERSION = "xcomposer.library.fingerprint/1"


def _content_hash(path: Path, size: int, mtime_ns: int) -> str:
    key = str(path)
    with _LOCK:
        known = _HASHES.get(key)
    if known is not None and known[:2] == (size, mtime_ns):
        return known[2]
    try:
        digest = file_sha256(path)
    except OSError as err:
        digest = f"unreadable:{err.errno}"
    with _LOCK:
        _HASHES[key] = (size, mtime_ns, digest)
    return digest


def file_fingerprint(path: Path) -> str:
    """The SHA-256 of one file, re-read only when its size or mtime changed."""
    try:
        st = path.stat()
    except OSError as err:
        return f"unreadable:{err.errno}"
    return _content_hash(path, st.st_size, st.st_mtime_ns)


def read_files(item: Found) -> list[str]:
    """Names, in the image's folder, of the files the library reads for it besides the image."""
    sidecars = [n for n in sidecar_names(item.path) if n in item.folder_files]
    captions = [n for n in FOLDER_CAPTION_FILES if n in item.folder_files]
    return sidecars + captions


def describes_an_image(path: Path) -> bool:
    """Whether the library reads ``path`` for an image: a sidecar beside an image file
    (:func:`~.sources.sidecar_names`), or a folder's captions file."""
    if path.name in FOLDER_CAPTION_FILES:
        return True
    images = [path.with_suffix(""), *(path.with_suffix(s) for s in IMAGE_SUFFIXES)]
    return any(
        image.suffix.lower() in IMAGE_SUFFIXES
        and path.name in sidecar_names(image)
        and image.is_file()
        for image in images
    )


def library_reads(config: LibraryConfig | None) -> dict[str, Any]:
    """The library settings that decide which files it reads for an image (the keywords of
    :func:`library_fingerprint`)."""
    return {
        "docs_dir": getattr(config, "docs_dir", None),
        "follow_symlinks_out": bool(getattr(config, "follow_symlinks_out", False)),
    }


def library_fingerprint(
    roots: Sequence[str | Path],
    *,
    docs_dir: str | Path | None = None,
    follow_symlinks_out: bool = False,
) -> str:
    """One digest over everything the library reads for the images under ``roots``.

    Equal digests mean an index of these roots would hold the same images with
    the same descriptions; use it as (part of) a cache key.  ``docs_dir`` and
    ``follow_symlinks_out`` are the library's settings (:func:`library_reads`).
    """
    resolved = []
    for root in roots:
        path = Path(root).expanduser().resolve()
        if path not in resolved:
            resolved.append(path)
    refs = collect_references(Path(docs_dir) if docs_dir else None)
    digest = hashlib.sha256(_VERSION.encode("utf-8"))
    for number, root in enumerate(resolved):
        others = {r for r in resolved if r != root and r.is_relative_to(root)}
        digest.update(f"root {number}\n".encode())
        hashed_folder_files: dict[tuple[str, str], str] = {}
        for item in scan_root(
            root,
            follow_symlinks_out=follow_symlinks_out,
            skip_dirs=frozenset({*others, root / ".xcomposer"}),
        ):
            if isinstance(item, Skip):
                continue
            line = [item.relpath, _content_hash(item.path, item.size, item.mtime_ns)]
            for name in read_files(item):
                key = (str(item.path.parent), name)
                if key not in hashed_folder_files:
                    hashed_folder_files[key] = file_fingerprint(item.path.with_name(name))
                line += [name, hashed_folder_files[key]]
            if refs:
                line.append(refs.get(os.path.realpath(item.path), []))
            digest.update(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


class FolderFingerprints:
    """Folder fingerprints remembered until :meth:`forget` (once per build): many cache
    keys share a folder, and it is scanned once.  File hashes outlive it (by stat)."""

    def __init__(self) -> None:
        self._known: dict[tuple[Path, str], str] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Files may have changed: folders are scanned again on their next use."""
        with self._lock:
            self._known = {}

    def folder(self, root: Path, reads: dict[str, Any] | None = None) -> str:
        """:func:`library_fingerprint` of ``root`` with the library's settings ``reads``."""
        key = (root, json.dumps(reads or {}, sort_keys=True, default=str))
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        found = library_fingerprint([root], **(reads or {}))
        with self._lock:
            self._known[key] = found
        return found

    def folders(self, roots: Sequence[Path], reads: dict[str, Any] | None = None) -> str:
        """One digest over each root's fingerprint, in order."""
        digest = hashlib.sha256()
        for root in roots:
            digest.update(self.folder(root, reads).encode("ascii"))
        return digest.hexdigest()
