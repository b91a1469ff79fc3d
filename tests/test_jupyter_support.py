"""Shared parts of the Jupyter tests: a real Jupyter server (pytest-jupyter), engines, a client.

pytest-jupyter's fixtures are imported into the Jupyter test modules only (not
registered as a global plugin: its autouse fixtures and hooks would then run
for every test of the suite).  Tests here are plain functions that drive the
server's event loop with ``api.run(...)``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - fixtures for these modules only
from scripted import ScriptedBackend, default_answer
from traitlets.config import Config
from xcomposer import Engine, EngineConfig

TOKEN_HEADER = "Authorization"


@pytest.fixture(scope="session")
def jupyter_root(tmp_path_factory: pytest.TempPathFactory, captioned_images: Path) -> Path:
    """The Jupyter root of every server in these tests: an ``images`` folder, a notebook folder."""
    root = tmp_path_factory.mktemp("jupyter-root")
    shutil.copytree(captioned_images, root / "images")
    (root / "notes").mkdir()
    (root / "notes" / "cat.png").write_bytes((captioned_images / "cat.png").read_bytes())
    return root


@pytest.fixture
def jp_root_dir(jupyter_root: Path) -> Path:  # overrides pytest-jupyter's per-test folder
    return jupyter_root


@pytest.fixture(scope="session")
def real_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The embedded default model (SmolLM2-135M on llama.cpp), one per test session."""
    engine = Engine(EngineConfig(cache_dir=str(tmp_path_factory.mktemp("jupyter-cache"))))
    yield engine
    engine.close()


class SlowScriptedBackend(ScriptedBackend):
    """Scripted answers that take ``delay`` seconds, counting calls running at once."""

    def __init__(self, delay: float = 0.2, answer: Any = None) -> None:
        super().__init__(answer or default_answer)
        self.delay = delay
        self.running = 0
        self.most_at_once = 0

    def generate(self, request: Any, on_text: Any = None) -> Any:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.delay)
            return super().generate(request, on_text)
        finally:
            self.running -= 1


def scripted_engine(tmp_path: Path, backend: ScriptedBackend) -> Engine:
    return Engine(EngineConfig(cache_dir=str(tmp_path / "cache")), backends={"main": backend})


def server_config(engine: Engine | None = None, **xcomposer: Any) -> Config:
    """jupyter_server config that enables the extension (with this engine, when given)."""
    app: dict[str, Any] = dict(xcomposer)
    if engine is not None:
        app["engine_factory"] = lambda _config: engine
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_xcomposer": True}},
            "XComposerApp": app,
        }
    )


class Api:
    """Synchronous calls to the test server (its event loop runs while a call waits)."""

    def __init__(self, loop: Any, fetch: Any, serverapp: Any) -> None:
        self.loop = loop
        self.fetch = fetch
        self.serverapp = serverapp

    @property
    def token(self) -> str:
        return self.serverapp.identity_provider.token

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def call(
        self,
        method: str,
        *parts: str,
        body: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        raw: bool = False,
    ) -> tuple[int, Any]:
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if body is None and method in ("POST", "PUT"):
            body = ""
        reply = self.run(
            self.fetch(
                *parts,
                method=method,
                body=body,
                params=params,
                headers=headers,
                raise_error=False,
                follow_redirects=False,
            )
        )
        if raw:
            return reply.code, reply
        text = reply.body.decode("utf-8") if reply.body else ""
        try:
            return reply.code, json.loads(text) if text else None
        except ValueError:
            return reply.code, text

    def get(self, *parts: str, **kw: Any) -> tuple[int, Any]:
        return self.call("GET", *parts, **kw)

    def post(self, *parts: str, **kw: Any) -> tuple[int, Any]:
        return self.call("POST", *parts, **kw)

    def start(self, op: str, body: Any, **params: Any) -> dict[str, Any]:
        code, job = self.post("xcomposer", op, body=body, params=params or None)
        assert code in (200, 202), job
        return job

    def follow(self, job: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
        """Poll a job to its end; the final snapshot with every event seen on the way."""
        events = list(job["events"])
        deadline = time.monotonic() + timeout
        while job["state"] not in ("done", "error", "cancelled"):
            assert time.monotonic() < deadline, f"job {job['id']} still {job['state']}"
            code, job = self.get(
                "xcomposer", "jobs", job["id"], params={"since": job["next"], "wait": 5}
            )
            assert code == 200, job
            events.extend(job["events"])
        job["events"] = events
        return job


@pytest.fixture
def api(jp_asyncio_loop: Any, jp_fetch: Any, jp_serverapp: Any) -> Api:
    return Api(jp_asyncio_loop, jp_fetch, jp_serverapp)
