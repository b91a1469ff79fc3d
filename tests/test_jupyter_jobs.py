"""Jobs on the server extension: one model call at a time, cancellation, untrusted model output.

A scripted backend stands in for the model here: it is slow on purpose (so a job
can be cancelled midway) and answers with HTML a real model cannot be made to
write.  The real model runs the same endpoints in test_jupyter_api.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from jupyter_xcomposer.cells import preview_html
from scripted import default_answer
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, SlowScriptedBackend, scripted_engine, server_config
from xcomposer import Engine

HOSTILE = '<script>alert("owned")</script> Cats <img src=x onerror="alert(1)"> nap & dream.'


@pytest.fixture(scope="module")
def slow_backend() -> SlowScriptedBackend:
    return SlowScriptedBackend(delay=0.25)


@pytest.fixture(scope="module")
def slow_engine(
    tmp_path_factory: pytest.TempPathFactory, slow_backend: SlowScriptedBackend
) -> Engine:
    engine = scripted_engine(tmp_path_factory.mktemp("slow"), slow_backend)
    yield engine
    engine.close()


@pytest.fixture
def jp_server_config(slow_engine: Engine) -> Any:
    return server_config(slow_engine)


def wait_for(api: Api, job: dict[str, Any], stage: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[dict] = list(job["events"])
    while not any(e["stage"] == stage for e in seen):
        assert time.monotonic() < deadline, f"no {stage} event"
        code, job = api.get("xcomposer", "jobs", job["id"], params={"since": len(seen), "wait": 2})
        seen.extend(job["events"])
        assert job["state"] in ("queued", "running"), job
    return job


def compose_body(sections: int = 6, seed: int = 0) -> dict[str, Any]:
    return {
        "instruction": "Write about cats",
        "library": "images",
        "sections": sections,
        "words": 20,
        "n_images": 1,
        "seed": seed,
    }


def test_cancel_stops_a_running_job_at_its_next_progress_report(
    api: Api, slow_backend: SlowScriptedBackend
) -> None:
    job = api.start("compose", compose_body(seed=1))
    job = wait_for(api, job, "write")
    calls_at_cancel = len(slow_backend.requests)
    code, reply = api.call("DELETE", "xcomposer", "jobs", job["id"])
    assert code == 200 and reply["cancel_requested"] is True
    job = api.follow(job)
    assert job["state"] == "cancelled"
    assert job["result"] is None
    assert not any(e["stage"] in ("place", "done") for e in job["events"])
    # At most the call already running when the cancel came finished; nothing after it.
    assert len(slow_backend.requests) <= calls_at_cancel + 1
    # "cancelled" is set once the work has unwound, so nothing of it runs any more: the
    # queue is idle and no call is in flight (counters, not a pause)
    code, status = api.get("xcomposer", "status")
    assert status["running"] == 0 and slow_backend.running == 0
    assert len(slow_backend.requests) <= calls_at_cancel + 1


def test_calls_are_queued_one_at_a_time_and_a_queued_job_can_be_cancelled(
    api: Api, slow_backend: SlowScriptedBackend
) -> None:
    slow_backend.most_at_once = 0
    first = api.start("compose", compose_body(sections=3, seed=2))
    second = api.start("compose", compose_body(sections=3, seed=3))
    third = api.start("compose", compose_body(sections=3, seed=4))
    code, status = api.get("xcomposer", "status")
    assert status["queue"] == 3 and status["running"] <= 1 and status["workers"] == 1
    code, reply = api.call("DELETE", "xcomposer", "jobs", third["id"])
    first, second, third = (api.follow(j) for j in (first, second, third))
    assert (first["state"], second["state"], third["state"]) == ("done", "done", "cancelled")
    assert third["started"] is None and third["events"] == []
    assert second["started"] >= first["finished"]
    assert slow_backend.most_at_once == 1
    code, status = api.get("xcomposer", "status")
    assert status["queue"] == 0


def test_wait_parameter_returns_the_finished_job_in_one_request(api: Api) -> None:
    article = {
        "title": "T",
        "paragraphs": [{"text": "A cat.", "kind": "text"}],
        "figures": [{"after": 0, "image": "images/cat.png", "caption": "c", "alt": "a"}],
    }
    code, job = api.post(
        "xcomposer",
        "edit",
        body={"op": "remove_image", "article": article, "figure": 0},
        params={"wait": 20},
    )
    assert code == 200 and job["state"] == "done"
    assert job["result"]["article"]["figures"] == []


def test_model_output_is_returned_as_data_and_escaped_where_rendered(
    api: Api, slow_backend: SlowScriptedBackend
) -> None:
    def hostile(request: Any) -> str:
        if request.choices is not None or request.json_schema is not None:
            return default_answer(request)
        return HOSTILE

    slow_backend.answer = hostile
    try:
        body = {**compose_body(sections=1, seed=5), "cells": True}
        job = api.follow(api.start("compose", body))
    finally:
        slow_backend.answer = default_answer
    assert job["state"] == "done", job["error"]
    result = job["result"]
    texts = [p["text"] for p in result["article"]["paragraphs"] if p["kind"] == "text"]
    assert HOSTILE in texts  # the model's words, unchanged, as JSON data
    sources = "\n".join(c["source"] for c in result["cells"])
    assert "<script" not in sources and "<img src=x" not in sources
    assert "&lt;script&gt;" in sources
    figure_alt = result["article"]["figures"][0]["alt"]
    html = preview_html(result["article"], result["cells"])
    elements = _elements(html)
    assert "script" not in {tag for tag, _ in elements}
    assert not any(name.startswith("on") for _, attrs in elements for name, _ in attrs)
    assert all(
        dict(attrs).get("src", "").startswith("data:image/") for t, attrs in elements if t == "img"
    )
    assert '&lt;script&gt;alert("owned")&lt;/script&gt;' in html  # shown as text
    assert figure_alt in html or figure_alt.replace("'", "&#x27;") in html


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element of ``html`` with its attributes, as a browser's parser reads them."""
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collect().feed(html)
    return found
