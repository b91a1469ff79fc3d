"""Shared pieces of the OpenAI-compatible backend's tests: a scripted server and a backend on it.

conftest.py loads this module as a plugin, so ``server`` and ``quick_backoff`` are fixtures
everywhere; a module that wants fast retries says ``pytestmark =
pytest.mark.usefixtures("quick_backoff")``.  ``backend_for`` is imported as a function.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from misbehaving_server import MODEL, MisbehavingServer
from xcomposer.backends.http_client import HttpClient
from xcomposer.backends.openai import OpenAIBackend
from xcomposer.config import BackendConfig


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait milliseconds, not seconds (Retry-After is still honoured)."""
    monkeypatch.setattr(HttpClient, "backoff_base", 0.01)


@pytest.fixture
def server() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as srv:
        yield srv


def backend_for(server: MisbehavingServer, **options: Any) -> OpenAIBackend:
    """The OpenAI-compatible backend talking to ``server`` (``options`` as in BackendConfig)."""
    cfg = BackendConfig(backend="openai", base_url=server.base_url, model=MODEL, **options)
    return OpenAIBackend(cfg)
