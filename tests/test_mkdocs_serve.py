"""`mkdocs serve`: uncached blocks compose in the background behind a visible placeholder,
and only the blocks whose inputs changed are composed again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fixtures.tiny_models import write_tiny_gguf
from mkdocs_sites import build_site, main_content, make_site
from scripted import ScriptedBackend

BLOCK = """\
/// compose | {title}
    max_images: 1
    sections: 1
    words: 20

Write about {topic}.
///
"""


def wait_idle(plugin, seconds: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while plugin.workshop.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert plugin.workshop.pending() == 0, "background composition did not finish"


def test_serve_shows_a_placeholder_then_the_block_and_recomposes_only_what_changed(
    tmp_path: Path, captioned_images: Path
) -> None:
    page = (
        BLOCK.format(title="Rockets", topic="rockets")
        + "\n"
        + BLOCK.format(title="Coffee", topic="coffee")
    )
    config = make_site(tmp_path, {"index.md": page}, images=captioned_images)
    backend = ScriptedBackend()
    plugin = build_site(config, {"main": backend}, serving=True)
    html = main_content((tmp_path / "site/index.html").read_text())
    assert html.count("Being composed") == 2 and "<figure" not in html
    assert plugin.counts["pending"] == 2
    wait_idle(plugin)

    plugin = build_site(config, {"main": backend}, serving=True)  # what the watcher triggers
    html = main_content((tmp_path / "site/index.html").read_text())
    assert "Being composed" not in html and html.count("<figure") == 2
    assert plugin.counts == {"cached": 2}

    (tmp_path / "docs/index.md").write_text(page.replace("about coffee", "about espresso"))
    plugin = build_site(config, {"main": backend}, serving=True)
    assert plugin.counts == {"cached": 1, "pending": 1}, "exactly one block is composed again"
    html = main_content((tmp_path / "site/index.html").read_text())
    assert html.count("Being composed") == 1 and html.count("<figure") == 1
    wait_idle(plugin)
    plugin = build_site(config, {"main": backend}, serving=True)
    assert plugin.counts == {"cached": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode("utf-8")


@pytest.mark.slow
def test_real_mkdocs_serve_with_a_real_llama_cpp_model(
    tmp_path: Path, captioned_images: Path
) -> None:
    """`mkdocs serve` as a writer runs it, on a tiny random GGUF through llama.cpp."""
    model, mmproj = write_tiny_gguf(tmp_path / "model")
    page = "# Launch notes\n\n" + BLOCK.format(title="Rockets", topic="rockets")
    config = make_site(
        tmp_path / "site-src",
        {"index.md": page},
        images=captioned_images,
        plugin={"model": str(model), "mmproj": str(mmproj), "n_ctx": 2048},
    )
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("CI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "serve", "-f", str(config), "-a", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        first = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                text = fetch(url)
            except OSError:
                time.sleep(0.3)
                continue
            first = first or text
            if "<figure" in text:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the composed block never appeared")
        assert first is not None and "Being composed" in first, "the server answered at once"
        assert "<figure" in text and "Launch notes" in text
        blocks = list((tmp_path / "site-src/.cache/xcomposer/blocks").rglob("*.json"))
        assert len(blocks) == 1
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "being composed in the background" in out
    assert "Traceback" not in out, out[-3000:]
