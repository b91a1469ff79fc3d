"""`xcomposer index` and `xcomposer search` as a user runs them (the installed console script)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from library_eval.folders import add_good_images, make_mixed_folder

ROOT = Path(__file__).resolve().parents[1]
XCOMPOSER = ROOT / ".venv" / "bin" / "xcomposer"

pytestmark = pytest.mark.skipif(not XCOMPOSER.exists(), reason="run `make venv` first")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")}
    return subprocess.run(
        [str(XCOMPOSER), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_index_then_search_a_mixed_folder(tmp_path):
    folder = tmp_path / "images"
    bad = make_mixed_folder(folder, tmp_path / "outside")
    done = run("index", str(folder), "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(
        r"indexed 5 images: 5 added, 0 updated, 0 removed, 0 unchanged, 7 skipped", out
    )
    for path in bad.values():
        assert re.search(rf"skipped {re.escape(str(path))}: \S", out), path
    assert "symlink loop" in out and "empty (0 bytes)" in out and "truncated or corrupt" in out
    assert (folder / ".xcomposer" / "library.sqlite").is_file()

    again = run("index", str(folder), "-q", cwd=tmp_path)
    assert "0 added, 0 updated, 0 removed, 5 unchanged" in again.stdout

    found = run(
        "search", "spacecraft before launch", "--images", str(folder), "-k", "2", cwd=tmp_path
    )
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    first = re.match(r"1\. (\d\.\d{3})\s+(\S+)$", lines[0])
    assert first and Path(first.group(2)).name == "rocket.jpg"
    assert lines[1].strip() == "matched: sidecar: A rocket on the launch pad before lift-off"
    assert lines[2].startswith("2. ")


def test_index_several_folders_into_a_chosen_index_with_docs_captions(tmp_path):
    one, two, docs = tmp_path / "one", tmp_path / "two", tmp_path / "docs"
    add_good_images(one, ["cat.png"])
    add_good_images(two, ["coffee.png"])
    docs.mkdir()
    (docs / "page.md").write_text("![Breakfast on the terrace](../two/coffee.png)\n")
    index = tmp_path / "index"
    done = run(
        "index", str(one), str(two), "--index-dir", str(index), "--docs-dir", str(docs), "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "indexed 2 images: 2 added" in done.stdout
    assert (index / "library.sqlite").is_file()
    found = run(
        "search", "breakfast terrace", "--images", str(one), str(two), "--index-dir", str(index),
        "-k", "1", cwd=tmp_path,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "coffee.png" in found.stdout.splitlines()[0]
    # The index remembers --docs-dir: searching (which refreshes the index) keeps the captions.
    assert "matched: markdown-alt: Breakfast on the terrace" in found.stdout


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    missing = run("index", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2
    assert f"image folder {tmp_path / 'nope'} does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    nothing = run("search", "a cat", "--images", str(empty), cwd=tmp_path)
    assert nothing.returncode == 2
    assert "has no usable images" in nothing.stderr and "Traceback" not in nothing.stderr
