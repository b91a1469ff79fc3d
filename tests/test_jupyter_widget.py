"""The assistant widget through its Python API: clicks start real jobs, progress shows, cells insert.

The widget talks to a real Jupyter server with the extension (the embedded default
model behind it); the notebook side (the JupyterLab extension) is a stand-in here
that records what it is asked: the browser test drives the real one.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_xcomposer import Assistant
from jupyter_xcomposer.client import LocalClient, ServerClient, connect
from jupyter_xcomposer.frontend import ABSENT, ImageCapture
from scripted import default_answer
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, SlowScriptedBackend, scripted_engine, server_config
from xcomposer import Engine

INSTRUCTION = "Write a short article about cats and coffee"
SMALL = {"sections": 2, "words": 40, "n_images": 1}


class NotebookStandIn:
    """What the JupyterLab extension answers, recorded: inserts, the selected cell's text."""

    def __init__(self, selected: str = "", state: str = "ready") -> None:
        self.state = state
        self.selected = selected
        self.inserts: list[tuple[list[dict], str | None]] = []

    def open(self) -> None:
        pass

    def insert(self, cells: list[dict], after: str | None, ok: Any, fail: Any) -> None:
        if self.state != "ready":
            fail(ABSENT)
            return
        self.inserts.append((cells, after))
        ids = [f"new-{len(self.inserts)}-{i}" for i in range(len(cells))]
        ok({"inserted": ids, "saved": True, "path": "notebook.ipynb"})

    def selection(self, ok: Any, fail: Any) -> None:
        ok({"text": self.selected, "cell_id": "c1"}) if self.selected else fail("none selected")

    def last_image(self, ok: Any, fail: Any) -> None:
        fail("the notebook has no image output")


@pytest.fixture
def extension_enabled() -> bool:
    return True


@pytest.fixture
def jp_server_config(extension_enabled: bool, real_engine: Engine) -> Any:
    config = server_config(real_engine)
    if not extension_enabled:
        config.ServerApp.jpserver_extensions = {"jupyter_xcomposer": False}
    return config


@pytest.fixture
def server_client(api: Api) -> ServerClient:
    return ServerClient(api.serverapp.connection_url, api.token)


def finish(api: Api, assistant: Assistant) -> None:
    """Let the widget's job run to its end while the test server's loop serves it."""
    api.run(asyncio.to_thread(assistant.wait, 900))


@pytest.mark.slow
def test_draft_click_runs_compose_shows_progress_and_inserts_cells_with_attachments(
    api: Api, server_client: ServerClient
) -> None:
    notebook = NotebookStandIn()
    assistant = Assistant(
        INSTRUCTION,
        library="images",
        n_images=SMALL["n_images"],
        sections=SMALL["sections"],
        words=SMALL["words"],
        client=server_client,
        frontend=notebook,
    )
    assert assistant.insert_button.disabled
    assistant.draft_button.click()
    assert assistant.draft_button.disabled and not assistant.cancel_button.disabled
    finish(api, assistant)
    assert assistant.error is None, assistant.error
    stages = [e["stage"] for e in assistant.events]
    assert {"outline", "write", "select", "done"} <= set(stages)
    assert assistant.progress.value == 100 and assistant.progress.description == "done"
    assert not assistant.draft_button.disabled and not assistant.insert_button.disabled
    # The preview shows the article and its image (from the attachment, as a data URI).
    article = assistant.result["article"]
    assert article["title"].split()[0] in assistant.preview.value
    assert 'src="data:image/' in assistant.preview.value
    # Insert: Markdown cells, the figure as an attachment referenced from the source.
    assistant.insert_button.click()
    ((cells, after),) = notebook.inserts
    assert after is None  # the first insert goes after the assistant's own cell
    assert all(c["cell_type"] == "markdown" for c in cells)
    attached = [c for c in cells if c.get("attachments")]
    assert len(attached) == len(article["figures"]) == 1
    name = next(iter(attached[0]["attachments"]))
    assert f"(attachment:{name})" in attached[0]["source"]
    assert assistant.status.value == f"inserted {len(cells)} cell(s) into notebook.ipynb and saved"
    # One result is inserted once (issue 14: Insert twice added the article twice).
    assert assistant.insert_button.disabled
    assistant.insert_button.click()
    assert len(notebook.inserts) == 1


@pytest.mark.slow
def test_illustrate_takes_the_selected_cell_and_shorten_edits_one_paragraph(
    api: Api, server_client: ServerClient
) -> None:
    text = "The cat sleeps by the window.\n\nCoffee steams in a white cup on the table."
    assistant = Assistant(
        library="images", n_images=1, client=server_client, frontend=NotebookStandIn(text)
    )
    assistant.illustrate_button.click()
    assert assistant.text.value == text  # taken from the notebook's selected cell
    finish(api, assistant)
    assert assistant.error is None, assistant.error
    paragraphs = [p["text"] for p in assistant.result["article"]["paragraphs"]]
    assert paragraphs == text.split("\n\n")
    assert len(assistant.result["article"]["figures"]) == 1
    # Shorten the first paragraph: one model call, the other paragraph stays as it was.
    assistant.paragraph.value = 1
    assistant.shorten_button.click()
    finish(api, assistant)
    assert assistant.error is None, assistant.error
    new = [p["text"] for p in assistant.result["article"]["paragraphs"]]
    assert new[0] == paragraphs[0] and new[1].strip()


def test_describe_without_vision_shows_the_fix_and_keeps_working(
    api: Api, server_client: ServerClient, jupyter_root: Path
) -> None:
    png = (jupyter_root / "images" / "cat.png").read_bytes()
    ImageCapture.remember({"image/png": base64.b64encode(png).decode("ascii")})
    assistant = Assistant(client=server_client, frontend=NotebookStandIn())
    assistant.describe_button.click()
    finish(api, assistant)
    assert "no vision model is configured" in assistant.error
    assert "no vision model is configured" in assistant.notice.value
    assert not assistant.describe_button.disabled
    # Edits need an article first: said, not crashed.
    assistant.rewrite_button.click()
    assert "draft or illustrate something first" in assistant.error


@pytest.mark.parametrize("extension_enabled", [False])
def test_without_the_server_extension_the_kernel_runs_its_own_engine_with_a_notice(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XCOMPOSER_SERVER_URL", api.serverapp.connection_url)
    monkeypatch.setenv("XCOMPOSER_SERVER_TOKEN", api.token)
    client = api.run(asyncio.to_thread(connect))
    assert isinstance(client, LocalClient)
    assert "server extension is not enabled" in client.notice
    assistant = Assistant(client=client, frontend=NotebookStandIn())
    assert "runs inside this kernel" in assistant.notice.value


def test_connect_uses_the_extension_when_it_is_enabled(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XCOMPOSER_SERVER_URL", api.serverapp.connection_url)
    monkeypatch.setenv("XCOMPOSER_SERVER_TOKEN", api.token)
    client = api.run(asyncio.to_thread(connect))
    assert isinstance(client, ServerClient) and client.notice == ""


def test_cancel_button_stops_an_in_kernel_job(tmp_path: Path, jupyter_root: Path) -> None:
    backend = SlowScriptedBackend(delay=0.3)
    client = LocalClient(engine=scripted_engine(tmp_path, backend), base=jupyter_root)
    assistant = Assistant(
        "Write about cats",
        library="images",
        sections=8,
        words=20,
        client=client,
        frontend=NotebookStandIn(),
    )
    assistant.draft_button.click()
    deadline = time.monotonic() + 120
    while not any(e["stage"] == "write" for e in assistant.events):
        assert time.monotonic() < deadline and assistant.error is None, assistant.error
        time.sleep(0.05)
    assistant.cancel_button.click()
    assistant.wait(60)
    assert assistant.progress.description == "cancelled"
    assert assistant.result is None and assistant.insert_button.disabled
    assert not any(e["stage"] == "done" for e in assistant.events)


def test_model_html_is_escaped_in_the_preview(tmp_path: Path, jupyter_root: Path) -> None:
    def hostile(request: Any) -> str:
        if request.choices is not None or request.json_schema is not None:
            return default_answer(request)
        return '<img src=x onerror="alert(1)"> <script>alert(2)</script> Cats.'

    backend = SlowScriptedBackend(delay=0.0, answer=hostile)
    client = LocalClient(engine=scripted_engine(tmp_path, backend), base=jupyter_root)
    notebook = NotebookStandIn(state="absent")
    assistant = Assistant(
        "Write about cats",
        library="images",
        sections=1,
        words=20,
        client=client,
        frontend=notebook,
    )
    assistant.draft_button.click()
    assistant.wait(120)
    assert assistant.error is None, assistant.error
    assert "<script" not in assistant.preview.value and "<img src=x" not in assistant.preview.value
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in assistant.preview.value
    # No JupyterLab extension: insert says so instead of failing silently.
    assistant.insert_button.click()
    assert assistant.error == ABSENT and notebook.inserts == []
