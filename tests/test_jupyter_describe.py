"""describe through the REST API with a real (tiny, random) vision model on llama.cpp.

The tiny GGUF and its projector are built by the test (tests/fixtures/tiny_models.py):
its words are random, so the tests check plumbing: the image reaches the model, by
path or as uploaded bytes, and the answer comes back as the engine gives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixtures.tiny_models import write_tiny_gguf
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, server_config
from xcomposer import BackendConfig, Engine, EngineConfig

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def vision_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("tiny-vision")
    model, mmproj = write_tiny_gguf(folder / "models")
    config = EngineConfig(
        backend=BackendConfig(model=str(model), mmproj=str(mmproj), n_ctx=1024),
        cache_dir=str(folder / "cache"),
    )
    engine = Engine(config)
    yield engine
    engine.close()


@pytest.fixture
def jp_server_config(vision_engine: Engine) -> Any:
    return server_config(vision_engine)


def test_describe_by_path_answers_like_the_engine(
    api: Api, vision_engine: Engine, jupyter_root: Path
) -> None:
    job = api.follow(api.start("describe", {"path": "images/cat.png"}))
    code, status = api.get("xcomposer", "status")
    assert status["mmproj"].endswith("tiny-mmproj.gguf") and status["engine_started"]
    assert job["state"] == "done", job["error"]
    assert job["result"]["image"] == "images/cat.png"
    assert job["result"]["style"] == "caption"
    assert [(e["stage"], e["done"], e["total"]) for e in job["events"]] == [
        ("describe", 0, 1),
        ("describe", 1, 1),
    ]
    direct = vision_engine.describe(jupyter_root / "images" / "cat.png")
    assert job["result"]["text"] == direct
    assert job["result"]["text"].strip()


def test_uploaded_bytes_are_described_like_the_file(api: Api, jupyter_root: Path) -> None:
    data = (jupyter_root / "images" / "coffee.png").read_bytes()
    by_path = api.follow(api.start("describe", {"path": "images/coffee.png", "style": "alt"}))
    code, job = api.post(
        "xcomposer",
        "describe",
        body=data,
        headers={"Content-Type": "image/png"},
        params={"style": "alt", "wait": 60},
    )
    assert code == 200 and job["state"] == "done", job
    assert job["result"]["image"].startswith("upload:")
    assert job["result"]["text"] == by_path["result"]["text"]


def test_a_question_about_an_uploaded_image(api: Api, jupyter_root: Path) -> None:
    data = (jupyter_root / "images" / "rocket.jpg").read_bytes()
    code, job = api.post(
        "xcomposer",
        "describe",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
        params={"question": "What is launching?", "wait": 60},
    )
    assert job["state"] == "done", job
    assert isinstance(job["result"]["text"], str) and job["result"]["text"].strip()
    code, reply = api.post(
        "xcomposer",
        "describe",
        body=data,
        headers={"Content-Type": "image/jpeg"},
        params={"style": "poem"},
    )
    assert code == 400 and "style" in reply["error"]
