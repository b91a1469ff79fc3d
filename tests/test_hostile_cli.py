"""`xcomposer compose` and `describe` against a hostile server, through the real CLI.

The server (tests/hostile_server.py) answers valid JSON whose content is an attack.
A user would open the Markdown in a renderer, cat the files, look at the terminal
and at the exit code: that is what is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from hostile_server import (
    MODEL,
    SCHEMA_BREAKING_OUTLINE,
    UNSAFE_TERMINAL,
    HostileServer,
    live_html,
    render_both,
)

# File names a writer may well have: spaces, '#', '%', parentheses, non-ASCII.
ODD_NAMES = {
    "lighthouse #1 (100%) é.png": "lighthouse_day.png",
    "night%20beam (2).png": "lighthouse_night.png",
}


def run_cli(*args: str, cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "xcomposer", *args],
        capture_output=True,
        cwd=cwd,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        preexec_fn=lambda: os.umask(umask),  # noqa: PLW1509 - the user's umask, nothing else
    )


def backend_args(server: HostileServer, cache: Path) -> list[str]:
    return ["--backend", "openai", "--base-url", server.base_url, "--model", MODEL,
            "--cache-dir", str(cache)]  # fmt: skip


def assert_terminal_safe(data: bytes, what: str) -> None:
    text = data.decode("utf-8")
    bad = sorted({f"U+{ord(c):04X}" for c in UNSAFE_TERMINAL.findall(text)})
    assert not bad, f"{what} carries {bad}"
    assert "THOUGHT-MARKER" not in text, f"{what} carries the model's reasoning"


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory: pytest.TempPathFactory, captioned_images: Path) -> Path:
    folder = tmp_path_factory.mktemp("odd names")
    for name, source in ODD_NAMES.items():
        shutil.copy(captioned_images / source, folder / name)
        caption = (captioned_images / source).with_suffix(".txt").read_text()
        (folder / name).with_suffix(".txt").write_text(caption)
    return folder


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory, odd_images: Path) -> dict:
    """One compose to Markdown, then the same (from the cache) to JSON."""
    work = tmp_path_factory.mktemp("work")
    cache = work / "cache"
    with HostileServer("payload") as server:
        common = [*backend_args(server, cache), "--images", str(odd_images), "-n", "2"]
        instruction = "Write a short article about lighthouses"
        md = run_cli("compose", instruction, "--sections", "2", *common, "-o", "out.md", cwd=work)
        js = run_cli(
            "compose", instruction, "--sections", "2", *common, "--json", "-o", "out.json", cwd=work
        )
        stdout = run_cli("compose", instruction, "--sections", "2", *common, cwd=work)
    return {"work": work, "cache": cache, "md": md, "json": js, "stdout": stdout}


@pytest.mark.slow
def test_compose_succeeds_without_a_traceback(composed: dict) -> None:
    for run in ("md", "json", "stdout"):
        result = composed[run]
        assert result.returncode == 0, result.stderr.decode()
        assert b"Traceback" not in result.stderr


@pytest.mark.slow
def test_rendered_markdown_has_no_live_html(composed: dict) -> None:
    markdown = (composed["work"] / "out.md").read_text(encoding="utf-8")
    assert markdown.count("![") == 2  # the two figures the pipeline placed
    for renderer, page in render_both(markdown).items():
        assert live_html(page) == [], renderer
        # The payloads are still there, as text a reader can see.
        assert "&lt;script&gt;" in page, renderer
        assert page.count("<img") == 2, renderer


@pytest.mark.slow
def test_figure_paths_survive_odd_file_names(composed: dict, odd_images: Path) -> None:
    import re

    markdown = (composed["work"] / "out.md").read_text(encoding="utf-8")
    for renderer, page in render_both(markdown).items():
        sources = re.findall(r'<img[^>]* src="([^"]+)"', page)
        assert len(sources) == 2, renderer
        for src in sources:
            assert "#" not in src and " " not in src and "(" not in src, src
            assert (composed["work"] / unquote(src)).resolve().parent == odd_images.resolve()
            assert (composed["work"] / unquote(src)).is_file(), (renderer, src)


@pytest.mark.slow
def test_files_and_terminal_carry_no_escapes_bidi_or_reasoning(composed: dict) -> None:
    work = composed["work"]
    assert_terminal_safe((work / "out.md").read_bytes(), "out.md")
    assert_terminal_safe((work / "out.json").read_bytes(), "out.json")
    assert_terminal_safe(composed["stdout"].stdout, "stdout")
    assert_terminal_safe(composed["stdout"].stderr, "stderr")
    for entry in composed["cache"].rglob("*.json"):
        assert_terminal_safe(entry.read_bytes(), f"cache entry {entry.name}")


@pytest.mark.slow
def test_json_output_keeps_the_text_and_drops_the_reasoning(composed: dict) -> None:
    article = json.loads((composed["work"] / "out.json").read_text(encoding="utf-8"))
    texts = [article["title"], *(p["text"] for p in article["paragraphs"])]
    texts += [f["caption"] for f in article["figures"]]
    assert all("THOUGHT-MARKER" not in t and "<think" not in t for t in texts)
    assert article["title"].startswith("Lights")
    assert len(article["figures"]) == 2


@pytest.mark.slow
def test_written_files_honour_the_umask(composed: dict) -> None:
    modes = {
        stat.S_IMODE((composed["work"] / name).stat().st_mode) for name in ("out.md", "out.json")
    }
    modes |= {stat.S_IMODE(p.stat().st_mode) for p in composed["cache"].rglob("*.json")}
    assert modes == {0o644}  # umask 022: what `touch` would give, not 0600


@pytest.mark.slow
def test_describe_prints_terminal_safe_text(tmp_path: Path, odd_images: Path) -> None:
    image = next(odd_images.glob("*.png"))
    with HostileServer() as server:
        result = run_cli("describe", str(image), *backend_args(server, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert_terminal_safe(result.stdout, "stdout")
    assert_terminal_safe(result.stderr, "stderr")
    assert result.stdout.decode().startswith("A cat")


@pytest.mark.slow
def test_an_outline_that_breaks_the_schema_is_one_clear_error(
    tmp_path: Path, odd_images: Path
) -> None:
    with HostileServer("breaks-schema") as server:
        result = run_cli(
            "compose", "Write about lighthouses", "--images", str(odd_images), "--sections", "4",
            *backend_args(server, tmp_path / "cache"), "-o", "out.md", cwd=tmp_path,
        )  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("xcomposer: error:")]
    assert len(errors) == 1, stderr
    assert "does not match" in errors[0] and SCHEMA_BREAKING_OUTLINE[0] in errors[0]
    assert not (tmp_path / "out.md").exists()  # nothing half-written, nothing repaired
    assert_terminal_safe(result.stderr, "stderr")


@pytest.mark.slow
def test_a_repeated_outline_heading_is_dropped_not_written_twice(
    tmp_path: Path, odd_images: Path
) -> None:
    with HostileServer("duplicates") as server:
        result = run_cli(
            "compose", "Write about lighthouses", "--images", str(odd_images), "--sections", "4",
            "-n", "1", *backend_args(server, tmp_path / "cache"), "--json", cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    article = json.loads(result.stdout)
    headings = [p["text"] for p in article["paragraphs"] if p["kind"] == "heading"]
    assert headings == ["Same heading", "Other heading"]
    assert "repeated" in article["provenance"]["outline"]
