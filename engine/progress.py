"""Progress reports shared by the CLI, the MkDocs plugin and the Jupyter widget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Progress:
    """One progress report.

    ``stage`` is one of ``outline``, ``write``, ``place``, ``caption``, ``retrieve``,
    ``select``, ``describe``, ``edit``, ``index`` or ``done``; ``done``/``total`` count
    the units of that stage; ``tokens_per_s`` is the last model call's generation
    speed (``None`` when the answer came from the cache or no model ran).
    """

    stage: str
    done: int
    total: int
    tokens_per_s: float | None = None
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        speed = f" {self.tokens_per_s:.0f} tok/s" if self.tokens_per_s else ""
        detail = f" {self.detail}" if self.detail else ""
        return f"[{self.stage} {self.done}/{self.total}]{speed}{detail}"


ProgressCallback = Callable[[Progress], None]


def ignore_progress(_: Progress) -> None:
    """The default callback: report nothing."""
