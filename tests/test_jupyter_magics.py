"""The IPython magics in a real IPython shell: %%compose renders the article, %describe an image."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

import pytest
from fixtures.tiny_models import write_tiny_gguf
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from jupyter_xcomposer.client import LocalClient
from jupyter_xcomposer.frontend import ImageCapture
from jupyter_xcomposer.magics import register
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, server_config
from xcomposer import BackendConfig, Engine, EngineConfig

COMPOSE = "%%compose --images images -n 1 --sections 2 --words 40\n{instruction}\n"


@pytest.fixture
def shell(jupyter_root: Path, monkeypatch: pytest.MonkeyPatch) -> InteractiveShell:
    monkeypatch.chdir(jupyter_root)
    shell = InteractiveShell.instance()
    yield shell
    shell.user_ns.pop("_xcomposer", None)


@pytest.fixture
def jp_server_config(real_engine: Engine) -> Any:
    return server_config(real_engine)


def run(shell: InteractiveShell, code: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = shell.run_cell(code)
    return result, captured


@pytest.mark.slow
def test_compose_magic_through_the_server_renders_markdown_with_embedded_images(
    api: Api, shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XCOMPOSER_SERVER_URL", api.serverapp.connection_url)
    monkeypatch.setenv("XCOMPOSER_SERVER_TOKEN", api.token)
    shell.run_cell("%load_ext jupyter_xcomposer")
    code = COMPOSE.format(instruction="Write a short article about cats and coffee")
    result, captured = api.run(asyncio.to_thread(run, shell, code))
    assert result.success, result.error_in_exec
    rendered = [o.data for o in captured.outputs if "text/markdown" in o.data]
    assert len(rendered) == 1
    markdown = rendered[0]["text/markdown"]
    assert markdown.startswith("# ")
    (uri,) = re.findall(r"\(data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert base64.b64decode(uri[1])[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1")
    # Markdown as documented, each image stored once: no HTML copy of the data URIs beside it.
    assert set(rendered[0]) == {"text/markdown", "text/plain"}
    article = shell.user_ns["_xcomposer"]["article"]
    assert len(article["figures"]) == 1 and article["figures"][0]["image"].startswith("images/")


def test_errors_are_one_line_without_traceback(
    shell: InteractiveShell, real_engine: Engine, jupyter_root: Path
) -> None:
    register(shell, LocalClient(engine=real_engine, base=jupyter_root))
    result, captured = run(
        shell, COMPOSE.format(instruction="Cats").replace("--images images", "--images nowhere")
    )
    assert not result.success
    assert "directory 'nowhere' not found" in str(result.error_in_exec)
    assert "Traceback" not in captured.stdout + captured.stderr
    result, _ = run(shell, "%describe missing.png")
    assert "image missing.png not found" in str(result.error_in_exec)


def test_describe_magic_describes_a_file_and_the_last_figure(
    shell: InteractiveShell, tmp_path: Path, jupyter_root: Path
) -> None:
    model, mmproj = write_tiny_gguf(tmp_path / "models")
    config = EngineConfig(
        backend=BackendConfig(model=str(model), mmproj=str(mmproj), n_ctx=1024),
        cache_dir=str(tmp_path / "cache"),
    )
    engine = Engine(config)
    try:
        register(shell, LocalClient(engine=engine, base=jupyter_root))
        result, captured = run(shell, "%describe images/cat.png")
        assert result.success, result.error_in_exec
        by_file = shell.user_ns["_xcomposer"]["text"]
        assert by_file == engine.describe(jupyter_root / "images" / "cat.png")
        assert by_file in captured.stdout
        # The last image the kernel displayed: a figure shown by a cell.
        ImageCapture.last = None
        shell.run_cell(
            "from IPython.display import Image, display\ndisplay(Image(filename='images/cat.png'))"
        )
        assert ImageCapture.last is not None
        result, captured = run(shell, "%describe _")
        assert result.success, result.error_in_exec
        assert shell.user_ns["_xcomposer"]["text"] == by_file
        assert shell.user_ns["_xcomposer"]["image"].startswith("upload:")
    finally:
        engine.close()
