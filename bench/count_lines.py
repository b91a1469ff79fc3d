"""Issue 15's size target: the adapters' lines against the engine's.

Counts non-blank lines of ``*.py`` that are not only a comment (docstrings count:
they are part of the code a newcomer reads).  Run from the repository root::

    .venv/bin/python bench/count_lines.py
"""

from __future__ import annotations

from pathlib import Path

PACKAGES = ("engine", "mkdocs_xcomposer", "jupyter_ext")
TARGET = 0.35  # the adapters together at most 35% of the engine


def code_lines(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def count(package: str, root: Path) -> int:
    return sum(code_lines(p) for p in sorted((root / package).rglob("*.py")))


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    sizes = {package: count(package, root) for package in PACKAGES}
    for package, lines in sizes.items():
        print(f"{package:18} {lines:6}")
    adapters = sizes["mkdocs_xcomposer"] + sizes["jupyter_ext"]
    share = adapters / sizes["engine"]
    verdict = "holds" if share <= TARGET else "does not hold"
    print(
        f"adapters / engine  {adapters} / {sizes['engine']} = {share:.0%} (target {TARGET:.0%}: {verdict})"
    )


if __name__ == "__main__":
    main()
