"""The MkDocs plugin's cost on a cached site, and what `mkdocs serve` recomposes after an edit.

One run, on a generated site of 50 pages with 100 blocks (compose and illustrate,
real photos with captions):

1. The blocks are composed once (by a scripted backend: this measures the plugin,
   not a model) into the site's cache.
2. ``mkdocs build`` of that site, frozen, every block from the cache, is timed
   against ``mkdocs build`` of the same site with the blocks' expansions pasted into
   the pages and the plugin off.  Each is a fresh ``mkdocs build`` process, as in CI;
   the plugin's site is built as on a CI machine without the model (the model path
   does not exist).  Runs alternate; the medians give the ratio (target <= 1.15).
3. Under serve's rebuild (the plugin kept across builds, as `mkdocs serve` does),
   one block's instruction is edited: the rebuild must compose exactly that block.

    .venv/bin/python bench/mkdocs_build.py [--runs 5] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchdocs import DOCS, machine, replace_section  # noqa: E402

IMAGES = ROOT / "examples" / "images"
TITLE = "MkDocs build"
PAGES, BLOCKS_PER_PAGE = 50, 2
TOPICS = [
    "rockets", "the Moon", "galaxies", "astronauts", "coffee", "cats", "old cameras",
    "orbits", "launch pads", "telescopes",
]  # fmt: skip

COMPOSE = """\
/// compose | Notes on {topic} ({n})
    max_images: 1
    sections: 2
    words: 40

Write a short article about {topic}, part {n}.
///
"""
ILLUSTRATE = """\
/// illustrate
    max_images: 1

A paragraph a person wrote about {topic}, number {n}, which stays exactly as it is.

A second paragraph about {topic}, with a few more words so that it reads like prose.
///
"""


def scripted_backend() -> Any:
    from xcomposer.backends.base import Backend, Generation, Health

    class Scripted(Backend):
        """Valid answers for every request, instantly: the plugin is what is measured."""

        has_vision = False

        def generate(self, request, on_text=None):  # noqa: ANN001, ANN201
            if request.choices is not None:
                text = request.choices[0]
            elif request.json_schema is not None:
                n = request.json_schema.get("minItems", 1)
                text = json.dumps([f"Heading {i + 1}" for i in range(n)])
            else:
                text = "A short paragraph of generated prose. It has two sentences."
            return Generation(text=text, completion_tokens=len(text.split()), seconds=0.001)

        def fingerprint(self) -> dict:
            return {"backend": "bench-scripted"}

        def health(self) -> Health:
            return Health(True, "bench", "scripted", "scripted answers")

    return Scripted()


SENTENCES = [
    "The {topic} chapter starts from what a reader already knows and adds one idea at a time.",
    "Each step is small enough to try on a laptop, and the commands below can be copied as they are.",
    "When something fails, the message names the file and the line, and says how to fix it.",
    "Most of the settings have sensible defaults; change them only when a page needs it.",
    "The examples use the same folder of images throughout, so the results can be compared.",
    "A second build reads everything from the cache and finishes in a fraction of the time.",
    "Reviewers read the Markdown source, not the rendered page, so keep paragraphs short.",
    "Links between pages are relative, which keeps the site working wherever it is hosted.",
]
# The rest of a documentation page, around its two blocks: prose, code, a list, a table,
# a note (Material's own features), as a writer's page would have them.
PAGE_BODY = """\
## Overview

{prose1}

```python
from pathlib import Path

def count_words(folder: Path) -> int:
    \"\"\"Words in every Markdown page under ``folder``.\"\"\"
    return sum(len(p.read_text().split()) for p in folder.rglob("*.md"))
```

{prose2}

- Write the page in Markdown, with blocks where pictures help.
- Build it once where the model runs, and commit the cache.
- Let CI build it again from the cache, without a model.

| Setting | Default | Meaning |
|---|---|---|
| `max_images` | `auto` | how many pictures a block may get |
| `candidates` | `4` | images offered for each spot |
| `sections` | `4` | sections a composed article has |

!!! note "About {topic}"
    {prose3}

## Details

{prose4}
"""


def prose(topic: str, seed: int, n: int) -> str:
    return " ".join(SENTENCES[(seed + k) % len(SENTENCES)].format(topic=topic) for k in range(n))


def write_site(root: Path) -> Path:
    docs = root / "docs"
    for p in range(PAGES):
        topic = TOPICS[p % len(TOPICS)]
        text = f"# Page {p}: {topic}\n\n{prose(topic, p, 4)}\n\n"
        text += COMPOSE.format(topic=topic, n=p) + "\n"
        text += PAGE_BODY.format(
            topic=topic,
            prose1=prose(topic, p + 1, 6),
            prose2=prose(topic, p + 2, 6),
            prose3=prose(topic, p + 3, 2),
            prose4=prose(topic, p + 4, 8),
        )
        text += "\n" + ILLUSTRATE.format(topic=topic, n=p)
        folder = docs / f"section-{p // 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"page-{p}.md").write_text(text, encoding="utf-8")
    (docs / "index.md").write_text("# Benchmark site\n\nFifty pages, a hundred blocks.\n")
    shutil.copytree(IMAGES, root / "images")
    config = root / "mkdocs.yml"
    config.write_text(
        SITE_CONFIG + "  - xcomposer:\n"
        "      library: [images]\n"
        "      frozen: true\n"
        "      model: no-model-on-this-machine.gguf\n",
        encoding="utf-8",
    )
    return config


# Material, with the extensions this project's own documentation uses.
SITE_CONFIG = """\
site_name: Benchmark site
theme:
  name: material
  font: false
markdown_extensions:
  - admonition
  - attr_list
  - md_in_html
  - tables
  - pymdownx.superfences
  - toc:
      permalink: true
plugins:
  - search
"""


def load(config: Path, backend: Any, serving: bool = False) -> Any:
    from mkdocs.config import load_config

    cfg = load_config(str(config))
    plugin = cfg.plugins["xcomposer"]
    plugin.backends = {"main": backend}
    plugin.serving = serving
    return cfg


_KEPT_BLOCK = re.compile(r"<!-- xcomposer: materialized.*?-->\n\n", re.DOTALL)


def fill_and_capture(config: Path) -> dict[str, str]:
    """Compose every block once; return each page's Markdown with its blocks' expansions
    pasted in, as ``xcomposer materialize`` writes them from the cache."""
    from mkdocs.commands.build import build

    from mkdocs_xcomposer.materialize import materialize

    os.environ["XCOMPOSER_FROZEN"] = "0"
    try:
        cfg = load(config, scripted_backend())
        build(cfg)
        plugin = cfg.plugins["xcomposer"]
        assert plugin.counts["composed"] == PAGES * BLOCKS_PER_PAGE, plugin.counts
        plugin.on_shutdown()
    finally:
        del os.environ["XCOMPOSER_FROZEN"]
    with tempfile.TemporaryDirectory(prefix="xcomposer-paste-") as tmp:
        copy = Path(tmp) / "site"
        shutil.copytree(config.parent, copy)
        captured: dict[str, str] = {}
        for page in sorted((copy / "docs").rglob("*.md")):
            if "/// " in page.read_text(encoding="utf-8"):
                materialize(page, copy / config.name)
            text = _KEPT_BLOCK.sub("", page.read_text(encoding="utf-8"))  # only the expansion
            captured[page.relative_to(copy / "docs").as_posix()] = text
    return captured


def write_pasted_site(root: Path, source: Path, pages: dict[str, str]) -> Path:
    """The same site with the expansions pasted in and no xcomposer plugin."""
    shutil.copytree(source / "docs", root / "docs")
    for src, markdown in pages.items():
        (root / "docs" / src).write_text(markdown, encoding="utf-8")
    shutil.copytree(IMAGES, root / "docs/assets/xcomposer/images")
    config = root / "mkdocs.yml"
    config.write_text(SITE_CONFIG, encoding="utf-8")
    return config


def timed_build(config: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `mkdocs build` process.

    CPU time (user + system of the child) is what the ratio uses: a build runs on one
    core, so on an idle machine it equals the wall time, and unlike the wall time it
    does not move when other work shares the machine.
    """
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    env.pop("XCOMPOSER_FROZEN", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(
        [str(mkdocs), "build", "-q", "-f", str(config)], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise SystemExit(f"mkdocs build -f {config} failed:\n{run.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def serve_edit(config: Path) -> dict[str, Any]:
    """Rebuilds as `mkdocs serve` runs them; one block edited between two of them."""
    from mkdocs.commands.build import build

    backend = scripted_backend()
    os.environ["XCOMPOSER_FROZEN"] = "0"
    try:
        cfg = load(config, backend, serving=True)
        build(cfg, serve_url="http://127.0.0.1:8000/")
        before = dict(cfg.plugins["xcomposer"].counts)
        page = config.parent / "docs/section-2/page-23.md"
        page.write_text(page.read_text().replace("part 23.", "part 23, revised."))
        cfg = load(config, backend, serving=True)
        start = time.perf_counter()
        build(cfg, serve_url="http://127.0.0.1:8000/")
        rebuild = time.perf_counter() - start
        plugin = cfg.plugins["xcomposer"]
        after_edit = dict(plugin.counts)
        deadline = time.monotonic() + 60
        while plugin.workshop.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        cfg = load(config, backend, serving=True)
        build(cfg, serve_url="http://127.0.0.1:8000/")
        settled = dict(cfg.plugins["xcomposer"].counts)
        cfg.plugins["xcomposer"].on_shutdown()
    finally:
        del os.environ["XCOMPOSER_FROZEN"]
    return {"before": before, "after_edit": after_edit, "settled": settled, "rebuild_s": rebuild}


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("mkdocs", "nh3", "Markdown"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed builds of each site")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="xcomposer-bench-") as tmp:
        tmp_path = Path(tmp)
        config = write_site(tmp_path / "plugin")
        print(f"composing {PAGES * BLOCKS_PER_PAGE} blocks on {PAGES} pages (scripted backend)...")
        pasted = write_pasted_site(
            tmp_path / "pasted", tmp_path / "plugin", fill_and_capture(config)
        )
        # The first build of a checkout asks the engine once (and remembers its answers
        # in the cache's index/ folder): timed apart, as a fresh clone in CI pays it.
        first = timed_build(config)
        timed_build(pasted)  # warm the file system and imports
        plugin_runs, plain_runs = [], []
        for i in range(args.runs):
            plugin_runs.append(timed_build(config))
            plain_runs.append(timed_build(pasted))
            print(
                f"run {i + 1}: plugin {plugin_runs[-1][0]:.2f} s CPU ({plugin_runs[-1][1]:.2f} s "
                f"wall), pasted {plain_runs[-1][0]:.2f} s CPU ({plain_runs[-1][1]:.2f} s wall)"
            )
        serve = serve_edit(config)
    plugin_s = statistics.median(c for c, _ in plugin_runs)
    plain_s = statistics.median(c for c, _ in plain_runs)
    plugin_wall = statistics.median(w for _, w in plugin_runs)
    plain_wall = statistics.median(w for _, w in plain_runs)
    ratio = plugin_s / plain_s
    first_ratio = first[0] / plain_s
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    recomposed = serve["after_edit"].get("pending", 0) + serve["after_edit"].get("composed", 0)
    print(f"median CPU: plugin {plugin_s:.2f} s, pasted {plain_s:.2f} s, ratio {ratio:.3f}")
    print(f"first build of the checkout: {first[0]:.2f} s CPU, ratio {first_ratio:.3f}")
    print(f"serve: after one edit {serve['after_edit']}, then {serve['settled']}")
    runs = lambda rs: ", ".join(f"{c:.2f}" for c, _ in rs)  # noqa: E731
    section = f"""`python bench/mkdocs_build.py --runs {args.runs} --write-docs` on {machine()}; {versions()}.

A generated site of {PAGES} pages with {PAGES * BLOCKS_PER_PAGE} blocks: each page is a
writer's page (prose, a code block, a list, a table, a note) with one compose and one
illustrate block; Material theme; the example site's photos as the library; every block in
the cache.  Each build is a fresh `mkdocs build` process; the plugin's site builds frozen,
as on a CI machine without the model.  Times are the build process's CPU time (user +
system; a build uses one core, and unlike wall time CPU time does not grow when other
work shares the machine: load average {load} at the end of this run), medians of
{args.runs} alternated runs:

| site | median CPU time | runs | median wall time |
|---|---:|---|---:|
| plugin on, {PAGES * BLOCKS_PER_PAGE} blocks from the cache | {plugin_s:.2f} s | {runs(plugin_runs)} | {plugin_wall:.2f} s |
| expansions pasted into the pages, plugin off | {plain_s:.2f} s | {runs(plain_runs)} | {plain_wall:.2f} s |

Ratio plugin / pasted: **{ratio:.3f}** (target <= 1.15).

The first build of a fresh checkout (a CI clone) also imports the engine once, to learn
its identity and the model's fingerprint, then remembers them in `xcomposer-cache/index/`
(not committed): {first[0]:.2f} s CPU, ratio {first_ratio:.3f}.  That difference is the
engine's import (numpy and pydantic among it), not work on the blocks.

Under `mkdocs serve`'s rebuild (the plugin kept across builds), editing the instruction
of one block out of {PAGES * BLOCKS_PER_PAGE}: the rebuild composed **{recomposed}** block
({serve["after_edit"].get("cached", 0)} from the cache; rebuild {serve["rebuild_s"]:.2f} s,
the block composing in the background), and the next rebuild took all
{serve["settled"].get("cached", 0)} from the cache.
"""
    if args.write_docs:
        replace_section(TITLE, section)
        print(f"wrote the {TITLE} section of {DOCS}")
    else:
        print(f"## {TITLE}\n\n{section}")
    return 0 if recomposed == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
