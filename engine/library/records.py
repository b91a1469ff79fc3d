"""The plain data the library hands out: matches, index reports, search filters."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

ORIENTATIONS = ("landscape", "portrait", "square")


@dataclass(frozen=True)
class Match:
    """One image found by :meth:`Library.search` (or :meth:`Library.entry`, with ``score`` 0).

    ``matched`` is the description source that matched the query best, as
    ``"<source>: <text>"`` (for example ``"sidecar: A red lighthouse at dusk"``);
    ``alt`` is the best short human-written description, for alt text.
    """

    path: Path
    sha256: str
    score: float
    description: str
    matched: str
    alt: str
    width: int
    height: int
    sources: tuple[tuple[str, str], ...] = ()
    """Every description source of the image, as ``(source, text)`` pairs, most trusted first."""
    relpath: str = ""
    """The path relative to its root, with ``/`` separators (what ``SearchFilters.glob`` sees)."""
    format: str = ""
    orientation: str = ""


@dataclass(frozen=True)
class SearchFilters:
    """Restrict a search.

    ``glob`` matches the image's path relative to its root (``/`` separators;
    ``screenshots/*`` or ``**/diagrams/**``); several patterns may be given, any
    one matching is enough.  ``min_width``/``min_height`` are pixels;
    ``orientation`` is ``landscape``, ``portrait`` or ``square``.
    """

    glob: str | tuple[str, ...] | None = None
    min_width: int = 0
    min_height: int = 0
    orientation: str | None = None

    def __post_init__(self) -> None:
        from ..errors import InputError

        if self.orientation is not None and self.orientation not in ORIENTATIONS:
            raise InputError(
                f"unknown orientation '{self.orientation}'",
                f"use one of {', '.join(ORIENTATIONS)}",
            )
        if self.min_width < 0 or self.min_height < 0:
            raise InputError("minimum image size cannot be negative", "give 0 or more pixels")

    @property
    def globs(self) -> tuple[str, ...]:
        if self.glob is None:
            return ()
        return (self.glob,) if isinstance(self.glob, str) else tuple(self.glob)

    def accepts(self, relpath: str, width: int, height: int, orientation: str) -> bool:
        if width < self.min_width or height < self.min_height:
            return False
        if self.orientation is not None and orientation != self.orientation:
            return False
        return not self.globs or any(glob_match(relpath, g) for g in self.globs)


def glob_match(relpath: str, pattern: str) -> bool:
    """``fnmatch`` on ``/``-separated paths, where ``**/`` may also match no folder at all."""
    pattern = pattern.strip().lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    if fnmatch.fnmatchcase(relpath, pattern):
        return True
    # "**/x" also matches "x" at the top; "a/**/b" also matches "a/b".
    collapsed = pattern.replace("**/", "")
    return collapsed != pattern and fnmatch.fnmatchcase(relpath, collapsed)


@dataclass
class IndexReport:
    """What :meth:`Library.update` did.  ``str(report)`` is a human summary."""

    added: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """``(path, reason)`` for every file or folder that could not be used."""
    ignored: int = 0
    """Files that are not images and not description sources (counted, not listed)."""
    embedded: int = 0
    """Images whose text embeddings were computed in this run."""
    pending: int = 0
    """Images still waiting for their embeddings (``update(embed=False)``)."""
    warnings: list[str] = field(default_factory=list)
    """Problems that did not cost an image (a vision caption that failed, for example)."""
    seconds: float = 0.0
    index_path: Path | None = None

    @property
    def total(self) -> int:
        """Images in the index for these roots after the run."""
        return len(self.added) + len(self.updated) + self.unchanged

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def __str__(self) -> str:
        head = (
            f"indexed {self.total} image{'s' if self.total != 1 else ''}: "
            f"{len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged, "
            f"{len(self.skipped)} skipped"
        )
        if self.ignored:
            head += f", {self.ignored} other files ignored"
        head += f" ({self.seconds:.1f} s)"
        lines = [head]
        if self.pending:
            lines.append(
                f"{self.pending} images wait for embeddings (run index again to embed them)"
            )
        if self.index_path is not None:
            lines.append(f"index: {self.index_path}")
        for path, reason in self.skipped:
            lines.append(f"skipped {path}: {reason}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)
