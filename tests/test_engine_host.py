"""The engine's host for long-lived front ends: nothing is created before a job needs it,
a broken configuration fails every use until fixed, and what it shows hides what it must."""

from __future__ import annotations

import pytest
from xcomposer import ConfigError, EngineConfig, EngineHost


class Engine:
    """What a host asks of its engine, with no model."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.closed = False
        self.stats = type("Stats", (), {"model_calls": 0, "cache_hits": 0})()

    def concurrency(self) -> int:
        return 3

    def models(self) -> list:
        health = type("Health", (), {"ok": True, "detail": "/srv/root/models/m.gguf is there"})
        return [("main", ["write"], health)]

    def close(self) -> None:
        self.closed = True


def test_nothing_is_created_before_a_job_needs_the_engine():
    made: list[Engine] = []
    host = EngineHost(EngineConfig, lambda cfg: made.append(Engine(cfg)) or made[-1])
    assert host.started_queue is None and not made
    job = host.submit(lambda engine, progress: engine.concurrency(), name="probe")
    assert job.wait(timeout=30) and job.result == 3
    assert len(made) == 1 and host.started_queue is not None
    assert host.started_queue.workers == 3, "the backends' concurrency"
    host.close()
    assert not made[0].closed, "an engine given by a factory is closed by its owner"


def test_a_broken_configuration_fails_every_use_until_fixed():
    calls: list[int] = []

    def broken() -> EngineConfig:
        calls.append(1)
        raise ConfigError("xcomposer.toml: n_ctx must be a whole number", "fix it")

    host = EngineHost(broken)
    for _ in range(2):
        with pytest.raises(ConfigError, match="n_ctx"):
            host.submit(lambda engine, progress: None, name="x")
    assert len(calls) == 1, "read once, raised again"
    assert host.status() == {
        "ok": False,
        "error": "xcomposer.toml: n_ctx must be a whole number; fix it",
        "loaded": False,
        "queue": 0,
    }


def test_status_shows_what_the_front_end_allows():
    class Hiding(EngineHost):
        def shown(self, text: str) -> str:
            return text.replace("/srv/root/", "")

    host = Hiding(lambda: EngineConfig(library={"roots": ["/srv/root/images"]}), Engine)
    status = host.status()
    assert status["model_detail"] == "models/m.gguf is there"
    assert status["library"] == ["images"]
    assert status["engine_started"] is True and status["workers"] == 3 and status["queue"] == 0
    host.close()


def test_a_progress_event_reads_back_as_the_report_every_front_end_prints():
    from xcomposer import Progress

    report = Progress("write", 2, 4, 12.4, "section 2")
    again = Progress.from_dict(report.to_dict())
    assert again == report
    assert again.summary() == "write 2/4 · 12 tok/s · section 2"
    assert Progress.from_dict({"stage": "place"}).summary() == "place 0/0"
