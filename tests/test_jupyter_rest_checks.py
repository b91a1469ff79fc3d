"""The REST API checks every request before it queues a job, and answers in JSON.

Regression tests for issue 14's server defects: a 400 that still ran the job, a
long instruction or a deep body that became a 500, options out of range accepted,
HTML 404 pages, absolute paths and Python internals in messages, jobs outliving
the kernel that started them.  A scripted backend stands in for the model (it is
slow on purpose, so jobs can be caught queued); the real model runs the same
routes in test_jupyter_api.py.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from scripted import default_answer
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, SlowScriptedBackend, scripted_engine, server_config
from xcomposer import Engine

FIGURE = re.compile(r"\n\n!\[[^\]\n]*\]\(attachment:[^)\s]+\)\n\n\*[^\n]*\*")
BODY = {"instruction": "Write about cats", "library": "images", "sections": 1, "words": 20}


@pytest.fixture(scope="module")
def backend() -> SlowScriptedBackend:
    return SlowScriptedBackend(delay=0.3)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, backend: SlowScriptedBackend) -> Engine:
    engine = scripted_engine(tmp_path_factory.mktemp("checks"), backend)
    yield engine
    engine.close()


@pytest.fixture
def jp_server_config(engine: Engine) -> Any:
    return server_config(engine, job_lease=1.0)


def extension(api: Api) -> Any:
    return next(iter(api.serverapp.extension_manager.extension_apps["jupyter_xcomposer"]))


def jobs_started(api: Api) -> int:
    queue = extension(api).service.started_queue
    return len(queue.jobs()) if queue is not None else 0


def assert_refused(api: Api, op: str, body: Any, code: int, words: str, **params: Any) -> str:
    """The POST is refused with ``code`` and one JSON line, and no job was queued."""
    before = jobs_started(api)
    got, reply = api.post("xcomposer", op, body=body, params=params or None)
    assert got == code, (body, reply)
    assert set(reply) == {"error"} and "\n" not in reply["error"], reply
    assert words in reply["error"], reply
    assert jobs_started(api) == before, "a refused request still queued a job"
    return reply["error"]


def test_a_bad_wait_is_refused_before_the_job_is_queued(api: Api) -> None:
    for wait in ("abc", "-1", "nan"):
        assert_refused(api, "compose", BODY, 400, "wait must be a number", wait=wait)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"sections": 0}, "sections"),
        ({"sections": 100_000}, "sections"),
        ({"n_images": -1}, "n_images"),
        ({"candidates": 0}, "candidates"),
        ({"candidates": 11}, "candidates"),  # the engine's bound: selection letters A..J
        ({"words": 3}, "words"),
        ({"instruction": ""}, "instruction is empty"),
        ({"instruction": "   "}, "instruction is empty"),
        ({"sections": "3"}, "sections"),
    ],
)
def test_options_out_of_range_are_refused_at_once(api: Api, change: dict, words: str) -> None:
    message = assert_refused(api, "compose", {**BODY, **change}, 400, words)
    assert "Input should" not in message or "see docs/jupyter.md" in message


def test_no_library_is_a_400_in_jupyter_terms(api: Api) -> None:
    body = {k: v for k, v in BODY.items() if k != "library"}
    message = assert_refused(api, "compose", body, 400, "c.XComposerApp.library")
    assert "--images" not in message


def test_text_longer_than_the_models_context_is_413_not_500(api: Api) -> None:
    for size in (21_000, 1_000_000):
        long = "Cats sleep a lot. " * (size // 18)
        message = assert_refused(api, "compose", {**BODY, "instruction": long}, 413, "context")
        assert "characters" in message
        assert_refused(api, "illustrate", {"text": long, "library": "images"}, 413, "split it")


def test_deeply_nested_bodies_are_400(api: Api) -> None:
    assert_refused(api, "compose", "[" * 100_000 + "]" * 100_000, 400, "nests deeper")
    deep: Any = "x"
    for _ in range(200):
        deep = {"a": deep}
    assert_refused(api, "edit", {"op": "shorten", "article": deep, "index": 1}, 400, "nests")


@pytest.mark.parametrize(
    ("method", "parts"),
    [
        ("GET", ("xcomposer", "nope")),
        ("POST", ("xcomposer", "compose", "extra")),
        ("GET", ("xcomposer", "jobs", "not-a-job-id")),
        ("DELETE", ("xcomposer", "jobs", "1-xyz")),
        ("GET", ("xcomposer", "jobs", "1-" + "a" * 24, "more")),
        ("GET", ("xcomposer",)),
    ],
)
def test_unknown_routes_and_job_ids_are_json_404s(api: Api, method: str, parts: tuple) -> None:
    code, reply = api.call(method, *parts, body="{}" if method == "POST" else None)
    assert code == 404
    assert isinstance(reply, dict) and set(reply) == {"error"}, reply


def test_messages_show_no_server_paths_and_no_python_internals(
    api: Api, jupyter_root: Path
) -> None:
    (jupyter_root / "notes" / "not-an-image.png").write_text("plain text, not a picture")
    messages = [
        assert_refused(api, "describe", {"path": "notes/not-an-image.png"}, 400, "not-an-image"),
        assert_refused(api, "describe", {"path": "notes/missing.png"}, 404, "not found"),
        assert_refused(
            api,
            "edit",
            {"op": "shorten", "article": {"title": "x", "colour": 1}, "index": 0},
            400,
            "not valid article JSON",
        ),
        assert_refused(api, "compose", {**BODY, "n_images": "many"}, 400, "n_images"),
    ]
    for message in messages:
        assert str(jupyter_root) not in message and "/tmp/" not in message, message
        assert "__init__" not in message and "keyword argument" not in message, message
        assert "literal[" not in message, message


def test_describe_by_path_is_checked_before_queueing(api: Api) -> None:
    # The scripted model has no vision: refused at once (no job fails later).
    message = assert_refused(api, "describe", {"path": "images/cat.png"}, 422, "vision model")
    assert "mmproj" in message


def test_markdown_results_are_escaped_like_cells(api: Api, backend: SlowScriptedBackend) -> None:
    hostile = '<script>alert("owned")</script> Cats <img src=x onerror="alert(1)"> nap.'

    def answer(request: Any) -> str:
        if request.choices is not None or request.json_schema is not None:
            return default_answer(request)
        return hostile

    backend.answer = answer
    try:
        job = api.follow(api.start("compose", {**BODY, "n_images": 1, "seed": 77, "cells": True}))
    finally:
        backend.answer = default_answer
    assert job["state"] == "done", job["error"]
    markdown = job["result"]["markdown"]
    assert "<script" not in markdown and "<img src=x" not in markdown
    assert "&lt;script&gt;" in markdown
    # the same text as the cells, with paths instead of attachments
    cell_text = "\n\n".join(c["source"] for c in job["result"]["cells"])
    assert markdown.split("![")[0] == cell_text.split("![")[0]


def test_illustrate_in_place_keeps_the_persons_text_character_for_character(api: Api) -> None:
    text = (
        "# My notes\n\n\n\nThe cat sleeps on the  warm windowsill.\n"
        "She dreams of coffee.\n\n```python\nprint('not prose')\n```\n\nLast words here.  \n"
    )
    body = {"text": text, "library": "images", "n_images": 1, "cells": True, "seed": 3}
    job = api.follow(api.start("illustrate", body))
    assert job["state"] == "done", job["error"]
    cell = job["result"]["cell"]
    ((name, _bundle),) = cell["attachments"].items()
    figures = FIGURE.findall(cell["source"])
    assert len(figures) == 1 and f"(attachment:{name})" in figures[0]
    assert FIGURE.sub("", cell["source"]) == text
    # the code block is not prose: the figure never lands inside or right after it
    placed_after = job["result"]["placements"][0]["after"]
    assert job["result"]["article"]["paragraphs"][placed_after]["kind"] == "text"


def test_jobs_of_a_restarted_kernel_are_cancelled(api: Api) -> None:
    code, kernel = api.post("api", "kernels", body={"name": "python3"})
    assert code == 201, kernel
    owner = f"kernel:{kernel['id']}"
    try:
        first = api.start("compose", {**BODY, "sections": 6, "seed": 11}, owner=owner)
        queued = api.start("compose", {**BODY, "sections": 6, "seed": 12}, owner=owner)
        code, _ = api.post("api", "kernels", kernel["id"], "restart", body="")
        assert code == 200
        assert api.follow(first)["state"] == "cancelled"
        job = api.follow(queued)
        assert job["state"] == "cancelled" and job["started"] is None
    finally:
        api.call("DELETE", "api", "kernels", kernel["id"])
    assert_refused(api, "compose", BODY, 400, "not a running kernel", owner=owner)


def test_a_closing_tab_cancels_its_jobs_and_an_abandoned_job_expires(api: Api) -> None:
    job = api.start("compose", {**BODY, "sections": 6, "seed": 21}, owner="client:tab-1")
    code, reply = api.call("DELETE", "xcomposer", "jobs", params={"owner": "client:tab-1"})
    assert code == 200 and reply["cancelled"] == [job["id"]]
    assert api.follow(job)["state"] == "cancelled"
    # Nobody follows this one: after the lease (1 s here) the server cancels it.
    job = api.start("compose", {**BODY, "sections": 6, "seed": 22}, owner="client:tab-2")
    app = extension(api)
    deadline = time.monotonic() + 60
    while app.service.queue.get(job["id"]).state not in ("cancelled", "done"):
        assert time.monotonic() < deadline, "the abandoned job was never cancelled"
        api.run(__import__("asyncio").sleep(0.2))
    assert app.service.queue.get(job["id"]).state == "cancelled"


RELATIVE_MODEL = server_config(model="models/tiny-llama.gguf", cache_dir=".cache-xcomposer")


@pytest.mark.parametrize("jp_server_config", [RELATIVE_MODEL])
def test_a_relative_model_is_found_in_the_root_and_status_says_if_it_can_load(
    api: Api, jupyter_root: Path
) -> None:
    code, status = api.get("xcomposer", "status")
    assert code == 200
    assert status["can_load"] is False and status["ok"] is False
    assert "models/tiny-llama.gguf" in status["model_detail"]
    assert str(jupyter_root) not in str(status), status
    assert "hugging" not in status["model_detail"].lower()
    # Once the file is there (relative to the root, not to the server's working folder):
    from fixtures.tiny_models import write_tiny_gguf

    pytest.importorskip("llama_cpp")
    write_tiny_gguf(jupyter_root / "models")
    try:
        code, status = api.get("xcomposer", "status")
        assert status["can_load"] is True, status
        assert status["model"] == "models/tiny-llama.gguf"
    finally:
        for made in (jupyter_root / "models").iterdir():
            made.unlink()


def test_a_figure_can_be_replaced_by_a_candidate_chosen_by_hand(api: Api) -> None:
    body = {**BODY, "n_images": 1, "candidates": 3, "cells": True, "seed": 31}
    job = api.follow(api.start("compose", body))
    assert job["state"] == "done", job["error"]
    article = job["result"]["article"]
    figure = article["figures"][0]
    other = next(c for c in figure["candidates"] if c["image"] != figure["image"])
    edit = {"op": "choose_image", "article": article, "figure": 0, "image": other["image"]}
    job = api.follow(api.start("edit", {**edit, "cells": True}))
    assert job["state"] == "done", job["error"]
    chosen = job["result"]["article"]["figures"][0]
    assert chosen["image"] == other["image"] and chosen["score"] == other["score"]
    assert chosen["caption"] == figure["caption"]
    assert job["result"]["placements"][0]["image"] == other["image"]
    # Only the figures' candidates may be chosen, and nothing outside the root.
    assert_refused(api, "edit", {**edit, "image": "notes/cat.png"}, 400, "not a candidate")
    assert_refused(api, "edit", {**edit, "image": "../x.png"}, 400, "'..'")
