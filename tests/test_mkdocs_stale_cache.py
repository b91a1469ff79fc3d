"""A cached block is renewed exactly when something the library reads for its images changes.

Issue 15: the block key used to walk image folders on its own and missed files
the library reads (``photo.png.md`` sidecars). The key now comes from
``xcomposer.library_fingerprint`` (its symlink cases are tested in the library's tests).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mkdocs_sites import build_site, make_site
from scripted import ScriptedBackend


def block(folder: str) -> str:
    return (
        f"/// illustrate\n    images: {folder}\n    max_images: 1\n\n"
        "The engineers arrive before dawn and check the rocket on the pad.\n\n"
        "Later they share a cup of coffee while the countdown starts.\n///\n"
    )


def site(tmp_path: Path, captioned_images: Path, **plugin: object) -> Path:
    for name in ("a", "b"):
        shutil.copytree(captioned_images, tmp_path / "docs" / "photos" / name)
    pages = {"one.md": block("photos/a"), "two.md": block("photos/b")}
    return make_site(tmp_path, pages, plugin=plugin or None)


def test_editing_a_sidecar_renews_only_the_block_that_uses_its_folder(
    tmp_path: Path, captioned_images: Path
) -> None:
    config = site(tmp_path, captioned_images)
    assert build_site(config, {"main": ScriptedBackend()}).counts["composed"] == 2
    assert build_site(config, {"main": ScriptedBackend()}).counts == {"cached": 2}
    # A NAME.png.md sidecar is one of the files the library reads for an image.
    sidecar = tmp_path / "docs/photos/a/rocket.jpg.md"
    sidecar.write_text("A rocket on its pad at dawn, seen from the press site\n")
    counts = build_site(config, {"main": ScriptedBackend()}).counts
    assert counts == {"composed": 1, "cached": 1}
    # Editing it again renews it again; leaving it alone does not.
    sidecar.write_text("A rocket lifting off into a clear sky\n")
    assert build_site(config, {"main": ScriptedBackend()}).counts == {"composed": 1, "cached": 1}
    assert build_site(config, {"main": ScriptedBackend()}).counts == {"cached": 2}


@pytest.mark.parametrize(
    ("name", "text", "read"),
    [
        ("rocket.txt", "A rocket on its pad at dawn\n", True),
        ("rocket.md", "A **rocket** on its pad at dawn\n", True),
        ("rocket.jpg.txt", "A rocket on its pad at dawn\n", True),
        ("captions.yml", "rocket.jpg: A rocket on its pad at dawn\n", True),
        ("captions.json", '{"rocket.jpg": "A rocket on its pad at dawn"}\n', True),
        ("notes.txt", "Things to do before the launch\n", False),
        ("rocket.jpg.yml", "caption: not a file the library reads\n", False),
    ],
)
def test_every_file_the_library_reads_for_an_image_renews_exactly_its_block(
    tmp_path: Path, captioned_images: Path, name: str, text: str, read: bool
) -> None:
    from xcomposer import describes_an_image

    config = site(tmp_path, captioned_images)
    assert build_site(config, {"main": ScriptedBackend()}).counts["composed"] == 2
    written = tmp_path / "docs/photos/a" / name
    written.write_text(text)
    assert describes_an_image(written) is read
    expected = {"composed": 1, "cached": 1} if read else {"cached": 2}
    assert build_site(config, {"main": ScriptedBackend()}).counts == expected


def test_replacing_an_image_file_renews_exactly_its_block(
    tmp_path: Path, captioned_images: Path
) -> None:
    config = site(tmp_path, captioned_images)
    assert build_site(config, {"main": ScriptedBackend()}).counts["composed"] == 2
    shutil.copy(captioned_images / "lighthouse_day.png", tmp_path / "docs/photos/b/rocket.jpg")
    assert build_site(config, {"main": ScriptedBackend()}).counts == {"composed": 1, "cached": 1}


def test_editing_the_alt_text_a_docs_page_gives_an_image_renews_the_block_that_uses_it(
    tmp_path: Path, captioned_images: Path
) -> None:
    # With a docs folder configured, the library reads the alt text and captions its
    # pages give an image: those pages are files it reads for that image.
    config = site(tmp_path, captioned_images, engine={"library": {"docs_dir": "docs"}})
    notes = tmp_path / "docs/notes.md"
    notes.write_text("# Notes\n\n![A rocket on its pad](photos/a/rocket.jpg)\n")
    assert build_site(config, {"main": ScriptedBackend()}).counts["composed"] == 2
    assert build_site(config, {"main": ScriptedBackend()}).counts == {"cached": 2}
    notes.write_text("# Notes\n\n![A rocket lifting off at dawn](photos/a/rocket.jpg)\n")
    assert build_site(config, {"main": ScriptedBackend()}).counts == {"composed": 1, "cached": 1}
    # Prose on a page that gives no image anything is not read for any image.
    notes.write_text(notes.read_text() + "\nMore words about launches.\n")
    assert build_site(config, {"main": ScriptedBackend()}).counts == {"cached": 2}


@pytest.mark.parametrize("follow", [False, True])
def test_a_folder_linked_from_outside_counts_exactly_when_the_library_follows_it(
    tmp_path: Path, captioned_images: Path, follow: bool
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(captioned_images / "rocket.jpg", shared / "launch.jpg")
    (shared / "launch.txt").write_text("A launch tower in the morning\n")
    engine = {"library": {"follow_symlinks_out": follow}}
    config = site(tmp_path, captioned_images, engine=engine)
    (tmp_path / "docs/photos/a/linked").symlink_to(shared, target_is_directory=True)
    assert build_site(config, {"main": ScriptedBackend()}).counts["composed"] == 2
    (shared / "launch.txt").write_text("A launch tower at night, lit from below\n")
    expected = {"composed": 1, "cached": 1} if follow else {"cached": 2}
    assert build_site(config, {"main": ScriptedBackend()}).counts == expected
