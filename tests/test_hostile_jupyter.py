"""The Jupyter REST API of the real server extension, its engine talking to the hostile server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hostile_server import MODEL, UNSAFE_TERMINAL, HostileServer, live_html, render_both
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, server_config
from xcomposer import BackendConfig, Engine, EngineConfig


@pytest.fixture(scope="module")
def hostile() -> HostileServer:
    with HostileServer("payload") as server:
        yield server


@pytest.fixture
def jp_server_config(hostile: HostileServer, tmp_path: Path) -> Any:
    backend = BackendConfig(backend="openai", base_url=hostile.base_url, model=MODEL)
    engine = Engine(EngineConfig(backend=backend, cache_dir=str(tmp_path / "cache")))
    return server_config(engine)


@pytest.mark.slow
def test_compose_results_carry_no_live_html(api: Api, hostile: HostileServer) -> None:
    body = {
        "instruction": "Write about lighthouses",
        "library": "images",
        "cells": True,
        "sections": 2,
        "n_images": 1,
    }
    job = api.follow(api.start("compose", body))
    assert job["state"] == "done", job["error"]
    assert hostile.requests
    result = job["result"]
    sources = [result["markdown"], *(cell["source"] for cell in result["cells"])]
    for source in sources:
        assert not UNSAFE_TERMINAL.search(source)
        assert "THOUGHT-MARKER" not in source
        for renderer, page in render_both(source).items():
            assert live_html(page) == [], (renderer, source[:200])
    assert "&lt;script&gt;" in result["markdown"]
    article = result["article"]
    texts = [article["title"], *(p["text"] for p in article["paragraphs"])]
    assert not any(UNSAFE_TERMINAL.search(t) or "THOUGHT-MARKER" in t for t in texts)


@pytest.mark.slow
def test_describe_result_is_terminal_safe(api: Api) -> None:
    job = api.follow(api.start("describe", {"path": "images/cat.png"}))
    assert job["state"] == "done", job["error"]
    text = job["result"]["text"]
    assert text.startswith("A cat") and "THOUGHT-MARKER" not in text
    assert not UNSAFE_TERMINAL.search(text)
