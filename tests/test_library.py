"""The image library through its API: indexing a real folder, bad files, incremental updates,
search with filters and exclusions, several roots, crashes and concurrent indexers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from library_eval import SKIMAGE_DATA
from library_eval.folders import add_good_images, make_mixed_folder
from PIL import Image
from xcomposer.cache import ResultCache
from xcomposer.config import LibraryConfig
from xcomposer.errors import InputError
from xcomposer.images import file_sha256
from xcomposer.library import IndexReport, Library, Match, SearchFilters
from xcomposer.library import indexer as indexer_module

ROOT = Path(__file__).resolve().parents[1]


def _open(folder: Path, **config) -> Library:
    return Library.open([folder], LibraryConfig(**config))


def _db(lib_or_folder) -> Path:
    if isinstance(lib_or_folder, Library):
        return lib_or_folder.store.path
    return Path(lib_or_folder) / ".xcomposer" / "library.sqlite"


def test_mixed_folder_indexes_good_images_and_lists_each_skip_with_reason(tmp_path):
    folder = tmp_path / "images"
    bad = make_mixed_folder(folder, tmp_path / "outside")
    with _open(folder) as lib:
        report = lib.update()
        assert isinstance(report, IndexReport)
        assert sorted(p.name for p in report.added) == [
            "astronaut.png", "cat.png", "coffee.png", "horse.png", "rocket.jpg",
        ]  # fmt: skip
        reasons = {Path(p): r for p, r in report.skipped}
        assert set(reasons) == set(bad.values())
        assert "truncated or corrupt" in reasons[bad["corrupt"]]
        assert "not an image" in reasons[bad["bomb"]] or "pixel" in reasons[bad["bomb"]]
        assert "symlink loop" in reasons[bad["loop"]]
        assert "symlink loop" in reasons[bad["dir_loop"]]
        assert "not an image" in reasons[bad["text"]]
        assert "empty (0 bytes)" in reasons[bad["empty"]]
        assert "outside the image folder" in reasons[bad["outside"]]
        summary = str(report)
        assert summary.startswith("indexed 5 images: 5 added, 0 updated, 0 removed")
        assert f"{len(bad)} skipped" in summary.splitlines()[0]
        for path, reason in report.skipped:
            assert f"skipped {path}: {reason}" in summary
        assert len(lib) == 5
        best = lib.search("a cat", k=1)[0]
        assert best.path == (folder / "cat.png").resolve()


def test_bomb_within_pillows_own_limit_is_named_as_a_bomb(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png"])
    from library_eval.folders import png_header_only

    png_header_only(folder / "huge.png", 3000, 3000)
    with _open(folder, max_image_pixels=4_000_000) as lib:
        reasons = dict(lib.update().skipped)
    reason = reasons[folder / "huge.png"]
    assert "3000x3000 pixels, over the 4,000,000 pixel limit" in reason
    assert "decompression bomb" in reason


def test_file_over_the_size_limit_is_skipped(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png", "coffee.png"])
    limit = (folder / "cat.png").stat().st_size + 1  # coffee.png is larger
    with _open(folder, max_file_bytes=limit) as lib:
        report = lib.update()
    assert [p.name for p in report.added] == ["cat.png"]
    assert "over the" in dict(report.skipped)[folder / "coffee.png"]


def test_symlinks_out_of_the_root_are_followed_only_when_configured(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png"])
    elsewhere = tmp_path / "elsewhere"
    add_good_images(elsewhere, ["rocket.jpg"])
    os.symlink(elsewhere, folder / "linked")
    with _open(folder) as lib:
        report = lib.update()
        assert [p.name for p in report.added] == ["cat.png"]
        assert "outside the image folder" in dict(report.skipped)[folder / "linked"]
    shutil.rmtree(folder / ".xcomposer")
    with _open(folder, follow_symlinks_out=True) as lib:
        report = lib.update()
        assert sorted(p.name for p in report.added) == ["cat.png", "rocket.jpg"]
        top = lib.search("a rocket launch", k=1)[0]
        assert top.path == folder.resolve() / "linked" / "rocket.jpg"
        assert top.matched == "sidecar: A rocket on the launch pad before lift-off"


def test_search_gives_scores_matched_source_alt_and_size(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder)
    with _open(folder) as lib:
        lib.update()
        matches = lib.search("spacecraft ready for lift-off", k=4)
    assert [m.path.name for m in matches][0] == "rocket.jpg"
    assert len(matches) == 4
    assert all(isinstance(m, Match) for m in matches)
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    top = matches[0]
    assert top.path.is_absolute() and top.sha256 == file_sha256(top.path)
    assert top.matched == "sidecar: A rocket on the launch pad before lift-off"
    assert top.alt == "A rocket on the launch pad before lift-off"
    assert "A rocket on the launch pad before lift-off." in top.description
    assert (top.width, top.height) == Image.open(top.path).size


def test_update_touches_only_new_or_changed_files(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder)
    with _open(folder) as lib:
        first = lib.update()
        assert len(first.added) == 4
        again = lib.update()
        assert (again.added, again.updated, again.removed, again.unchanged) == ([], [], [], 4)
        assert not again.changed

        os.utime(folder / "cat.png", ns=(1, 10**18))  # touched, same bytes
        touched = lib.update()
        assert touched.unchanged == 4 and not touched.changed

        (folder / "coffee.txt").write_text("Espresso with foam in a glass cup\n")
        Image.open(SKIMAGE_DATA / "moon.png").save(folder / "rocket.jpg", "JPEG")
        (folder / "astronaut.png").unlink()
        shutil.copy(SKIMAGE_DATA / "horse.png", folder / "horse.png")
        report = lib.update()
        assert [p.name for p in report.added] == ["horse.png"]
        assert sorted(p.name for p in report.updated) == ["coffee.png", "rocket.jpg"]
        assert [p.name for p in report.removed] == ["astronaut.png"]
        assert report.unchanged == 1
        assert len(lib) == 4
        assert lib.entry(folder / "coffee.png").alt == "Espresso with foam in a glass cup"
        assert lib.entry(folder / "rocket.jpg").sha256 == file_sha256(folder / "rocket.jpg")
        assert lib.entry(folder / "astronaut.png") is None


def test_the_index_remembers_its_docs_folder_and_ocr_setting(tmp_path):
    folder, docs = tmp_path / "images", tmp_path / "docs"
    add_good_images(folder, ["cat.png"])
    docs.mkdir()
    (docs / "pets.md").write_text("![Our cat on the sofa](../images/cat.png)\n")
    with _open(folder, docs_dir=str(docs)) as lib:
        lib.update()
    with _open(folder) as lib:  # opened later without the option, e.g. by `xcomposer search`
        assert lib.config.docs_dir == str(docs.resolve()) and lib.config.ocr is False
        assert lib.update().unchanged == 1
        assert ("markdown-alt", "Our cat on the sofa") in lib.entry(folder / "cat.png").sources
    with _open(folder, docs_dir="") as lib:  # an empty docs_dir forgets it
        assert [p.name for p in lib.update().updated] == ["cat.png"]
        assert lib.entry(folder / "cat.png").alt == "A tabby cat looking to the side"
    with _open(folder, ocr=False) as lib:
        assert lib.config.docs_dir is None


def test_fingerprint_changes_when_indexed_content_changes(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png", "rocket.jpg"])
    with _open(folder) as lib:
        lib.update()
        before = lib.fingerprint()
        lib.update()
        assert lib.fingerprint() == before
        (folder / "cat.txt").write_text("A ginger cat asleep\n")
        lib.update()
        after_caption = lib.fingerprint()
        assert after_caption != before
        (folder / "rocket.jpg").unlink()
        lib.update()
        assert lib.fingerprint() not in (before, after_caption)


def test_missing_root_raises_input_error(tmp_path):
    with pytest.raises(InputError) as err:
        Library.open([tmp_path / "nope"])
    assert str(err.value).startswith(f"image folder {tmp_path / 'nope'} does not exist; ")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(InputError, match="is not a folder"):
        Library.open([tmp_path / "file.png"])


def test_empty_library_updates_fine_but_search_says_how_to_add_images(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with _open(folder) as lib:
        with pytest.raises(InputError, match="has not been indexed yet; run `xcomposer index"):
            lib.search("anything")
        report = lib.update()
        assert report.total == 0 and not report.skipped
        with pytest.raises(InputError) as err:
            lib.search("anything")
    message = str(err.value)
    assert f"image folder {folder.resolve()} has no usable images" in message
    assert "PNG, JPEG" in message and "xcomposer index" in message


def test_bad_arguments_to_search(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png"])
    with _open(folder) as lib:
        lib.update()
        with pytest.raises(InputError, match="empty"):
            lib.search("   ")
        with pytest.raises(InputError, match="k must be at least 1"):
            lib.search("cat", k=0)
        with pytest.raises(InputError, match="orientation"):
            SearchFilters(orientation="sideways")


def test_filters_by_subfolder_size_and_orientation(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder / "photos", ["cat.png", "rocket.jpg"])  # both landscape
    add_good_images(folder / "space", ["astronaut.png"])  # 512x512, square
    portrait = Image.open(SKIMAGE_DATA / "rocket.jpg").rotate(90, expand=True)
    portrait.save(folder / "space" / "tall-rocket.jpg")
    (folder / "space" / "tall-rocket.txt").write_text("A rocket on the launch pad, upright\n")
    with _open(folder) as lib:
        lib.update()
        query = "rocket on the launch pad"
        names = lambda ms: [m.relpath for m in ms]  # noqa: E731
        assert names(lib.search(query, k=1, filters=SearchFilters(glob="photos/*"))) == [
            "photos/rocket.jpg"
        ]
        assert names(lib.search(query, k=1, filters=SearchFilters(orientation="portrait"))) == [
            "space/tall-rocket.jpg"
        ]
        square = lib.search(query, k=4, filters=SearchFilters(orientation="square"))
        assert names(square) == ["space/astronaut.png"]
        big = lib.search(query, k=4, filters=SearchFilters(min_width=500, min_height=500))
        assert sorted(names(big)) == ["space/astronaut.png"]
        deep = lib.search(query, k=4, filters=SearchFilters(glob=("**/tall-*", "nothing/*")))
        assert names(deep) == ["space/tall-rocket.jpg"]
        assert lib.search(query, filters=SearchFilters(glob="nowhere/**")) == []


def test_exclude_and_near_duplicates(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png", "rocket.jpg", "coffee.png"])
    # The same photo again, smaller and re-encoded: other bytes, same picture.
    small = Image.open(SKIMAGE_DATA / "chelsea.png").resize((300, 200))
    small.save(folder / "cat-small.jpg", quality=70)
    (folder / "cat-small.txt").write_text("A tabby cat looking to the side, small copy\n")
    # The very same bytes under a second name.
    shutil.copy(folder / "rocket.jpg", folder / "rocket-copy.jpg")
    with _open(folder) as lib:
        lib.update()
        both = [m.path.name for m in lib.search("tabby cat", k=2, diverse=False)]
        assert sorted(both) == ["cat-small.jpg", "cat.png"]
        diverse = [m.path.name for m in lib.search("tabby cat", k=2)]
        assert diverse[0] in ("cat.png", "cat-small.jpg")
        assert diverse[1] not in ("cat.png", "cat-small.jpg")

        cat = lib.entry(folder / "cat.png")
        after_use = [m.path.name for m in lib.search("tabby cat", k=3, exclude=[cat.sha256])]
        assert "cat.png" not in after_use and "cat-small.jpg" not in after_use
        by_path = lib.search("tabby cat", k=3, exclude=[str(folder / "cat.png")], diverse=False)
        assert by_path[0].path.name == "cat-small.jpg"

        rockets = [m.path.name for m in lib.search("rocket", k=4, diverse=False)]
        assert len([n for n in rockets if n.startswith("rocket")]) == 1  # same bytes: once


def test_several_roots_are_one_library(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    add_good_images(one, ["cat.png"])
    add_good_images(two, ["rocket.jpg"])
    index = tmp_path / "index"
    with Library.open([one, two], index_dir=index) as lib:
        report = lib.update()
        assert sorted(p.name for p in report.added) == ["cat.png", "rocket.jpg"]
        assert lib.roots == [one.resolve(), two.resolve()]
        assert lib.search("cat", k=1)[0].path == (one / "cat.png").resolve()
        assert lib.search("rocket", k=1)[0].path == (two / "rocket.jpg").resolve()
    assert (index / "library.sqlite").is_file() and not (one / ".xcomposer").exists()
    # The same index opened on one root only sees that root, and keeps the other's entries.
    with Library.open([two], index_dir=index) as lib:
        assert len(lib) == 1
        assert not lib.update().removed
    with Library.open([one, two], index_dir=index) as lib:
        assert len(lib) == 2 and lib.update().unchanged == 2


def test_entry_by_path_or_sha_and_thumbnail(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["astronaut.png"])
    with _open(folder) as lib:
        lib.update()
        by_path = lib.entry(folder / "astronaut.png")
        assert by_path is not None and by_path.score == 0
        assert lib.entry(by_path.sha256) == by_path
        assert by_path.matched == "sidecar: An astronaut in a white spacesuit beside a flag"
        assert (by_path.width, by_path.height, by_path.orientation) == (512, 512, "square")
        assert lib.entry(folder / "missing.png") is None
        thumb = Image.open(__import__("io").BytesIO(lib.thumbnail(by_path.sha256)))
        assert thumb.format == "JPEG" and max(thumb.size) <= 160


def test_index_later_embedding_with_embed_false(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png", "rocket.jpg"])
    with _open(folder) as lib:
        report = lib.update(embed=False)
        assert len(report.added) == 2 and report.pending == 2
        assert "wait for embeddings" in str(report)
        assert lib.search("a cat", k=1)[0].path.name == "cat.png"  # embeds what was pending
        assert lib.update().unchanged == 2


_SEARCH_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from xcomposer.cache import ResultCache
    from xcomposer.library import Library
    cache = ResultCache(sys.argv[2]) if len(sys.argv) > 2 else None
    lib = Library.open([Path(sys.argv[1])], cache=cache)
    best = lib.search("a cat", k=1)[0]
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                   ("torch", "transformers", "sentence_transformers", "onnxruntime"))
    print(best.path.name, len(heavy), heavy[:3])
    """
)


def _search_in_fresh_process(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _SEARCH_SCRIPT, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return out.stdout.strip()


def test_open_and_a_repeated_query_load_no_model(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png", "rocket.jpg"])
    with _open(folder) as lib:
        lib.update()
        lib.search("a cat")  # seen once: its embedding is kept in the index
    assert _search_in_fresh_process(str(folder)) == "cat.png 0 []"


def test_query_embeddings_are_kept_in_the_engines_result_cache(tmp_path):
    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png", "rocket.jpg"])
    cache = ResultCache(tmp_path / "cache")
    with Library.open([folder], cache=cache) as lib:
        lib.update()
        lib.search("a cat")

    def forget_the_index_copy() -> None:
        with sqlite3.connect(_db(folder)) as db:
            db.execute("DELETE FROM queries")

    forget_the_index_copy()
    without_cache = _search_in_fresh_process(str(folder))
    assert without_cache.startswith("cat.png ") and not without_cache.startswith("cat.png 0 ")
    forget_the_index_copy()
    assert _search_in_fresh_process(str(folder), str(tmp_path / "cache")) == "cat.png 0 []"


def test_ctrl_c_during_update_keeps_committed_work(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    for i in range(7):
        add_good_images(folder / f"set{i}")
    monkeypatch.setattr(indexer_module, "BATCH_FILES", 4)
    seen = []

    def interrupt_after_ten(progress) -> None:
        seen.append(progress.done)
        if progress.done == 10 and progress.detail != "embedding":
            raise KeyboardInterrupt

    with _open(folder) as lib:
        with pytest.raises(KeyboardInterrupt):
            lib.update(interrupt_after_ten)
    with sqlite3.connect(_db(folder)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    # The first batch was written; the second was being embedded while the third was read.
    assert kept == 4
    with _open(folder) as lib:
        report = lib.update()
        assert (len(report.added), report.unchanged) == (24, 4)
        assert len(lib) == 28


def test_killed_indexer_leaves_a_usable_index(tmp_path):
    folder = tmp_path / "images"
    for i in range(10):
        add_good_images(folder / f"set{i}")
    script = (
        "import sys; from xcomposer.library import Library, indexer;"
        "indexer.BATCH_FILES = 2;"
        "Library.open([sys.argv[1]]).update(embed=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(folder)])
    db_path = _db(folder)
    deadline = time.monotonic() + 120
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db_path.exists():
            try:
                with sqlite3.connect(db_path, timeout=5) as db:
                    rows = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
            if rows:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with _open(folder) as lib:
        report = lib.update()
        assert len(report.added) + report.unchanged == 40 and not report.skipped
        with sqlite3.connect(_db(folder)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert lib.search("a cat", k=1)[0].path.name == "cat.png"


def test_two_processes_indexing_at_once(tmp_path):
    folder = tmp_path / "images"
    for i in range(6):
        add_good_images(folder / f"set{i}")
    script = (
        "import json, sys; from xcomposer.library import Library;"
        "r = Library.open([sys.argv[1]]).update(embed=False);"
        "print(json.dumps([len(r.added), len(r.updated), r.unchanged, len(r.skipped)]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # One run indexed everything; the other waited its turn and found nothing to do.
    assert sorted(results) == [[0, 0, 24, 0], [24, 0, 0, 0]]
    with sqlite3.connect(_db(folder)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 24
