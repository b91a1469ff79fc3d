"""What each kind of server says about itself, and what the backend does with it.

The scripted server answers in each server's documented shapes: llama.cpp's
``/props`` (the real one is tested in test_llama_server.py), Ollama's
``/api/show`` and ``/api/tags`` (no Ollama binary can be installed here, so these
are the shapes from Ollama's API documentation, not a real Ollama), vLLM's and
LMDeploy's ``/v1/models``.  Checked: vision, parallel slots, the structured-output
form, the thinking switch, that all of it is asked once, and what
``xcomposer models`` prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import skimage
from misbehaving_server import MODEL, Reply, chat, error, models
from openai_fixtures import backend_for
from xcomposer.backends.base import GenerateRequest, ImageRef, Message
from xcomposer.errors import BackendError
from xcomposer.images import file_sha256

pytestmark = pytest.mark.usefixtures("quick_backoff")  # retries wait milliseconds

CAT = Path(skimage.__file__).parent / "data" / "chelsea.png"


def llama_props(vision: bool, slots: int = 4) -> Reply:
    """The fields of llama-server's GET /props this tool reads, beside a few it does not."""
    return Reply(
        body={
            "default_generation_settings": {"n_ctx": 8192, "params": {"temperature": 0.8}},
            "total_slots": slots,
            "model_path": "/models/model.gguf",
            "modalities": {"vision": vision, "audio": False},
            "chat_template": "{{ messages }}",
            "build_info": "b0000-test",
        }
    )


def ollama_show(*capabilities: str) -> Reply:
    """Ollama's documented POST /api/show answer (docs/api.md, "Show Model Information")."""
    return Reply(
        body={
            "modelfile": "FROM llava",
            "parameters": "num_keep 24",
            "template": "{{ .Prompt }}",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama", "clip"],
                "parameter_size": "7B",
                "quantization_level": "Q4_0",
            },
            "model_info": {"general.architecture": "llama"},
            "capabilities": list(capabilities),
            "modified_at": "2025-03-31T16:07:27.293556892-07:00",
        }
    )


def ollama_tags(*names: str) -> Reply:
    """Ollama's documented GET /api/tags answer ("List Local Models")."""
    rows = [
        {
            "name": n,
            "model": n,
            "modified_at": "2025-05-04T17:37:44.706015396-07:00",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B"},
        }
        for n in names
    ]
    return Reply(body={"models": rows})


def listing(owner: str) -> Reply:
    return Reply(
        body={
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "owned_by": owner, "max_model_len": 4096}],
        }
    )


def pick(*content, **fields) -> GenerateRequest:
    return GenerateRequest(messages=(Message("user", content),), **fields)


def test_llama_cpp_server_props_give_vision_slots_and_its_forms(server, caplog):
    server.about["/props"] = llama_props(vision=False, slots=4)
    backend = backend_for(server)
    assert not backend.has_vision and backend.concurrency == 4
    assert "does not take images" in caplog.text and "/props" in caplog.text
    server.script(chat("b"), chat('{"n": 2}'))
    assert backend.generate(pick("a or b?", choices=("a", "b"))).text == "b"
    choice = server.requests[0].body
    assert choice["grammar"] == 'root ::= "a" | "b"'  # llama.cpp's exact form, no trial
    assert choice["chat_template_kwargs"] == {"enable_thinking": False}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    backend.generate(pick("how many?", json_schema=schema))
    assert server.requests[1].body["response_format"]["type"] == "json_schema"
    assert [r.path for r in server.discovery] == ["/props"]  # asked once, for everything


def test_a_server_without_vision_is_never_sent_an_image(server):
    server.about["/props"] = llama_props(vision=False)
    request = pick(ImageRef(CAT, file_sha256(CAT)), "What is it?", max_tokens=8)
    with pytest.raises(BackendError, match="does not take images") as info:
        backend_for(server).generate(request)
    assert "/props modalities.vision = false" in str(info.value)
    assert server.requests == []


def test_the_config_overrides_what_the_server_says(server):
    server.about["/props"] = llama_props(vision=True, slots=8)
    backend = backend_for(server, vision=False, concurrency=2)
    assert not backend.has_vision and backend.concurrency == 2


def test_ollama_capabilities_come_from_api_show(server):
    server.about["/api/show"] = ollama_show("completion", "vision")
    backend = backend_for(server)
    assert backend.has_vision
    caps = backend.capabilities()
    assert caps.kind == "Ollama" and "capabilities: completion, vision" in caps.vision_evidence
    assert server.discovery[1].body == {"model": MODEL}
    assert server.requests == []  # no probe: Ollama said


def test_an_ollama_model_without_vision_is_text_only(server):
    server.about["/api/show"] = ollama_show("completion", "tools")
    assert not backend_for(server).has_vision


def test_an_ollama_model_not_pulled_is_named_with_the_fix(server):
    server.about["/api/show"] = error(404, f"model '{MODEL}' not found")
    server.about["/api/tags"] = ollama_tags("llama3.2:latest", "llava:7b")
    caps = backend_for(server, vision=True).capabilities()
    assert caps.kind == "Ollama"
    assert f"ollama pull {MODEL}" in caps.kind_evidence and "llava:7b" in caps.kind_evidence


@pytest.mark.parametrize(
    "owner, kind, form",
    [
        ("vllm", "vLLM", "json_schema"),
        ("lmdeploy", "LMDeploy", "json_schema"),
        ("me", "llama-cpp-python server", "json_object"),
    ],
)
def test_model_listings_name_the_server_and_its_form(server, owner, kind, form):
    server.about["/v1/models"] = listing(owner)
    backend = backend_for(server, vision=False)
    server.script(chat('{"answer": "yes"}'))
    assert backend.generate(pick("yes?", choices=("yes", "no"))).text == "yes"
    assert backend.capabilities().kind == kind
    assert server.requests[0].body["response_format"]["type"] == form
    assert len(server.requests) == 1
    thinking = "chat_template_kwargs" in server.requests[0].body
    assert thinking == (kind == "vLLM")


def test_an_unknown_server_is_probed_once_with_a_tiny_image(server, caplog):
    server.script(error(500, "Unsupported content part type: image_url"))
    backend = backend_for(server)
    assert not backend.has_vision and not backend.has_vision
    assert len(server.requests) == 1  # the probe, once
    assert "probe" in backend.capabilities().vision_evidence
    assert sum("does not take images" in r.getMessage() for r in caplog.records) == 1


def test_an_unknown_servers_form_is_found_once_and_kept_for_every_backend(server):
    server.script(error(400, "response_format json_schema unsupported"), chat('{"answer": "b"}'))
    first = backend_for(server, vision=False)
    assert first.generate(pick("a or b?", choices=("a", "b"))).text == "b"
    server.script(chat('{"answer": "a"}'))
    again = backend_for(server, vision=False)  # a new backend, same server and model
    assert again.generate(pick("a or b?", choices=("a", "b"))).text == "a"
    forms = [r.body["response_format"]["type"] for r in server.requests]
    assert forms == ["json_schema", "json_object", "json_object"]


def test_xcomposer_models_prints_what_was_found_and_how(server, tmp_path):
    server.about["/props"] = llama_props(vision=False, slots=4)
    command = [sys.executable, "-m", "xcomposer", "models", "--backend", "openai"]
    command += ["--base-url", server.base_url, "--model", MODEL]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[ok, text only]" in out
    assert "server: llama.cpp server (GET /props answered)" in out
    assert "vision: no (/props modalities.vision = false)" in out
    assert "parallel slots: 4 (/props total_slots)" in out
    assert "requests in flight: 4 (/props total_slots)" in out
    assert "structured output: choice: grammar, json: json_schema" in out


def test_no_vision_flag_keeps_images_from_the_server(server, tmp_path):
    command = [sys.executable, "-m", "xcomposer", "models", "--backend", "openai", "--no-vision"]
    command += ["--base-url", server.base_url, "--model", MODEL]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[ok, text only]" in result.stdout and "config vision = false" in result.stdout
    assert server.requests == []  # nothing probed


def test_models_listing_reply_is_still_the_health_check(server):
    server.about["/v1/models"] = models("another-model")
    health = backend_for(server).health()
    assert not health.ok and "another-model" in health.detail
