"""The engine's reproducible tasks: named by their inputs, answered from a committed store,
run when missing, refused (with the fill command) when frozen; and the remembered engine
facts that let a fully cached run skip importing the engine."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from xcomposer import (
    FolderFingerprints,
    InputError,
    ResultStore,
    Workshop,
    WorkshopSettings,
    facts_signature,
    library_fingerprint,
    recall_facts,
    remember_facts,
)


class Live:
    """The live side of the engine facts, as ``xcomposer.Engines`` offers it, with no model:
    every engine takes two tasks at once; ``models`` is the model files' fingerprint."""

    def __init__(self, models: Any = "model-A") -> None:
        self.model_prints = models
        self.backend_names = {"big"}
        self.library_roots = ["/lib"]
        self.library_reads = {"docs_dir": None, "follow_symlinks_out": False}

    def get(self, backend: str | None = None) -> Live:
        return self

    def concurrency(self) -> int:
        return 2

    def identity(self, backend: str | None = None) -> dict[str, Any]:
        return {"backend": backend or "default", "recipe": "chat@1"}

    def models(self, backend: str | None = None) -> Any:
        return self.model_prints


def workshop(tmp_path: Path, live: Live, frozen: bool = False) -> Workshop:
    store = ResultStore(tmp_path / "cache")
    settings = WorkshopSettings(store, live, lambda: live, frozen, "make fill", "cache/blocks")
    return Workshop(settings)


def counting_task(shop: Workshop, text: str, calls: list[str], fail: bool = False) -> Any:
    def run(engine: Any, progress: Any) -> dict[str, str]:
        calls.append(text)
        if fail:
            raise InputError(f"cannot write {text!r}", "write something else")
        return {"text": text.upper()}

    return shop.task(
        {"kind": "compose", "text": text},
        where="page.md:3",
        kind="compose",
        subject="this compose block",
        backend=None,
        run=run,
    )


def test_a_task_runs_once_then_comes_from_the_committed_store(tmp_path):
    calls: list[str] = []
    shop = workshop(tmp_path, Live())
    tasks = [counting_task(shop, "lighthouses", calls), counting_task(shop, "harbours", calls)]
    first = shop.resolve(tasks)
    assert {o.state for o in first.values()} == {"composed"} and sorted(calls) == [
        "harbours",
        "lighthouses",
    ]
    assert (tmp_path / "cache/.gitignore").read_text().splitlines()[1:] == ["answers/", "index/"]

    again = workshop(tmp_path, Live())  # a later run: a new process over the same folder
    second = again.resolve([counting_task(again, "lighthouses", calls)])
    (outcome,) = second.values()
    assert (outcome.state, outcome.result) == ("cached", {"text": "LIGHTHOUSES"})
    assert len(calls) == 2, "no task ran again"


def test_the_engine_identity_is_part_of_a_tasks_name(tmp_path):
    shop = workshop(tmp_path, Live())
    plain = counting_task(shop, "x", [])
    other = shop.task(
        dict(plain.inputs, engine=None), where="", kind="", subject="", backend="big", run=plain.run
    )
    assert plain.inputs["engine"] == {"backend": "default", "recipe": "chat@1"}
    assert other.inputs["engine"]["backend"] == "big" and other.digest != plain.digest


def test_frozen_a_missing_task_names_the_fill_command_and_runs_nothing(tmp_path):
    calls: list[str] = []
    shop = workshop(tmp_path, Live(), frozen=True)
    (outcome,) = shop.resolve([counting_task(shop, "lighthouses", calls)]).values()
    assert outcome.state == "missing" and calls == []
    assert outcome.error == (
        "page.md:3: this compose block is not in the cache (frozen mode: no model is called); "
        "fill the cache where the model runs with `make fill` and commit cache/blocks/"
    )
    assert not (tmp_path / "cache/blocks").exists(), "nothing written"


def test_a_result_made_by_another_model_file_is_made_again(tmp_path):
    calls: list[str] = []
    shop = workshop(tmp_path, Live("model-A"))
    shop.resolve([counting_task(shop, "lighthouses", calls)])
    frozen = workshop(tmp_path, Live("model-B"), frozen=True)
    (outcome,) = frozen.resolve([counting_task(frozen, "lighthouses", calls)]).values()
    assert outcome.state == "missing" and "is cached for another model file" in outcome.error
    live = workshop(tmp_path, Live("model-B"))
    (outcome,) = live.resolve([counting_task(live, "lighthouses", calls)]).values()
    assert outcome.state == "composed" and calls == ["lighthouses", "lighthouses"]
    # Where no model is there to fingerprint (None), the stored result stands.
    absent = workshop(tmp_path, Live(None))
    (outcome,) = absent.resolve([counting_task(absent, "lighthouses", calls)]).values()
    assert outcome.state == "cached"


def test_a_failed_task_is_a_failed_outcome_and_nothing_is_stored(tmp_path):
    shop = workshop(tmp_path, Live())
    (outcome,) = shop.resolve([counting_task(shop, "x", [], fail=True)]).values()
    assert outcome.state == "failed"
    assert outcome.error == "page.md:3: cannot write 'x'; write something else"
    assert not (tmp_path / "cache/blocks").exists()


def test_prune_keeps_exactly_the_entries_this_run_used(tmp_path):
    shop = workshop(tmp_path, Live())
    shop.resolve([counting_task(shop, "kept", []), counting_task(shop, "dropped", [])])
    later = workshop(tmp_path, Live())
    later.resolve([counting_task(later, "kept", [])])
    removed = later.store.prune()
    assert len(removed) == 1
    assert later.resolve([counting_task(later, "kept", [])]).popitem()[1].state == "cached"


def test_in_the_background_the_same_task_runs_once(tmp_path):
    release = threading.Event()
    calls: list[str] = []
    shop = workshop(tmp_path, Live())

    def slow(engine: Any, progress: Any) -> str:
        release.wait(30)
        calls.append("ran")
        return "done"

    task = shop.task(
        {"text": "slow"},
        where="p.md:1",
        kind="compose",
        subject="this block",
        backend=None,
        run=slow,
    )
    assert shop.resolve([task], background=True)[task.digest].state == "pending"
    shop.resolve([task], background=True)  # a rebuild while it runs
    assert shop.pending() == 1
    release.set()
    runner = shop._background
    assert runner is not None
    for job in runner.jobs():
        job.wait(timeout=30)
    assert calls == ["ran"] and shop.pending() == 0
    assert shop.resolve([task])[task.digest].state == "cached"
    shop.shutdown()


# -- remembered engine facts --------------------------------------------------------------
def test_remembered_facts_hold_until_a_model_file_or_a_setting_changes(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights")
    state = tmp_path / "index/state.json"
    sig = facts_signature({"model": str(model)})
    remember_facts(state, sig, Live(), [model])
    facts = recall_facts(state, sig)
    assert facts is not None
    assert facts.identity("big") == Live().identity("big") and facts.models() == "model-A"
    assert facts.backend_names == {"big"} and facts.library_roots == ["/lib"]

    assert recall_facts(state, facts_signature({"model": "other.gguf"})) is None
    model.write_bytes(b"new weights")  # another size: the remembered fingerprints are stale
    assert recall_facts(state, sig) is None


def test_facts_of_a_hub_model_are_never_trusted(tmp_path):
    state = tmp_path / "state.json"
    sig = facts_signature({"model": "org/model"})
    remember_facts(state, sig, Live(), None)  # no local file to watch
    assert recall_facts(state, sig) is None


def test_the_signature_covers_the_named_config_files_bytes(tmp_path):
    toml = tmp_path / "xcomposer.toml"
    toml.write_text("[backend]\nn_ctx = 2048\n")
    before = facts_signature({}, [toml])
    toml.write_text("[backend]\nn_ctx = 4096\n")
    assert facts_signature({}, [toml]) != before


def test_folder_fingerprints_are_the_librarys_and_renew_after_forget(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "a.txt").write_text("A lighthouse")
    prints = FolderFingerprints()
    first = prints.folder(tmp_path)
    assert first == library_fingerprint([tmp_path])
    (tmp_path / "a.txt").write_text("A harbour at dusk")
    os.utime(tmp_path / "a.txt", ns=(1, 1))
    assert prints.folder(tmp_path) == first, "remembered until forget()"
    prints.forget()
    assert prints.folder(tmp_path) != first


def test_project_engines_remember_the_facts_and_renew_them_with_the_settings(tmp_path):
    from xcomposer import EngineConfig, ProjectEngines

    state = tmp_path / "index/state.json"
    reads: list[str] = []

    def config() -> EngineConfig:
        reads.append("read")
        return EngineConfig(cache_dir=str(tmp_path / "answers"))

    first = ProjectEngines()
    facts = first.facts("settings-1", config, state)
    identity = facts.identity()
    assert first.engines is facts and reads == ["read"]
    first.close()

    later = ProjectEngines()  # the next build, in a new process
    again = later.facts("settings-1", config, state)
    assert later.engines is None and reads == ["read"], "remembered: no config read, no engine"
    assert again.identity() == identity and again.library_roots == facts.library_roots
    renewed = later.facts("settings-2", config, state)
    assert later.engines is renewed and reads == ["read", "read"]
    assert later.live("settings-2", config) is renewed, "the same settings keep their engines"
    later.close()

    given = ProjectEngines()
    given.facts("settings-3", config, tmp_path / "given.json", backends={"main": object()})
    assert not (tmp_path / "given.json").exists(), "backends given in code are never remembered"
    given.close()
