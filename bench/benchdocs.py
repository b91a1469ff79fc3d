"""Shared by the benchmarks: describe the machine, and replace one section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import date
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Figures measured by the scripts in `bench/`, each section written by its script
(`--write-docs`), with the machine it ran on. Targets are the project's; a figure
that misses its target says so.
"""


def machine() -> str:
    """One line: CPU model, cores, memory, OS, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; measured {date.today().isoformat()}"
    )


def replace_section(title: str, body: str, docs: Path = DOCS) -> None:
    """Write ``## title`` with ``body`` into docs/benchmarks.md, replacing that section only."""
    text = docs.read_text(encoding="utf-8") if docs.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text.rstrip() + "\n", encoding="utf-8")
