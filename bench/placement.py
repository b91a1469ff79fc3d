"""Placement benchmark: the pipeline beside the embedding-only baseline, on tests/placement_eval.

One run prints, for the embedded default (MiniLM descriptions, no vision):

- accuracy: with as many pictures as the article has labelled, the share that land
  right after their own paragraph;
- ``auto`` precision: of the pictures ``auto`` places, the share that are right
  (a picture after a neutral paragraph, or in an article the library does not
  cover, is wrong); and recall;
- both for the pipeline (``Engine.illustrate``) and for the baseline (MiniLM
  similarity of paragraph and caption, greedy one-to-one);
- seconds per article, and the time to illustrate a 6-paragraph page with 3
  pictures once the models are loaded.

    .venv/bin/python bench/placement.py [--write-docs]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from benchdocs import machine, replace_section  # noqa: E402
from placement_eval import ARTICLES, PICTURES, build_library, evaluate  # noqa: E402
from xcomposer import Engine, EngineConfig  # noqa: E402

SIX_PARAGRAPHS = ARTICLES[0].markdown + "\nThe museum cafe serves soup and sandwiches.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_library(Path(tmp) / "pictures")
        engine = Engine(EngineConfig(cache_dir=f"{tmp}/cache"))
        started = time.perf_counter()
        library = engine.open_library(folder)
        library.text_embedder.embed(["warm up"])
        load_s = time.perf_counter() - started
        pipeline, baseline = evaluate(engine, library)
        started = time.perf_counter()
        page = engine.illustrate(SIX_PARAGRAPHS, library, n_images=3)
        page_s = time.perf_counter() - started
        assert len(page.figures) == 3
        engine.close()
    load_after = os.getloadavg()
    zh = sum(1 for a in ARTICLES if a.language == "zh")
    rows = [
        "| method | accuracy | auto precision | auto recall | s / article |",
        "|---|---|---|---|---|",
    ]
    for name, r in (
        ("pipeline (evidence + assignment)", pipeline),
        ("baseline (MiniLM, greedy)", baseline),
    ):
        rows.append(
            f"| {name} | {r.accuracy:.1%} ({r.correct}/{r.gold}) | "
            f"{r.auto_precision:.1%} ({r.auto_correct}/{r.auto_placed}) | "
            f"{r.auto_recall:.1%} | {r.seconds_per_article:.2f} |"
        )
    body = "\n".join(
        [
            f"Machine: {machine()}.",
            f"Load average (1, 5, 15 min) before: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}; "
            f"after: {load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f} "
            "(a shared machine: other work ran beside this).",
            "",
            f"`bench/placement.py` on tests/placement_eval: {len(ARTICLES)} articles "
            f"({zh} Chinese), {len(PICTURES)} pictures in one shared library (distractors "
            "included), the embedded default (all-MiniLM-L6-v2 over sidecar captions, no vision).",
            "Accuracy: each article illustrated with as many pictures as it has labelled; "
            "auto: `-n auto`, where a picture after a neutral paragraph or in an uncovered "
            "article counts against precision. s / article: both runs (fixed and auto).",
            "",
            *rows,
            "",
            f"A 6-paragraph page with 3 pictures: {page_s:.2f} s once the models are loaded "
            f"(target <= 3 s); opening the library and loading MiniLM took {load_s:.1f} s.",
        ]
    )
    print(body)
    misses = (pipeline.misses or []) + [f"baseline: {m}" for m in baseline.misses or []]
    if misses:
        print("\nmisses:\n" + "\n".join(misses))
    if args.write_docs:
        replace_section("Placement", body)


if __name__ == "__main__":
    main()
