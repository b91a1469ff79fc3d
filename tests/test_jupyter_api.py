"""The REST API of the real server extension, on the embedded default model (SmolLM2-135M).

One engine and one result cache serve the whole session: the first compose runs
the model, later calls with the same inputs are answered from the cache.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, server_config
from xcomposer import Engine

SMALL = {"sections": 2, "words": 40, "n_images": 1}
INSTRUCTION = "Write a short article about cats and coffee"


@pytest.fixture
def jp_server_config(real_engine: Engine) -> Any:
    return server_config(real_engine)


@pytest.fixture
def composed(api: Api) -> dict[str, Any]:
    """One small compose with cells (the model runs once per session; then the cache)."""
    body = {"instruction": INSTRUCTION, "library": "images", "cells": True, **SMALL}
    return api.follow(api.start("compose", body))


def test_status_names_the_backend_and_model_before_anything_loads(api: Api) -> None:
    code, status = api.get("xcomposer", "status")
    assert code == 200
    assert status["backend"] == "llamacpp"
    assert "SmolLM2" in status["model"]
    assert status["queue"] == 0
    assert status["workers"] == 1  # a local model: one call at a time


@pytest.mark.slow
def test_compose_returns_article_placements_and_progress(
    api: Api, real_engine: Engine, jupyter_root: Path
) -> None:
    calls_before = real_engine.stats.model_calls
    body = {"instruction": INSTRUCTION, "library": "images", **SMALL}
    job = api.follow(api.start("compose", body))
    assert job["state"] == "done", job["error"]
    article = job["result"]["article"]
    headings = [p for p in article["paragraphs"] if p["kind"] == "heading"]
    assert len(headings) == 2
    assert any(p["kind"] == "text" and len(p["text"].split()) >= 5 for p in article["paragraphs"])
    # One figure, named relative to the Jupyter root, and a real file there.
    assert len(article["figures"]) == 1
    figure = article["figures"][0]
    assert figure["image"].startswith("images/")
    assert (jupyter_root / figure["image"]).is_file()
    assert job["result"]["placements"] == [
        {k: figure[k] for k in ("after", "image", "caption", "alt", "score")}
    ]
    assert f"]({figure['image']})" in job["result"]["markdown"]
    # Progress: the pipeline's stages in order, with counts; tokens/s when the model ran.
    stages = [e["stage"] for e in job["events"]]
    order = [s for s in ("outline", "write", "place", "caption", "select", "done") if s in stages]
    assert order == ["outline", "write", "place", "caption", "select", "done"]
    assert [stages.index(s) for s in order] == sorted(stages.index(s) for s in order)
    assert all(e["done"] <= e["total"] for e in job["events"])
    if real_engine.stats.model_calls > calls_before:
        assert any(e["tokens_per_s"] for e in job["events"])
        code, status = api.get("xcomposer", "status")
        assert status["loaded"] is True and status["model_calls"] > 0


@pytest.mark.slow
def test_compose_cells_carry_the_figures_as_attachments(
    composed: dict[str, Any], jupyter_root: Path
) -> None:
    assert composed["state"] == "done", composed["error"]
    result = composed["result"]
    cells = result["cells"]
    assert all(c["cell_type"] == "markdown" for c in cells)
    assert cells[0]["source"].startswith("# ")
    figure = result["article"]["figures"][0]
    with_image = [c for c in cells if c.get("attachments")]
    assert len(with_image) == 1
    ((name, bundle),) = with_image[0]["attachments"].items()
    assert f"(attachment:{name})" in with_image[0]["source"]
    ((mime, data),) = bundle.items()
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    original = Image.open(jupyter_root / figure["image"])
    assert mime == f"image/{image.format.lower()}"
    assert image.size == original.size or max(image.size) == 1024


@pytest.mark.slow
def test_illustrate_keeps_the_text_word_for_word(api: Api) -> None:
    text = (
        "## Morning\n\nThe cat sleeps on the warm windowsill while the coffee brews.\n\n"
        "A rocket launch is on the radio, but nobody in the kitchen listens."
    )
    job = api.follow(api.start("illustrate", {"text": text, "library": "images", "n_images": 1}))
    assert job["state"] == "done", job["error"]
    article = job["result"]["article"]
    assert [p["text"] for p in article["paragraphs"]] == [
        "## Morning",
        "The cat sleeps on the warm windowsill while the coffee brews.",
        "A rocket launch is on the radio, but nobody in the kitchen listens.",
    ]
    (placement,) = job["result"]["placements"]
    assert article["paragraphs"][placement["after"]]["kind"] == "text"
    assert placement["image"].startswith("images/")


@pytest.mark.slow
def test_edits_take_the_article_back(api: Api, composed: dict[str, Any]) -> None:
    article = composed["result"]["article"]
    index = next(i for i, p in enumerate(article["paragraphs"]) if p["kind"] == "text")
    # remove_image: no model call, the figure goes.
    job = api.follow(api.start("edit", {"op": "remove_image", "article": article, "figure": 0}))
    assert job["state"] == "done", job["error"]
    assert job["result"]["article"]["figures"] == []
    # shorten: one real model call on one paragraph; the others stay as they were.
    job = api.follow(api.start("edit", {"op": "shorten", "article": article, "index": index}))
    assert job["state"] == "done", job["error"]
    new = job["result"]["article"]["paragraphs"]
    assert [p for i, p in enumerate(new) if i != index] == [
        p for i, p in enumerate(article["paragraphs"]) if i != index
    ]
    assert new[index]["text"].strip()
    # An index that is not a text paragraph: refused before a job is queued, with the
    # engine's one-line message.
    code, reply = api.post(
        "xcomposer", "edit", body={"op": "expand", "article": article, "index": 0}
    )
    assert code == 400 and "paragraph 0 is a heading" in reply["error"]
    assert "\n" not in reply["error"]
    code, reply = api.post("xcomposer", "edit", body={"op": "expand", "article": article})
    assert code == 400 and "the expand edit needs 'index'" in reply["error"]


def test_describe_without_a_vision_model_says_how_to_configure_one(api: Api) -> None:
    # Refused before a job is queued: the server knows the model has no vision.
    code, reply = api.post("xcomposer", "describe", body={"path": "images/cat.png"})
    assert code == 422
    assert "no vision model is configured" in reply["error"]
    assert "Traceback" not in reply["error"]


def test_bad_requests_are_one_line_json_errors(api: Api) -> None:
    cases = [
        ({"instruction": "x", "colour": "red"}, "unknown option 'colour'"),
        ({"library": "images"}, "'instruction' is missing"),
        ({"instruction": "x", "n_images": "many"}, "n_images"),
        ("[1, 2]", "not a JSON object"),
        ("{not json", "not valid JSON"),
        ({"instruction": "x", "library": "no-such-folder"}, "not found"),
    ]
    for body, message in cases:
        code, reply = api.post("xcomposer", "compose", body=body)
        assert code in (400, 404), (body, reply)
        assert set(reply) == {"error"}, reply
        assert message in reply["error"] and "\n" not in reply["error"]
    code, reply = api.post("xcomposer", "compose", body={"instruction": "  ", "library": "images"})
    assert code == 400 and "instruction is empty" in reply["error"]


def test_unknown_job_is_404(api: Api) -> None:
    code, reply = api.get("xcomposer", "jobs", "99-abcdef")
    assert code == 404 and re.search(r"job 99-abcdef not found", reply["error"])
