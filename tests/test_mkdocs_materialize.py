"""`xcomposer materialize PAGE.md`: the writer takes over a block's text by hand."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.tiny_models import write_tiny_gguf
from mkdocs_sites import Elements, build_site, main_content, make_site
from scripted import ScriptedBackend
from xcomposer import InputError

from mkdocs_xcomposer.materialize import materialize

PAGE = """\
# Notes

/// compose | Rockets
    max_images: 1
    sections: 2
    words: 20

Write about rockets.
///

Between the blocks.

/// illustrate
    max_images: 1

The engineers drink coffee before the launch.
///
"""


def test_materialize_writes_the_expansion_and_keeps_the_block_in_a_comment(
    tmp_path: Path, captioned_images: Path
) -> None:
    config = make_site(tmp_path, {"guide/notes.md": PAGE}, images=captioned_images)
    backends = {"main": ScriptedBackend()}
    build_site(config, backends)
    before = main_content((tmp_path / "site/guide/notes/index.html").read_text())
    page = tmp_path / "docs/guide/notes.md"

    done = materialize(page, config, line=4, backends=backends)  # a line inside the block
    assert done == ["guide/notes.md:3"]
    text = page.read_text()
    assert "<!-- xcomposer: materialized from this block" in text
    assert "/// compose | Rockets\n    max_images: 1" in text, "the original block is kept"
    assert "## Rockets\n\n### Scripted heading 1" in text, "the page has its own h1"
    assert re.search(
        r"\n!\[A [^\]]+\]\(\.\./assets/xcomposer/images/\w+\.\w+\)\n\*[A-Z][^*\n]+\*", text
    )
    assert "/// illustrate" in text.split("-->", 1)[1], "the other block is still a block"
    copied = list((tmp_path / "docs/assets/xcomposer/images").iterdir())
    assert len(copied) == 1, "the library image now lives in docs_dir"

    # The site builds from the materialised text: same words and image, no model.
    plugin = build_site(config, {"main": ScriptedBackend(lambda r: "unused")})
    after = main_content((tmp_path / "site/guide/notes/index.html").read_text())
    assert plugin.counts == {"cached": 1}, "only the illustrate block is left"
    assert "Scripted prose about the subject" in after
    src_before = [i["src"].rsplit("/", 1)[1] for i in Elements(before).all("img")]
    src_after = [i["src"].rsplit("/", 1)[1] for i in Elements(after).all("img")]
    assert src_after == src_before

    # A second run handles the remaining block; the commented one is not a block any more.
    materialize(page, config, backends=backends)
    final = page.read_text()
    assert final.count("<!-- xcomposer: materialized") == 2
    assert "The engineers drink coffee before the launch." in final.split("-->")[-1]


def test_materialize_refuses_what_it_cannot_do(tmp_path: Path, captioned_images: Path) -> None:
    config = make_site(tmp_path, {"index.md": PAGE}, images=captioned_images)
    page = tmp_path / "docs/index.md"
    with pytest.raises(InputError, match=r"index\.md:3: this compose block has no cached"):
        materialize(page, config, backends={"main": ScriptedBackend()})
    with pytest.raises(InputError, match=r"index\.md:12: no compose, illustrate or describe"):
        materialize(page, config, line=12, backends={"main": ScriptedBackend()})
    assert page.read_text() == PAGE, "nothing written"


@pytest.mark.slow
def test_materialize_from_the_command_line(tmp_path: Path, captioned_images: Path) -> None:
    """The `xcomposer` CLI finds the command through its entry point; a real llama.cpp model."""
    model, _ = write_tiny_gguf(tmp_path / "model")
    # A random tiny model writes no usable outline, so the page illustrates a writer's text.
    page_text = "# Notes\n\n" + PAGE.split("Between the blocks.\n\n", 1)[1]
    config = make_site(
        tmp_path / "site", {"index.md": page_text}, images=captioned_images,
        plugin={"model": str(model), "n_ctx": 2048},
    )  # fmt: skip
    build_site(config)
    xcomposer = Path(sys.executable).with_name("xcomposer")
    page = tmp_path / "site/docs/index.md"
    run = subprocess.run(
        [str(xcomposer), "materialize", str(page), "--line", "3"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "materialized index.md:3" in run.stdout
    text = page.read_text()
    assert "The engineers drink coffee before the launch." in text.split("-->")[-1]
    assert "<figure" not in text and "![" in text.split("-->")[-1]
    bad = subprocess.run(
        [str(xcomposer), "materialize", str(tmp_path / "nope.md")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.startswith("xcomposer: error: page ") and "not found" in bad.stderr
