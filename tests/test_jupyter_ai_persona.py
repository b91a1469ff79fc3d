"""The XComposer persona in Jupyter AI's chat, loaded by Jupyter AI's own persona manager.

A real Jupyter server runs the jupyter_xcomposer extension (the embedded default
model, SmolLM2-135M) and Jupyter AI's persona-manager extension.  For a chat
backed by a real ``.chat`` file, ``PersonaManager`` is built as the extension
builds it for every chat a person opens: it finds the persona through the
``jupyter_ai.personas`` entry point and instantiates it.  Messages are routed
through the manager (``to_persona``, as the chat's persona picker stamps them).
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("jupyter_ai_persona_manager", reason="needs jupyter-ai's persona manager")

from jupyter_ai_persona_manager import PersonaManager  # noqa: E402
from jupyter_xcomposer import persona as persona_module  # noqa: E402
from jupyter_xcomposer.persona import parse_chat_request  # noqa: E402
from jupyterlab_chat.models import Message  # noqa: E402
from jupyterlab_chat.websocket_model import WsChatModel  # noqa: E402
from PIL import Image  # noqa: E402
from test_jupyter_support import *  # noqa: E402, F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, server_config  # noqa: E402
from xcomposer import Engine, JobRunner  # noqa: E402

PERSONA = "jupyter-ai-personas::jupyter_xcomposer::XComposerPersona"
PERSON_TEXT = "My cat naps on the windowsill every morning.\n\nThen she watches me drink coffee."
DATA_IMAGE = re.compile(r"!\[[^\]\n]*\]\(data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)\)")


@pytest.fixture
def jp_server_config(real_engine: Engine) -> Any:
    config = server_config(real_engine)
    config.ServerApp.jpserver_extensions["jupyter_ai_persona_manager"] = True
    return config


class Chat:
    """A chat file with Jupyter AI's persona manager, driven on the server's event loop."""

    def __init__(self, api: Api, root: Path, name: str) -> None:
        self.api = api
        serverapp = api.serverapp
        (extension,) = serverapp.extension_manager.extension_apps["jupyter_ai_persona_manager"]
        self.model = WsChatModel(path=name, root_dir=root)
        self.model.load_from_file()
        self.seen: list[str] = []  # every body the persona's messages had, in order
        self.model.observe_messages(self._record)
        # As PersonaManagerExtension._init_persona_manager builds it for each chat.
        self.manager = PersonaManager(
            parent=extension,
            chat=self.model,
            root_dir=serverapp.contents_manager.root_dir,
            event_loop=extension.event_loop,
            base_url=serverapp.base_url,
            event_logger=serverapp.web_app.settings.get("event_logger"),
        )

    def _record(self, event: Any) -> None:
        message = getattr(event, "message", None)
        if message is not None and message.sender == PERSONA:
            self.seen.append(message.body)

    def replies(self) -> list[Message]:
        return [m for m in self.model.get_messages() if m.sender == PERSONA]

    def ask(self, text: str, timeout: float = 900) -> str:
        """Send ``text`` to the persona; its reply once it is no longer a progress line."""
        before = len(self.replies())
        message = Message(
            id=str(uuid.uuid4()),
            body=text,
            time=time.time(),
            sender="person",
            metadata={PersonaManager.TO_PERSONA_METADATA_KEY: PERSONA},
        )
        self.manager.on_chat_message(self.model.get_id(), message)

        async def reply() -> str:
            deadline = time.monotonic() + timeout
            while True:
                new = self.replies()[before:]
                if new and not new[-1].body.startswith("*XComposer: "):
                    return new[-1].body
                assert time.monotonic() < deadline, f"no reply yet: {new}"
                await asyncio.sleep(0.5)

        return self.api.run(reply())


@pytest.fixture
def chat(api: Api, jupyter_root: Path) -> Chat:
    return Chat(api, jupyter_root, f"persona-{uuid.uuid4().hex[:8]}.chat")


def images_in(reply: str) -> list[Image.Image]:
    found = []
    for mime, data in DATA_IMAGE.findall(reply):
        picture = Image.open(io.BytesIO(base64.b64decode(data)))
        assert mime == f"image/{picture.format.lower()}"
        found.append(picture)
    return found


def test_the_manager_loads_the_persona_from_its_entry_point(chat: Chat) -> None:
    persona = chat.manager.personas[PERSONA]
    assert persona.name == "XComposer"
    assert Path(persona.defaults.avatar_path).is_file()
    assert chat.model.get_users()[PERSONA].name == "XComposer"


def test_help_bad_options_and_empty_requests_get_one_line_answers(chat: Chat) -> None:
    assert "compose: <instruction>" in chat.ask("@XComposer help")
    reply = chat.ask("compose sections=0: Write about cats")
    assert reply.startswith("**XComposer:** sections must be a whole number from 1 to 12")
    assert "\n" not in reply
    reply = chat.ask("compose colour=red: Write about cats")
    assert "'colour=red' is not an option of compose" in reply and "Traceback" not in reply
    assert "the instruction is empty" in chat.ask("compose:")
    reply = chat.ask("illustrate library=../outside:\nSome text.")
    assert "'..'" in reply and str(chat.api.serverapp.root_dir) not in reply


def test_chat_requests_parse_into_the_rest_fields() -> None:
    request = parse_chat_request("@XComposer compose images=2 sections=3 library=images: Cats")
    assert request.op == "compose"
    assert request.body == {
        "n_images": 2,
        "sections": 3,
        "library": "images",
        "instruction": "Cats",
        "cells": True,
    }
    plain = parse_chat_request("Write a short article about lighthouses")
    assert plain.op == "compose" and plain.body["instruction"].startswith("Write a short")
    assert parse_chat_request("compose an article about owls").body["instruction"] == (
        "an article about owls"
    )
    illustrate = parse_chat_request(f"illustrate images=auto\n{PERSON_TEXT}")
    assert illustrate.op == "illustrate" and illustrate.body["text"] == PERSON_TEXT
    assert illustrate.body["n_images"] == "auto"
    assert parse_chat_request("").op == "help"


def test_a_job_that_ends_just_after_a_snapshot_is_reported_as_it_ended() -> None:
    """The reply is the job's end, never a stale "running" snapshot read as a failure."""
    runner = JobRunner(lambda: 1)
    gate = threading.Event()
    job = runner.submit(lambda _progress: gate.wait(30) and {"text": "ok"}, name="compose")
    stale = []

    def job_reply(job: Any, since: int = 0) -> dict[str, Any]:
        snapshot = job.to_dict(since)
        if not stale:  # the worker finishes right after this first snapshot
            stale.append(snapshot["state"])
            gate.set()
            job.wait(timeout=30)
        return snapshot

    persona = SimpleNamespace(_service=SimpleNamespace(job_reply=job_reply), _show=print)
    try:
        snapshot = asyncio.run(persona_module.XComposerPersona._follow(persona, job, "reply"))
    finally:
        runner.shutdown()
    assert stale == ["running"] and job.done
    assert snapshot["state"] == "done" and snapshot["result"] == {"text": "ok"}


@pytest.mark.slow
def test_compose_in_the_chat_streams_progress_and_replies_with_its_figures(
    chat: Chat, api: Api
) -> None:
    reply = chat.ask("compose images=1 sections=1 words=30 library=images: Write about cats")
    # Progress showed in the same message before the article replaced it.
    assert any(re.match(r"\*XComposer: (write|outline|place) \d+/\d+", s) for s in chat.seen)
    assert len(chat.replies()) == 1
    assert re.search(r"^## \S", reply, re.M), reply[:300]
    (picture,) = images_in(reply)
    assert min(picture.size) > 16
    assert re.search(r"Figures: `images/[^`]+` \(\d\.\d\d\)", reply)
    # It ran on the server extension's engine and queue: one model per server.
    code, status = api.get("xcomposer", "status")
    assert code == 200 and status["engine_started"] is True
    # The chat file holds the reply, pictures included (a shared chat keeps them).
    saved = (Path(chat.model.root_dir) / chat.model.path).read_text()
    assert "data:image/" in saved


@pytest.mark.slow
def test_illustrate_in_the_chat_keeps_the_persons_text(chat: Chat) -> None:
    reply = chat.ask(f"illustrate images=1 library=images:\n{PERSON_TEXT}")
    (picture,) = images_in(reply)
    assert min(picture.size) > 16
    body = reply.split("\n\n<sub>Figures:")[0]
    figure = re.compile(r"\n\n!\[[^\]\n]*\]\(data:[^)\s]+\)\n\n\*[^\n]*\*")
    assert figure.sub("", body) == PERSON_TEXT


@pytest.mark.slow
def test_the_chats_stop_button_cancels_the_job(chat: Chat) -> None:
    persona = chat.manager.personas[PERSONA]
    long = "compose images=0 sections=12 words=300 library=images: A long history of ships"
    message = Message(
        id=str(uuid.uuid4()),
        body=long,
        time=time.time(),
        sender="person",
        metadata={PersonaManager.TO_PERSONA_METADATA_KEY: PERSONA},
    )
    chat.manager.on_chat_message(chat.model.get_id(), message)

    async def stop_when_running() -> str:
        deadline = time.monotonic() + 300
        while not any(re.match(r"\*XComposer: \w+ \d+/\d+", s) for s in chat.seen):
            assert time.monotonic() < deadline, chat.seen
            await asyncio.sleep(0.2)
        assert persona.processing
        await persona.cancel_response()  # what jupyter-ai's stop button calls
        while (
            not (replies := chat.replies())
            or replies[-1].body.startswith("*XComposer: ")
            and (replies[-1].body != "*XComposer: cancelled*")
        ):
            assert time.monotonic() < deadline, chat.seen
            await asyncio.sleep(0.2)
        return replies[-1].body

    assert chat.api.run(stop_when_running()) == "*XComposer: cancelled*"


@pytest.mark.slow
def test_without_the_server_extension_it_runs_an_engine_of_its_own(
    tmp_path: Path, captioned_images: Path
) -> None:
    """A chat outside a server with jupyter_xcomposer: an engine from the root's xcomposer.toml."""
    root = tmp_path / "root"
    shutil.copytree(captioned_images, root / "images")
    (root / "xcomposer.toml").write_text(f'cache_dir = "{tmp_path / "cache"}"\n')
    loop = asyncio.new_event_loop()
    model = WsChatModel(path="solo.chat", root_dir=root)
    model.load_from_file()
    manager = PersonaManager(chat=model, root_dir=str(root), event_loop=loop)
    persona = manager.personas[PERSONA]
    message = Message(
        id="m1",
        body="compose images=1 sections=1 words=20 library=images: Write about coffee",
        time=time.time(),
        sender="person",
    )
    try:
        loop.run_until_complete(persona.on_message(message))
    finally:
        service = persona_module._OWN_SERVICES.pop(str(root), None)
        loop.close()
    assert service is not None and service.config.cache_dir == str(tmp_path / "cache")
    service.close()
    (reply,) = [m.body for m in model.get_messages() if m.sender == PERSONA]
    assert len(images_in(reply)) == 1 and "Figures: `images/" in reply
