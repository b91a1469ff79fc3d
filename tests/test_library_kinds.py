"""The library with every kind of image a site has, read-only folders, and its fingerprint."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from xcomposer import library_fingerprint
from xcomposer.backends.base import ImageRef
from xcomposer.backends.llamacpp import _message_dict
from xcomposer.errors import ConfigError
from xcomposer.library import Library

ROOT = Path(__file__).resolve().parents[1]
XCOMPOSER = ROOT / ".venv" / "bin" / "xcomposer"

DIAGRAM = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 320">
<title>Deployment pipeline</title><desc>Code flows from a commit through tests to the live site</desc>
<rect width="640" height="320" fill="#fafafa"/>
<rect x="40" y="120" width="140" height="80" fill="#90caf9"/>
<rect x="250" y="120" width="140" height="80" fill="#a5d6a7"/>
<rect x="460" y="120" width="140" height="80" fill="#ffcc80"/>
<text x="70" y="165" font-family="sans-serif" font-size="22">commit</text>
<text x="285" y="165" font-family="sans-serif" font-size="22">tests</text>
<text x="495" y="165" font-family="sans-serif" font-size="22">deploy</text>
</svg>"""

COLOURS = {
    "red": ((220, 30, 30), "A plain red square for the error state"),
    "green": ((30, 160, 60), "A plain green square for success"),
    "blue": ((30, 60, 200), "A plain blue square for information"),
    "yellow": ((240, 210, 40), "A plain yellow square for a warning"),
    "grey": ((120, 120, 120), "A plain grey square for a disabled button"),
}


def test_svg_is_indexed_from_its_own_text_and_sidecar_at_its_viewbox_size(tmp_path):
    (tmp_path / "pipeline.svg").write_text(DIAGRAM)
    (tmp_path / "pipeline.svg.md").write_text("The **release** pipeline of the docs site\n")
    with Library.open([tmp_path]) as lib:
        report = lib.update()
        assert report.total == 1 and not report.skipped, str(report)
        entry = lib.entry(tmp_path / "pipeline.svg")
        sources = dict(entry.sources)
        assert sources["sidecar"] == "The release pipeline of the docs site"
        assert sources["svg-title"] == "Deployment pipeline"
        assert sources["svg-text"] == "commit tests deploy"
        assert (entry.width, entry.height, entry.format) == (640, 320, "SVG")
        assert entry.alt == "The release pipeline of the docs site"
        assert lib.thumbnail(tmp_path / "pipeline.svg")[:2] == b"\xff\xd8"  # a JPEG thumbnail
        found = lib.search("how code gets deployed to the site", k=1)
        assert found[0].path.name == "pipeline.svg"


def test_five_solid_colours_give_five_results(tmp_path):
    for name, (colour, caption) in COLOURS.items():
        Image.new("RGB", (64, 64), colour).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(caption)
    with Library.open([tmp_path]) as lib:
        lib.update()
        found = lib.search("a plain coloured square", k=5)
    assert sorted(m.path.stem for m in found) == sorted(COLOURS)


def test_webp_and_rotated_jpeg_reach_llamacpp_as_upright_png_or_jpeg(tmp_path):
    Image.new("RGB", (30, 20), (10, 200, 30)).save(tmp_path / "x.webp")
    rotated = Image.new("RGB", (200, 100), (200, 10, 10))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "r.jpg", exif=exif)
    message = _message_dict(
        "user", ("look", ImageRef(tmp_path / "x.webp", "a"), ImageRef(tmp_path / "r.jpg", "b"))
    )
    urls = [p["image_url"]["url"] for p in message["content"] if p["type"] == "image_url"]
    assert urls[0].startswith("data:image/png;base64,")
    assert urls[1].startswith("data:image/jpeg;base64,")
    with Library.open([tmp_path]) as lib:
        lib.update(embed=False)
        entry = lib.entry(tmp_path / "r.jpg")
    assert (entry.width, entry.height, entry.orientation) == (100, 200, "portrait")


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only: chmod for a normal user, a read-only bind mount for root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    view = folder.parent / f"{folder.name}-ro"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("running as root (chmod has no effect) and bind mounts are not allowed here")
    try:
        remount = ["mount", "-o", "remount,bind,ro", str(view)]
        if subprocess.run(remount, capture_output=True).returncode != 0:
            pytest.skip("running as root and a read-only remount is not allowed here")
        yield view
    finally:
        subprocess.run(["umount", str(view)], capture_output=True)


def test_read_only_folder_is_indexed_into_the_cache_folder(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    images = tmp_path / "images"
    images.mkdir()
    for name, (colour, caption) in list(COLOURS.items())[:2]:
        Image.new("RGB", (64, 64), colour).save(images / f"{name}.png")
        (images / f"{name}.txt").write_text(caption)
    with read_only(images) as folder:
        with pytest.raises(OSError):
            (folder / "probe").write_text("x")
        caplog.set_level("INFO", logger="xcomposer.library")
        with Library.open([folder]) as lib:
            report = lib.update()
            assert report.total == 2
            assert lib.store.path.is_relative_to(tmp_path / "cache" / "xcomposer")
            assert lib.search("error state", k=1)[0].path.name == "red.png"
        said = [r.getMessage() for r in caplog.records if "read-only" in r.getMessage()]
        assert len(said) == 1 and str(tmp_path / "cache") in said[0]
        with pytest.raises(ConfigError, match="cannot be written"):
            Library.open([folder], index_dir=folder / "index")


@pytest.mark.skipif(not XCOMPOSER.exists(), reason="run `make venv` first")
def test_cli_on_a_read_only_folder_and_an_unwritable_index_dir(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 64), (220, 30, 30)).save(images / "red.png")
    (images / "red.txt").write_text("A plain red square for the error state")
    (tmp_path / "a-file").write_text("not a folder")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(XCOMPOSER), *args], capture_output=True, text=True, env=env, timeout=600
        )

    with read_only(images) as folder:
        done = run("index", str(folder), "-q")
        assert done.returncode == 0, done.stderr
        assert f"index: {tmp_path / 'cache'}" in done.stdout
        found = run("search", "error state", "--images", str(folder), "-k", "1")
        assert found.returncode == 0 and "red.png" in found.stdout, found.stderr
        bad = run("index", str(folder), "--index-dir", str(tmp_path / "a-file" / "idx"), "-q")
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert bad.stderr.strip().count("\n") == 0 and "--index-dir" in bad.stderr
    compose = run("compose", "--help")
    assert "--index-dir" in compose.stdout


def _indexed_relpaths(root: Path) -> list[str]:
    with Library.open([root]) as lib:
        report = lib.update(embed=False)
        relpaths = sorted(m.relpath for m in (lib.entry(p) for p in report.added))
        return relpaths, report


def test_fingerprint_changes_when_a_sidecar_the_library_reads_changes(tmp_path):
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "photo.png")
    (tmp_path / "photo.png.md").write_text("A red photo\n")
    (tmp_path / "notes.md").write_text("a page, not read for any image\n")
    before = library_fingerprint([tmp_path])
    assert library_fingerprint([tmp_path]) == before
    (tmp_path / "notes.md").write_text("the page changed\n")
    assert library_fingerprint([tmp_path]) == before  # not read for an image
    (tmp_path / "photo.png.md").write_text("A red photo at dawn\n")
    after_sidecar = library_fingerprint([tmp_path])
    assert after_sidecar != before
    (tmp_path / "captions.yml").write_text("photo.png: red\n")
    assert library_fingerprint([tmp_path]) != after_sidecar


def test_symlinked_folder_has_the_same_paths_in_index_and_fingerprint(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (64, 48), (10, 10, 200)).save(root / "sub" / "x.png")
    os.symlink("sub", root / "linked")
    relpaths, report = _indexed_relpaths(root)
    assert relpaths == ["sub/x.png"]
    reasons = {p.name: r for p, r in report.skipped}
    assert "loop" not in " ".join(reasons.values())  # the real folder is never called a loop
    assert "indexed under its own name" in reasons["linked"]
    # the fingerprint walks the same files: moving the real file changes it, the link does not
    first = library_fingerprint([root])
    os.unlink(root / "linked")
    assert library_fingerprint([root]) == first
    os.rename(root / "sub" / "x.png", root / "sub" / "y.png")
    assert library_fingerprint([root]) != first


def test_link_back_up_is_a_loop_and_outside_links_follow_the_config(tmp_path):
    root, outside = tmp_path / "images", tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(root / "a" / "x.png")
    Image.new("RGB", (64, 48), (200, 200, 10)).save(outside / "o.png")
    os.symlink("..", root / "a" / "up")
    os.symlink(outside, root / "out")
    relpaths, report = _indexed_relpaths(root)
    assert relpaths == ["a/x.png"]
    assert "loop" in dict((p.name, r) for p, r in report.skipped)["up"]
    default = library_fingerprint([root])
    followed = library_fingerprint([root], follow_symlinks_out=True)
    assert followed != default


@pytest.mark.parametrize("name", ["photo.webp", "diagram.svg"])
def test_describe_webp_and_svg_with_a_llamacpp_vision_model(tmp_path, name):
    from fixtures.tiny_models import write_tiny_gguf

    model, mmproj = write_tiny_gguf(tmp_path / "tiny")
    image = tmp_path / name
    if name.endswith(".svg"):
        image.write_text(DIAGRAM)
    else:
        Image.new("RGB", (64, 48), (10, 200, 30)).save(image)
    done = subprocess.run(
        [sys.executable, "-m", "xcomposer", "describe", str(image), "--model", str(model),
         "--mmproj", str(mmproj), "--cache-dir", str(tmp_path / "c"), "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    # llama.cpp itself cannot read WebP or SVG ("Failed to create bitmap from image bytes")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip()  # random weights: random words, but words


def test_the_plugins_block_fingerprint_renews_when_photo_png_md_is_edited(tmp_path):
    from xcomposer import FolderFingerprints

    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "photo.png")
    (tmp_path / "photo.png.md").write_text("A red photo\n")
    prints = FolderFingerprints()
    before = prints.folder(tmp_path)
    (tmp_path / "photo.png.md").write_text("A red photo at dawn\n")
    prints.forget()
    assert prints.folder(tmp_path) != before
    assert prints.folder(tmp_path) == library_fingerprint([tmp_path])


def test_the_files_the_library_reads_for_an_image_are_exactly_its_description_files(tmp_path):
    from xcomposer import describes_an_image

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    for name in ("photo.txt", "photo.md", "photo.png.txt", "photo.png.md", "captions.json"):
        (tmp_path / name).write_text("A red photo\n")
        assert describes_an_image(tmp_path / name), name
        before = library_fingerprint([tmp_path])
        (tmp_path / name).write_text("A red photo at dawn\n")
        assert library_fingerprint([tmp_path]) != before, f"{name} is read, so it is fingerprinted"
    for name in ("notes.md", "photo.jpg.md", "README.txt", "photo.png.yml"):
        (tmp_path / name).write_text("not about an image\n")
        assert not describes_an_image(tmp_path / name), name
