"""Walking image roots safely: no symlink loops, no escaping the root, no stopping on errors.

:func:`scan_root` yields every image file under a root (by suffix) together with
the folder listing it sits in (so description sources can be looked up without
more system calls), and every problem as a :class:`Skip` with a reason.  Nothing
here decodes images: that is :func:`xcomposer.images.open_image`'s job.

This is the one file-selection rule: the index and the folder fingerprint
(:mod:`.fingerprint`) both walk through it.  Symlinked folders: a real folder
is always walked under its own path; a link to a folder that the walk reaches
anyway (inside the root, not hidden) is skipped as a second name for it, a
link back to a folder above it as a loop, and a link that leaves the root is
followed only with ``follow_symlinks_out``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..images import IMAGE_SUFFIXES

#: Files we know are images but cannot decode: skipped with this reason instead of ignored.
UNSUPPORTED_SUFFIXES = {
    ".heic": "HEIC images are not supported; convert it to JPEG or WebP",
    ".heif": "HEIF images are not supported; convert it to JPEG or WebP",
}

#: Files that describe images (never counted as ignored).
SIDECAR_SUFFIXES = {".txt", ".md", ".markdown"}
FOLDER_CAPTION_FILES = ("captions.yml", "captions.yaml", "captions.json")


@dataclass(frozen=True)
class Found:
    """An image file to index."""

    path: Path
    """The path as found under the root (symlinks inside the root are kept, not resolved)."""
    relpath: str
    """Relative to the root, ``/``-separated."""
    size: int
    mtime_ns: int
    folder_files: frozenset[str]
    """Names in the image's folder (to find sidecars without more system calls)."""
    text_stats: Mapping[str, tuple[int, int]]
    """``(size, mtime_ns)`` of the folder's sidecar-like files (``.txt``, ``.md``, captions)."""


@dataclass(frozen=True)
class Skip:
    path: Path
    reason: str


@dataclass
class ScanCounts:
    ignored: int = 0


def _is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _resolve_link(path: str) -> str:
    """The real path behind a symlink; raises OSError(ELOOP) on a loop, FileNotFoundError if dangling."""
    real = os.path.realpath(path, strict=True)
    return real


def _walked_anyway(real: str, root_real: str, skip_real: set[str]) -> bool:
    """Whether the walk reaches folder ``real`` under its own path (inside the root, not hidden)."""
    if not _is_inside(real, root_real) or real == root_real:
        return False
    rel = os.path.relpath(real, root_real)
    if any(part.startswith(".") for part in rel.split(os.sep)):
        return False
    return not any(_is_inside(real, skipped) for skipped in skip_real)


def _followed_link(path: str, root_real: str, follow_out: bool) -> tuple[str, Skip | None]:
    """A symlink's real target, or why it is not followed."""
    try:
        real = _resolve_link(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "", Skip(Path(path), "symlink loop; remove or fix the link")
        if isinstance(err, FileNotFoundError):
            return "", Skip(Path(path), "broken symlink (its target does not exist)")
        return "", Skip(Path(path), f"cannot follow the symlink ({err.strerror})")
    except RuntimeError:  # pragma: no cover - older Pythons raise this on loops
        return "", Skip(Path(path), "symlink loop; remove or fix the link")
    if not follow_out and not _is_inside(real, root_real):
        return real, Skip(
            Path(path),
            f"symlink leads outside the image folder (to {real}); not followed "
            "unless library.follow_symlinks_out is set",
        )
    return real, None


def _linked_folder_problem(
    path: str, real: str, folder_real: str, root_real: str, skip_real: set[str]
) -> Skip | None:
    """Why a symlinked folder (``real``: its target; empty for a plain folder) is not walked:
    it leads back above itself, or to a folder the walk reaches under its own name."""
    if not real:
        return None
    if _is_inside(folder_real, real):
        return Skip(Path(path), "symlink loop (it leads back to a folder above it)")
    if _walked_anyway(real, root_real, skip_real):
        where = os.path.relpath(real, root_real).replace(os.sep, "/")
        return Skip(
            Path(path),
            f"symlink to {where}/, which is indexed under its own name; not indexed twice",
        )
    return None


def scan_root(
    root: Path,
    *,
    follow_symlinks_out: bool = False,
    skip_dirs: frozenset[Path] = frozenset(),
    counts: ScanCounts | None = None,
) -> Iterator[Found | Skip]:
    """Yield the images (and the problems) under ``root``, folders in sorted order.

    Hidden files and folders (``.git``, ``.xcomposer``) are not entered.  A symlink
    is followed when it stays inside the root (or ``follow_symlinks_out`` is set);
    a folder reached twice (a symlink cycle) is skipped as a loop.
    """
    counts = counts if counts is not None else ScanCounts()
    root_real = os.path.realpath(root)
    skip_real = {os.path.realpath(d) for d in skip_dirs}
    visited: set[tuple[int, int]] = set()
    try:
        st = os.stat(root_real)
        visited.add((st.st_dev, st.st_ino))
    except OSError as err:
        yield Skip(Path(root), f"cannot read the folder ({err.strerror})")
        return
    stack: list[tuple[str, str]] = [(str(root), "")]  # (path as walked, relpath prefix)
    while stack:
        folder, prefix = stack.pop()
        folder_real = os.path.realpath(folder)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            yield Skip(Path(folder), f"cannot list the folder ({err.strerror})")
            continue
        names = frozenset(e.name for e in entries)
        text_stats: dict[str, tuple[int, int]] = {}
        images: list[tuple[str, str, os.stat_result]] = []
        subfolders: list[tuple[str, str]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{prefix}{entry.name}"
            path = entry.path
            try:
                is_link = entry.is_symlink()
            except OSError:
                is_link = False
            real = ""
            if is_link:
                real, problem = _followed_link(path, root_real, follow_symlinks_out)
                if problem is not None:
                    yield problem
                    continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    yield Skip(Path(path), "symlink loop; remove or fix the link")
                else:
                    yield Skip(Path(path), f"cannot read the file ({err.strerror})")
                continue
            if entry.is_dir(follow_symlinks=True):
                key = (st.st_dev, st.st_ino)
                problem = _linked_folder_problem(path, real, folder_real, root_real, skip_real)
                if problem is None and key in visited:
                    problem = Skip(
                        Path(path), "another name for a folder already indexed; not indexed twice"
                    )
                if problem is not None:
                    yield problem
                elif os.path.realpath(path) not in skip_real:
                    visited.add(key)
                    subfolders.append((path, f"{rel}/"))
                continue
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix in IMAGE_SUFFIXES:
                images.append((path, rel, st))
            elif suffix in UNSUPPORTED_SUFFIXES:
                yield Skip(Path(path), UNSUPPORTED_SUFFIXES[suffix])
            elif suffix in SIDECAR_SUFFIXES or entry.name in FOLDER_CAPTION_FILES:
                text_stats[entry.name] = (st.st_size, st.st_mtime_ns)
            else:
                counts.ignored += 1
        for path, rel, st in images:  # after the listing: text_stats is complete
            yield Found(Path(path), rel, st.st_size, st.st_mtime_ns, names, text_stats)
        # Depth first, in name order: pushing reversed keeps the output sorted.
        stack.extend(reversed(subfolders))
