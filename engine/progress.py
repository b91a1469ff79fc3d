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

    @classmethod
    def from_dict(cls, data: dict) -> Progress:
        """A report from its :meth:`to_dict` (a job event a client received)."""
        speed = data.get("tokens_per_s")
        return cls(
            str(data.get("stage", "")),
            int(data.get("done") or 0),
            int(data.get("total") or 0),
            float(speed) if speed else None,
            str(data.get("detail") or ""),
        )

    def summary(self) -> str:
        """``write 2/4 · 12 tok/s · detail``: the report as a status line shows it."""
        speed = f" · {self.tokens_per_s:.0f} tok/s" if self.tokens_per_s else ""
        detail = f" · {self.detail}" if self.detail else ""
        return f"{self.stage} {self.done}/{self.total}{speed}{detail}"

    def __str__(self) -> str:
        speed = f" {self.tokens_per_s:.0f} tok/s" if self.tokens_per_s else ""
        detail = f" {self.detail}" if self.detail else ""
        return f"[{self.stage} {self.done}/{self.total}]{speed}{detail}"


ProgressCallback = Callable[[Progress], None]


def ignore_progress(_: Progress) -> None:
    """The default callback: report nothing."""
