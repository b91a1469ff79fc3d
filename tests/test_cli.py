"""The `xcomposer` command as a user runs it: results, the cache, and one-line errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.tiny_models import write_tiny_gguf
from PIL import Image
from xcomposer.backends.model_files import embedded_model_path

XCOMPOSER = [sys.executable, "-m", "xcomposer"]


def run(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*XCOMPOSER, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("xcomposer: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def tiny_vision(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny"))


@pytest.mark.slow
def test_compose_writes_markdown_with_two_figures_then_the_cache_answers(
    tmp_path: Path, captioned_images: Path
) -> None:
    out = tmp_path / "out.md"
    cache = tmp_path / "cache"
    args = [
        "compose",
        "Write a short article about lighthouses",
        "--images",
        str(captioned_images),
        "-n",
        "2",
        "-o",
        str(out),
        "--cache-dir",
        str(cache),
        "--sections",
        "3",
        "--words",
        "50",
    ]
    started = time.perf_counter()
    first = run(*args)
    first_s = time.perf_counter() - started
    assert first.returncode == 0, first.stderr
    md = out.read_text()
    figures = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)\n\*(.+)\*", md)
    assert len(figures) == 2
    for alt, url, caption in figures:
        assert alt.strip() and caption.strip()
        image = (out.parent / url.replace("%20", " ")).resolve()
        assert image.parent == captioned_images.resolve() and image.is_file()
    assert len({url for _, url, _ in figures}) == 2
    assert "[outline" in first.stderr and "tok/s" in first.stderr  # progress on stderr
    assert "0 answer(s) from the cache" in first.stderr

    out.unlink()
    started = time.perf_counter()
    second = run(*args)
    second_s = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    assert "xcomposer: 0 model call(s)" in second.stderr
    assert out.read_text() == md
    print(f"first run {first_s:.1f}s, cached run {second_s:.2f}s")


def test_compose_json_to_stdout(tmp_path: Path, captioned_images: Path) -> None:
    # the embedded model is real; keep it tiny
    result = run(
        "compose",
        "Write two sentences about cats",
        "--images",
        str(captioned_images),
        "-n",
        "1",
        "--json",
        "--sections",
        "1",
        "--words",
        "20",
        "-q",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["format"] == 1 and len(data["figures"]) == 1


def test_models_reports_the_embedded_default() -> None:
    result = run("models")
    assert result.returncode == 0, result.stderr
    assert "SmolLM2-135M-Instruct Q4_1 (embedded) [ok, text only]" in result.stdout


def test_models_reports_a_missing_model(tmp_path: Path) -> None:
    result = run("models", "--model", str(tmp_path / "gone.gguf"))
    assert (
        result.returncode == 1
        and "NOT READY" in result.stdout
        and "gone.gguf not found" in result.stdout
    )


def test_describe_with_a_vision_model(
    tiny_vision: tuple[Path, Path], captioned_images: Path, tmp_path: Path
) -> None:
    model, mmproj = tiny_vision
    result = run(
        "describe",
        str(captioned_images / "cat.png"),
        "--model",
        str(model),
        "--mmproj",
        str(mmproj),
        "--cache-dir",
        str(tmp_path / "c"),
        "--question",
        "What animal is this?",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # random weights: random words, but words


# -- bad input: one line, exit 2, nothing written ------------------------------------------
@pytest.fixture(scope="module")
def bad_images(tmp_path_factory: pytest.TempPathFactory, captioned_images: Path) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    good = (captioned_images / "cat.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 3])
    (folder / "notes.png").write_text("this is a text file, not a PNG\n")
    (folder / "empty.jpg").write_bytes(b"")
    bomb = Image.new("1", (12000, 12000))  # 144 Mpx, tiny on disk
    bomb.save(folder / "bomb.png", optimize=True)
    return folder


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("truncated.png", "truncated or corrupt"),
        ("notes.png", "is not an image"),
        ("empty.jpg", "is empty (0 bytes)"),
        ("bomb.png", "decompression bomb"),
        ("missing.png", "not found"),
    ],
)
def test_describe_bad_images(bad_images: Path, name: str, fragment: str) -> None:
    assert_one_line_error(run("describe", str(bad_images / name)), name, fragment)


def test_compose_bad_inputs(
    tmp_path: Path, captioned_images: Path, bad_images: Path, tiny_vision: tuple[Path, Path]
) -> None:
    out = tmp_path / "out.md"
    base = ["--cache-dir", str(tmp_path / "c"), "-o", str(out)]
    imgs = ["--images", str(captioned_images)]
    cases = [
        (["compose", "   ", *imgs], ["the instruction is empty"]),
        (
            ["compose", "Write", "--images", str(tmp_path / "nope")],
            ["image folder", "does not exist"],
        ),
        (["compose", "Write", "--images", str(bad_images)], ["has no usable images"]),
        (["compose", "Write", *imgs, "--model", str(tmp_path / "m.gguf")], ["m.gguf not found"]),
    ]
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"\x00" * 4096)
    cases.append((["compose", "Write", *imgs, "--model", str(corrupt)], ["not a GGUF file"]))
    _, mmproj = tiny_vision
    cases.append((["compose", "Write", *imgs, "--mmproj", str(mmproj)], ["do not belong together"]))
    for args, fragments in cases:
        result = run(*args, *base)
        assert_one_line_error(result, *fragments)
        assert not out.exists(), args
        assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".out.md.*"))


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "xcomposer.toml").write_text("[backend]\nthreads = 4\n")
    assert_one_line_error(run("models", cwd=tmp_path), "unknown option 'backend.threads'")


def test_embedded_model_is_the_packaged_file() -> None:
    assert embedded_model_path().is_file()
    assert shutil.which("xcomposer") or Path(sys.executable).with_name("xcomposer").exists()
