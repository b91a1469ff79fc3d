"""A cached block is renewed exactly when something the library reads for its images changes.

Issue 15: the block key used to walk image folders on its own and missed files
the library reads (``photo.png.md`` sidecars). The key now comes from
``xcomposer.library_fingerprint`` (its symlink cases are tested in the library's tests).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mkdocs_sites import build_site, make_site
from scripted import ScriptedBackend


def block(folder: str) -> str:
    return (
        f"/// illustrate\n    images: {folder}\n    max_images: 1\n\n"
        "The engineers arrive before dawn and check the rocket on the pad.\n\n"
        "Later they share a cup of coffee while the countdown starts.\n///\n"
    )


def site(tmp_path: Path, captioned_images: Path) -> Path:
    for name in ("a", "b"):
        shutil.copytree(captioned_images, tmp_path / "docs" / "photos" / name)
    return make_site(tmp_path, {"one.md": block("photos/a"), "two.md": block("photos/b")})


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
