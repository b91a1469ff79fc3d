"""Misbehaving servers through the MkDocs plugin and the Jupyter REST API (issue 10).

The CLI's side is in test_transport_misbehaviour.py. Here a real `mkdocs build` and
a real Jupyter server talk to a loopback server that trickles its body or streams
without end: each gives one clear error (``page.md:LINE`` or a failed job), no
traceback, and returns instead of hanging. The wall-clock bound is generous (the
deadline is 2 s; loading the library's embedding model takes most of the rest).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from misbehaving_server import MODEL, MisbehavingServer, endless_stream, trickle
from mkdocs.exceptions import Abort, PluginError
from mkdocs_sites import build_site, make_site
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, server_config
from xcomposer import BackendConfig, Engine, EngineConfig

DEADLINE = 2.0
BOUND = 60.0  # without the total deadline, neither case returns at all

PAGE = "# Tea\n\n/// compose\n    max_images: 1\n    sections: 1\n\nWrite about tea.\n///\n"
REPLIES = {"trickle": lambda: trickle("x" * 400, every=0.1), "endless": endless_stream}


@pytest.mark.parametrize("kind", sorted(REPLIES))
def test_a_mkdocs_build_fails_with_the_page_line_and_returns(
    tmp_path: Path, captioned_images: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("XCOMPOSER_FROZEN", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reply = REPLIES[kind]()
    with MisbehavingServer(default=lambda request: reply) as server:
        plugin = {
            "backend": "openai",
            "base_url": server.base_url,
            "model": MODEL,
            "vision": False,
            "engine": {"backend": {"timeout": DEADLINE, "max_retries": 0}},
        }
        config = make_site(tmp_path, {"index.md": PAGE}, images=captioned_images, plugin=plugin)
        started = time.monotonic()
        with pytest.raises((PluginError, Abort)) as err:
            build_site(config)
        elapsed = time.monotonic() - started
    message = str(err.value)
    assert "index.md:3:" in message and "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    assert elapsed < BOUND
    assert not (tmp_path / "site/index.html").exists(), "nothing half written"


@pytest.fixture(scope="module")
def endless() -> MisbehavingServer:
    reply = endless_stream()
    with MisbehavingServer(default=lambda request: reply) as server:
        yield server


@pytest.fixture
def jp_server_config(endless: MisbehavingServer, tmp_path: Path) -> Any:
    backend = BackendConfig(
        backend="openai",
        base_url=endless.base_url,
        model=MODEL,
        timeout=DEADLINE,
        max_retries=0,
        vision=False,
    )
    engine = Engine(EngineConfig(backend=backend, cache_dir=str(tmp_path / "cache")))
    return server_config(engine)


def test_a_jupyter_compose_job_ends_in_one_clear_error(api: Api) -> None:
    body = {"instruction": "Write about tea", "library": "images", "sections": 1, "n_images": 1}
    started = time.monotonic()
    job = api.follow(api.start("compose", body), timeout=BOUND)
    elapsed = time.monotonic() - started
    assert job["state"] == "error", job
    error = job["error"]
    text = error if isinstance(error, str) else error.get("message", str(error))
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert elapsed < BOUND
