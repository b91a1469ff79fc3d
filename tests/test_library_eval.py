"""The labelled evaluation: does the right image come first for a writer's query?

The library (real photos, drawn screenshots and diagrams, described the way
real folders describe them) is built at test time; see tests/library_eval/.
Recall figures for the embedded default are in docs/benchmarks.md ("Image library").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from library_eval import PHOTOS, QUERIES, build_library, evaluate, images
from library_eval.drawings import DRAWINGS
from xcomposer.config import LibraryConfig
from xcomposer.library import Library

# Floors a little under what the embedded MiniLM reaches (docs/benchmarks.md).
FLOOR_DEFAULT = {"recall_at_1": 0.70, "recall_at_4": 0.80}
FLOOR_WITHOUT_OCR_QUERIES = {"recall_at_1": 0.90, "recall_at_4": 0.95}
FLOOR_OCR = {"recall_at_1": 0.85, "recall_at_4": 0.95}


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_library(tmp_path_factory.mktemp("library-eval"))


def _report(name: str, result) -> str:
    misses = "\n".join(f"  {q!r}: expected {e}, got {got}" for q, e, got in result.misses)
    return f"{name}: recall@1 {result.recall_at_1:.2f}, recall@4 {result.recall_at_4:.2f}\n{misses}"


def test_the_evaluation_is_well_formed(eval_folder):
    root, _ = eval_folder
    every = {i.relpath for i in images()}
    assert len(every) == len(PHOTOS) + len(DRAWINGS)
    assert all((root / rel).is_file() for rel in every)
    assert all(q.expected in every for q in QUERIES)
    assert all(i.topics for i in images())
    assert len(QUERIES) >= 40


def test_recall_of_the_embedded_default(eval_folder, tmp_path):
    root, docs = eval_folder
    with Library.open([root], LibraryConfig(docs_dir=str(docs)), index_dir=tmp_path) as lib:
        report = lib.update()
        assert not report.skipped and report.total == len(images())
        result = evaluate(lib)
        plain = evaluate(lib, [q for q in QUERIES if not q.needs_ocr])
    print(_report("default", result))
    assert result.recall_at_1 >= FLOOR_DEFAULT["recall_at_1"], _report("default", result)
    assert result.recall_at_4 >= FLOOR_DEFAULT["recall_at_4"], _report("default", result)
    assert plain.recall_at_1 >= FLOOR_WITHOUT_OCR_QUERIES["recall_at_1"], _report("no-OCR", plain)
    assert plain.recall_at_4 >= FLOOR_WITHOUT_OCR_QUERIES["recall_at_4"], _report("no-OCR", plain)


@pytest.mark.slow
def test_recall_with_ocr(eval_folder, tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    root, docs = eval_folder
    config = LibraryConfig(docs_dir=str(docs), ocr=True)
    with Library.open([root], config, index_dir=tmp_path) as lib:
        lib.update()
        result = evaluate(lib)
    print(_report("ocr", result))
    assert result.recall_at_1 >= FLOOR_OCR["recall_at_1"], _report("ocr", result)
    assert result.recall_at_4 >= FLOOR_OCR["recall_at_4"], _report("ocr", result)
