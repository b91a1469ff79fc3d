"""The llama.cpp backend, run for real on the embedded default model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from xcomposer import BackendConfig, ModelError, TooLargeError
from xcomposer.backends.base import GenerateRequest, Message
from xcomposer.backends.llamacpp import LlamaCppBackend, default_threads
from xcomposer.backends.model_files import embedded_model_path


@pytest.fixture(scope="module")
def backend() -> LlamaCppBackend:
    b = LlamaCppBackend(BackendConfig())
    yield b
    b.close()


def chat(text: str, **kw) -> GenerateRequest:
    return GenerateRequest(
        messages=(Message("system", ("You are helpful.",)), Message("user", (text,))), **kw
    )


def test_embedded_model_is_found_without_importing_its_package() -> None:
    import sys

    path = embedded_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm" not in sys.modules


def test_generates_text(backend: LlamaCppBackend) -> None:
    answer = backend.generate(chat("Name one colour.", max_tokens=12, seed=1))
    assert answer.text.strip()
    assert 0 < answer.completion_tokens <= 12
    # the speed is reported and consistent with what was measured (no bound on the machine)
    assert answer.seconds > 0
    assert answer.tokens_per_s == pytest.approx(answer.completion_tokens / answer.seconds)


@pytest.mark.parametrize("load, share", [(0.0, 1.0), (0.6, 1.0), (100.0, 0.0)])
def test_the_default_threads_are_the_free_cores(monkeypatch, load, share) -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    expected = cores if share else 1  # a saturated machine: one thread, never zero
    assert default_threads() == expected


def test_every_free_core_runs_by_default(monkeypatch) -> None:
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # a quiet machine
    quiet = LlamaCppBackend(BackendConfig())
    try:
        llm = quiet._load()
        cores = len(os.sched_getaffinity(0))
        # llama-cpp-python's own default is half the cores: one thread of two here.
        assert llm.context_params.n_threads == cores
        assert llm.context_params.n_threads_batch == cores
    finally:
        quiet.close()


def test_n_threads_chooses_the_threads() -> None:
    one = LlamaCppBackend(BackendConfig(n_threads=1))
    try:
        assert one._load().context_params.n_threads == 1
    finally:
        one.close()


def test_choices_are_enforced_by_grammar(backend: LlamaCppBackend) -> None:
    choices = ("B", "D", "F")
    answer = backend.generate(chat("Pick the letter A.", choices=choices, max_tokens=4))
    assert answer.text in choices


def test_json_schema_is_enforced(backend: LlamaCppBackend) -> None:
    schema = {
        "type": "array",
        "items": {"type": "string", "maxLength": 30},
        "minItems": 3,
        "maxItems": 3,
    }
    answer = backend.generate(chat("List three fruits.", json_schema=schema, max_tokens=60))
    items = json.loads(answer.text)
    assert isinstance(items, list) and len(items) == 3 and all(isinstance(i, str) for i in items)


def test_shared_prefix_is_not_evaluated_twice(backend: LlamaCppBackend) -> None:
    article = "Lighthouses guide ships along dangerous coasts. " * 20
    first = backend.generate(chat(article + "\nQuestion one?", max_tokens=4))
    second = backend.generate(chat(article + "\nQuestion two?", max_tokens=4))
    assert first.prompt_tokens > 150
    assert second.evaluated_prompt_tokens < second.prompt_tokens / 2


def test_streaming_delivers_the_same_text(backend: LlamaCppBackend) -> None:
    pieces: list[str] = []
    answer = backend.generate(chat("Say hello.", max_tokens=8, seed=3), on_text=pieces.append)
    assert pieces and "".join(pieces) == answer.text


def test_same_seed_same_answer(backend: LlamaCppBackend) -> None:
    req = chat("Write one sentence about the sea.", max_tokens=20, temperature=0.7, seed=42)
    assert backend.generate(req).text == backend.generate(req).text


def test_fingerprint_does_not_load_the_model() -> None:
    b = LlamaCppBackend(BackendConfig())
    fp = b.fingerprint()
    assert fp["model"]["name"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert b._llm is None
    assert b.health().ok and not b.health().vision


def test_missing_model_file(tmp_path: Path) -> None:
    b = LlamaCppBackend(BackendConfig(model=str(tmp_path / "nope.gguf")))
    with pytest.raises(ModelError, match="nope.gguf not found"):
        b.fingerprint()


def test_corrupt_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    b = LlamaCppBackend(BackendConfig(model=str(bad)))
    with pytest.raises(ModelError, match="not a GGUF file"):
        b.generate(chat("hi", max_tokens=2))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(embedded_model_path().read_bytes()[: 1 << 20])
    b = LlamaCppBackend(BackendConfig(model=str(truncated)))
    with pytest.raises(ModelError, match="could not be loaded"):
        b.generate(chat("hi", max_tokens=2))


def test_images_without_projector_are_refused(
    backend: LlamaCppBackend, captioned_images: Path
) -> None:
    from xcomposer.describe import image_ref

    req = GenerateRequest(
        messages=(Message("user", (image_ref(captioned_images / "cat.png"), "What is this?")),)
    )
    with pytest.raises(ModelError, match="no vision projector"):
        backend.generate(req)


def test_a_prompt_longer_than_the_context_is_the_users_error() -> None:
    small = LlamaCppBackend(BackendConfig(n_ctx=256))
    try:
        with pytest.raises(TooLargeError, match=r"context window \(256 tokens\).*n_ctx"):
            small.generate(chat("lighthouse " * 400, max_tokens=8))
    finally:
        small.close()
