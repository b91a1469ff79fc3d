"""The OpenAI-compatible backend against a scripted server on loopback.

The real-server tests are in test_llama_server.py; here are the error paths a real
model cannot be made to produce: slow answers, 5xx, 429, malformed JSON, hostile
text, a server that ignores the constraint, and the API key's safety.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import skimage
from misbehaving_server import (
    MODEL,
    Reply,
    chat,
    completion,
    embeddings,
    error,
    models,
    stream,
)
from openai_fixtures import backend_for
from PIL import Image
from xcomposer.backends.base import GenerateRequest, ImageRef, Message
from xcomposer.backends.openai import OpenAIBackend
from xcomposer.config import BackendConfig
from xcomposer.errors import BackendError, ConfigError
from xcomposer.images import file_sha256

pytestmark = pytest.mark.usefixtures("quick_backoff")  # retries wait milliseconds

SECRET = "sk-test-5ecret-never-logged-0123456789"
KEY_ENV = "XCOMPOSER_TEST_API_KEY"
IMAGES = Path(skimage.__file__).parent / "data"
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> & "quotes"'


def ask(text: str = "Say hi.", **fields) -> GenerateRequest:
    return GenerateRequest(messages=(Message("user", (text,)),), **fields)


def image_ref(name: str) -> ImageRef:
    path = IMAGES / name
    return ImageRef(path, file_sha256(path))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- requests as the server sees them -----------------------------------------


def test_chat_request_carries_messages_and_sampling_options(server):
    server.script(chat("Hello there.", prompt_tokens=11, completion_tokens=4))
    backend = backend_for(server)
    request = GenerateRequest(
        messages=(Message("system", ("Be brief.",)), Message("user", ("Say hi.",))),
        max_tokens=32,
        temperature=0.7,
        top_p=0.8,
        repeat_penalty=1.3,
        seed=42,
        stop=("\n\n",),
    )
    answer = backend.generate(request)

    assert answer.text == "Hello there."
    assert (answer.prompt_tokens, answer.completion_tokens) == (11, 4)
    (sent,) = server.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.body["model"] == MODEL
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi."},
    ]
    assert sent.body["max_tokens"] == 32
    assert sent.body["temperature"] == 0.7
    assert sent.body["top_p"] == 0.8
    assert sent.body["repeat_penalty"] == 1.3
    assert sent.body["seed"] == 42
    assert sent.body["stop"] == ["\n\n"]
    assert "authorization" not in sent.headers  # no api_key_env, no header


def test_an_answer_cut_at_max_tokens_is_marked_truncated(server):
    server.script(chat("The lighthouse stood on", finish="length"), chat("Done.", finish="stop"))
    backend = backend_for(server)
    assert backend.generate(ask(max_tokens=5)).truncated
    assert not backend.generate(ask(max_tokens=5)).truncated


def test_raw_prompt_goes_to_completions(server):
    server.script(completion(" Paris."))
    answer = backend_for(server).generate(GenerateRequest(prompt="The capital of France is"))
    assert answer.text == " Paris."
    assert server.requests[0].path == "/v1/completions"
    assert server.requests[0].body["prompt"] == "The capital of France is"


def test_raw_prompt_with_images_is_refused_before_sending(server):
    request = GenerateRequest(prompt="<image> what is this?", images=(image_ref("coffee.png"),))
    with pytest.raises(ConfigError, match="recipe"):
        backend_for(server).generate(request)
    assert server.requests == []


def test_a_rejected_extra_option_is_dropped_and_the_call_repeated(server):
    server.script(error(400, "Unrecognized request argument supplied: repeat_penalty"))
    server.script(chat("fine"), chat("again"))
    backend = backend_for(server)
    assert backend.generate(ask(repeat_penalty=1.3)).text == "fine"
    assert backend.generate(ask(repeat_penalty=1.3)).text == "again"
    sent = [r.body for r in server.requests]
    assert "repeat_penalty" in sent[0]
    assert "repeat_penalty" not in sent[1] and "repeat_penalty" not in sent[2]


# -- images --------------------------------------------------------------------


def decoded(part: dict) -> tuple[str, Image.Image]:
    url = part["image_url"]["url"]
    head, data = url.split(",", 1)
    assert head.startswith("data:") and head.endswith(";base64")
    return head[5:-7], Image.open(io.BytesIO(base64.b64decode(data)))


def test_images_arrive_as_data_uris_within_image_max_side(server):
    server.script(chat("A cup of coffee and a rocket."))
    png, jpeg = image_ref("coffee.png"), image_ref("rocket.jpg")
    request = GenerateRequest(
        messages=(Message("user", ("Compare", png, "with", jpeg, "briefly.")),),
    )
    backend_for(server, image_max_side=96).generate(request)

    parts = server.requests[0].body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert [p.get("text") for p in parts[::2]] == ["Compare", "with", "briefly."]
    (mime1, img1), (mime2, img2) = decoded(parts[1]), decoded(parts[3])
    assert mime1 == "image/png" and img1.format == "PNG"
    assert mime2 == "image/jpeg" and img2.format == "JPEG"
    for sent, original in ((img1, png.path), (img2, jpeg.path)):
        width, height = Image.open(original).size
        assert max(sent.size) == 96  # both originals are larger
        assert abs(sent.size[0] / sent.size[1] - width / height) < 0.05  # aspect kept


def test_small_images_are_not_upscaled(server):
    server.script(chat("ok"))
    backend_for(server, image_max_side=4096).generate(
        GenerateRequest(messages=(Message("user", (image_ref("coins.png"), "Count.")),))
    )
    _, sent = decoded(server.requests[0].body["messages"][0]["content"][0])
    assert sent.size == Image.open(IMAGES / "coins.png").size


def test_a_text_only_server_rejecting_images_gets_a_vision_hint(server):
    server.script(error(400, "This model does not support image input"))
    request = GenerateRequest(messages=(Message("user", (image_ref("coffee.png"), "What?")),))
    backend = backend_for(server)
    with pytest.raises(BackendError, match="does not accept images") as info:
        backend.generate(request)
    assert "does not support image input" in str(info.value)
    assert "--no-vision" in str(info.value)
    # Refused once: the pipeline now chooses by retrieval score and sends no image again.
    assert not backend.has_vision
    with pytest.raises(BackendError, match="does not take images"):
        backend.generate(request)
    assert len(server.requests) == 1


# -- retries, timeouts, errors -------------------------------------------------


def test_5xx_answers_are_retried_until_success(server):
    server.script(error(500, "boom"), error(503, "busy"), chat("third time lucky"))
    answer = backend_for(server, max_retries=2).generate(ask())
    assert answer.text == "third time lucky"
    assert len(server.requests) == 3


def test_5xx_beyond_max_retries_is_a_clear_error(server, caplog):
    server.script(*[error(502, "bad gateway upstream")] * 3)
    with pytest.raises(BackendError) as info, caplog.at_level(logging.WARNING):
        backend_for(server, max_retries=2).generate(ask())
    message = str(info.value)
    assert "502" in message and "bad gateway upstream" in message
    assert server.base_url in message
    assert "\n" not in message
    assert len(server.requests) == 3
    assert caplog.text.count("retry") == 2  # each retry is logged


def test_429_waits_for_retry_after_then_succeeds(server):
    server.script(error(429, "slow down", retry_after="1"), chat("thanks for waiting"))
    answer = backend_for(server).generate(ask())
    assert answer.text == "thanks for waiting"
    first, second = server.requests
    # The backoff alone would wait ~10 ms; the server asked for a second.
    assert second.arrived - first.arrived >= 0.9


def test_4xx_is_not_retried_and_quotes_the_server_in_one_line(server):
    long_message = "model 'x' not found.\n" + "detail " * 100
    server.script(error(404, long_message))
    with pytest.raises(BackendError) as info:
        backend_for(server).generate(ask())
    message = str(info.value)
    assert "404" in message and "model 'x' not found." in message
    assert "\n" not in message and len(message) < 600
    assert "base_url" in message  # the fix names what to check
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # llama-server (b6000 and later)
        (400, {"error": {"code": 400, "type": "exceed_context_size_error", "n_ctx": 4096,
                         "message": "request (4476 tokens) exceeds the available context size "
                                    "(4096 tokens), try increasing it"}}),
        # vLLM and OpenAI
        (400, {"object": "error", "type": "BadRequestError", "code": 400,
               "message": "This model's maximum context length is 2048 tokens. However, you "
                          "requested 3000 tokens (2900 in the messages, 100 in the completion)."}),
        (400, {"error": {"code": "context_length_exceeded", "message": "Too long."}}),
        # LMDeploy
        (400, {"error": "the input token length 5000 exceeds session_len 4096"}),
    ],
)  # fmt: skip
def test_a_servers_context_overflow_is_too_large_not_retried(server, status, body):
    from xcomposer import TooLargeError

    server.script(Reply(status=status, body=body))
    with pytest.raises(TooLargeError) as info:
        backend_for(server).generate(ask("a very long text " * 50))
    message = str(info.value)
    assert "longer than the model's context" in message and "\n" not in message
    assert "larger context" in message  # the fix
    assert len(server.requests) == 1


def test_a_context_overflow_message_never_shows_the_key(server, monkeypatch):
    from xcomposer import TooLargeError

    monkeypatch.setenv(KEY_ENV, SECRET)
    server.script(error(400, f"maximum context length is 2048 tokens (key {SECRET})"))
    with pytest.raises(TooLargeError) as info:
        backend_for(server, api_key_env=KEY_ENV).generate(ask())
    assert SECRET not in str(info.value) and "***" in str(info.value)


def test_an_ordinary_bad_request_is_still_a_backend_error(server):
    server.script(error(400, "unknown field 'frobnicate'"))
    with pytest.raises(BackendError):
        backend_for(server).generate(ask())


def test_slow_answer_hits_the_timeout_and_names_the_key(server):
    server.script(chat("too late", delay=3))
    with pytest.raises(BackendError) as info:
        backend_for(server, timeout=0.5).generate(ask())
    message = str(info.value)
    assert "0.5 s" in message and "timeout" in message
    assert len(server.requests) == 1  # a slow generation is not repeated


def test_the_timeout_bounds_the_whole_answer_not_each_read(server):
    # Each piece comes well within the timeout; all of them together do not.
    server.script(stream([f"piece {i} " for i in range(8)], event_delay=0.25))
    seen: list[str] = []
    with pytest.raises(BackendError, match="did not answer within 0.6 s"):
        backend_for(server, timeout=0.6).generate(ask(), on_text=seen.append)
    assert 0 < len(seen) < 8


def test_unreachable_server_says_how_to_fix_it():
    port = closed_port()
    cfg = BackendConfig(
        backend="openai", base_url=f"http://127.0.0.1:{port}/v1", model=MODEL, max_retries=1
    )
    with pytest.raises(BackendError) as info:
        OpenAIBackend(cfg).generate(ask())
    message = str(info.value)
    assert f"cannot reach http://127.0.0.1:{port}/v1" in message
    assert "start the server or fix" in message and "base_url" in message


def test_unknown_host_is_unreachable_not_a_traceback():
    cfg = BackendConfig(
        backend="openai", base_url="http://no-such-host.invalid/v1", model=MODEL, max_retries=0
    )
    with pytest.raises(BackendError, match="cannot reach http://no-such-host.invalid/v1"):
        OpenAIBackend(cfg).generate(ask())


def test_malformed_json_is_a_backend_error(server):
    server.script(Reply(body=b'{"choices": [{"message": '))
    with pytest.raises(BackendError, match="malformed JSON"):
        backend_for(server).generate(ask())


def test_a_body_without_choices_is_a_backend_error(server):
    server.script(Reply(body={"object": "chat.completion", "result": "hi"}))
    with pytest.raises(BackendError, match="without choices"):
        backend_for(server).generate(ask())


def test_html_and_script_in_the_answer_come_back_verbatim_as_text(server):
    server.script(chat(HOSTILE))
    answer = backend_for(server).generate(ask())
    assert type(answer.text) is str
    assert answer.text == HOSTILE  # not escaped, stripped or evaluated: the renderer sanitises


# -- streaming -----------------------------------------------------------------


def test_streamed_pieces_reach_on_text_in_order(server):
    pieces = ["Illustrated ", "writing ", "<b>works</b>."]
    server.script(stream(pieces, usage={"prompt_tokens": 9, "completion_tokens": 5}))
    seen: list[str] = []
    answer = backend_for(server).generate(ask(), on_text=seen.append)
    assert seen == pieces
    assert answer.text == "".join(pieces)
    assert (answer.prompt_tokens, answer.completion_tokens) == (9, 5)
    assert server.requests[0].body["stream"] is True


def test_a_server_that_ignores_stream_still_feeds_on_text(server):
    server.script(chat("all at once"))
    seen: list[str] = []
    answer = backend_for(server).generate(ask(), on_text=seen.append)
    assert seen == ["all at once"] and answer.text == "all at once"


# -- constrained answers -------------------------------------------------------


def test_choices_are_constrained_with_a_json_schema_and_unwrapped(server):
    server.script(chat('{"answer": "2"}'))
    answer = backend_for(server).generate(ask("Which image?", choices=("1", "2", "3")))
    assert answer.text == "2"
    fmt = server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["answer"]["enum"] == ["1", "2", "3"]


def test_choices_fall_back_to_the_forms_other_servers_take_and_remember_it(server):
    # llama-cpp-python rejects json_schema (422) and takes json_object + schema.
    server.script(
        error(422, "Input should be 'text' or 'json_object'"),
        chat('{"answer": "no"}'),
        chat('{"answer": "yes"}'),
    )
    backend = backend_for(server)
    assert backend.generate(ask("Is it?", choices=("yes", "no"))).text == "no"
    assert backend.generate(ask("Is it?", choices=("yes", "no"))).text == "yes"
    formats = [r.body["response_format"] for r in server.requests]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1]["schema"]["properties"]["answer"]["enum"] == ["yes", "no"]


def test_vllm_guided_choice_is_tried_alone(server):
    server.script(error(400, "unsupported response_format"), error(400, "schema not supported"))
    server.script(chat("B"))
    answer = backend_for(server).generate(ask("Pick.", choices=("A", "B")))
    assert answer.text == "B"
    third = server.requests[2].body
    assert third["guided_choice"] == ["A", "B"]
    assert "response_format" not in third  # vLLM refuses both kinds at once


def test_a_server_that_ignores_the_constraint_is_an_error_not_a_default(server):
    server.default = lambda request: chat("Paris is lovely.")
    with pytest.raises(BackendError) as info:
        backend_for(server).generate(ask("Pick.", choices=("A", "B")))
    message = str(info.value)
    assert server.base_url in message
    assert "'Paris is lovely.'" in message and "not one of 'A', 'B'" in message
    assert "structured output" in message  # the fix
    assert len(server.requests) == 4  # every known form was tried, none honoured


def test_json_schema_answers_are_validated(server):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "spots": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["title", "spots"],
    }
    server.script(chat('{"title": "Rockets", "spots": [1, 3]}'))
    backend = backend_for(server)
    answer = backend.generate(ask("Plan.", json_schema=schema))
    assert json.loads(answer.text) == {"title": "Rockets", "spots": [1, 3]}
    sent = server.requests[0].body["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}

    server.script(chat('{"title": "Rockets", "spots": ["one"]}'))
    with pytest.raises(BackendError, match=r"\$\.spots\[0\]: 'one' is not of type 'integer'"):
        backend.generate(ask("Plan.", json_schema=schema))


@pytest.mark.parametrize("depth", [40, 5_000])  # (far deeper: over the answer size cap)
def test_deeply_nested_json_is_one_clear_error_never_a_recursion_error(server, depth):
    nested = "[" * depth + "]" * depth
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    server.default = lambda _request: chat(nested)  # the answer, in every structured form
    with pytest.raises(BackendError) as info:
        backend_for(server).generate(ask("Plan.", json_schema=schema))
    assert "nests deeper than 32 levels" in str(info.value) and "\n" not in str(info.value)
    # ... and as the body itself (a hostile or broken server)
    server.default = lambda _request: Reply(body=nested.encode())
    with pytest.raises(BackendError, match="malformed JSON"):
        backend_for(server).generate(ask())


def test_json_cut_short_by_max_tokens_is_reported_as_such_not_retried_in_other_forms(server):
    server.script(chat('{"title": "Rockets and the people who', finish="length"))
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    with pytest.raises(BackendError) as info:
        backend_for(server).generate(ask("Plan.", json_schema=schema, max_tokens=12))
    message = str(info.value)
    assert "stopped at max_tokens (12)" in message and "Rockets and the people" in message
    assert len(server.requests) == 1  # the form was honoured; the budget ran out


# -- concurrency ---------------------------------------------------------------


def test_no_more_than_concurrency_requests_are_in_flight(server):
    server.default = lambda request: chat("done", delay=0.5)
    backend = backend_for(server, concurrency=3)
    assert backend.concurrency == 3
    errors: list[BaseException] = []

    def call() -> None:
        try:
            backend.generate(ask())
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(server.requests) == 12
    assert server.max_in_flight == 3  # bounded, and the bound was reached


# -- embeddings and health -------------------------------------------------------


def test_embeddings_come_back_in_input_order_and_unit_length(server):
    server.script(embeddings([[3.0, 4.0], [0.0, 2.0]], order=[1, 0]))
    vectors = backend_for(server).embed(["first", "second"])
    assert server.requests[0].path == "/v1/embeddings"
    assert server.requests[0].body["input"] == ["first", "second"]
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)


def test_health_reports_whether_the_model_is_listed(server):
    server.about["/v1/models"] = models(MODEL, "other")
    backend = backend_for(server)
    up = backend.health()
    assert up.ok and up.backend == "openai" and up.model == MODEL
    server.about["/v1/models"] = models("other")
    missing = backend.health()
    assert not missing.ok
    assert "does not list model 'test-model'" in missing.detail and "other" in missing.detail


def test_health_of_an_unreachable_server_is_not_ok():
    cfg = BackendConfig(
        backend="openai", base_url=f"http://127.0.0.1:{closed_port()}/v1", model=MODEL
    )
    health = OpenAIBackend(cfg).health()
    assert not health.ok and "cannot reach" in health.detail


# -- the API key -----------------------------------------------------------------


def test_the_key_is_read_at_request_time_and_sent_as_a_bearer_token(server, monkeypatch):
    backend = backend_for(server, api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, SECRET)
    backend.generate(ask())
    monkeypatch.setenv(KEY_ENV, "sk-rotated")
    backend.generate(ask())
    assert [r.headers["authorization"] for r in server.requests] == [
        f"Bearer {SECRET}",
        "Bearer sk-rotated",
    ]
    assert SECRET not in repr(vars(backend))  # not kept on the object


def test_a_missing_key_variable_names_the_variable(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"{KEY_ENV} .*is not set"):
        backend_for(server, api_key_env=KEY_ENV).generate(ask())
    assert server.requests == []


def test_the_key_never_shows_in_fingerprint_cache_payload_logs_or_errors(
    server, monkeypatch, caplog
):
    monkeypatch.setenv(KEY_ENV, SECRET)
    backend = backend_for(server, api_key_env=KEY_ENV, max_retries=1)
    request = ask()
    # A server that echoes the key back in its errors, as some do.
    server.script(error(500, f"upstream rejected key {SECRET}"), error(401, f"bad key {SECRET}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as info:
        backend.generate(request)

    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent
    assert "401" in str(info.value) and "api_key_env" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in info.value.server_message
    assert "upstream rejected key ***" in caplog.text  # the retry was logged, scrubbed
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(backend.fingerprint())
    assert SECRET not in json.dumps(request.cache_payload())
    assert backend.fingerprint() == {
        "backend": "openai",
        "base_url": server.base_url,
        "model": MODEL,
    }


@pytest.mark.parametrize(
    ("base_url", "refused"),
    [
        ("http://gpu-box.example:23333/v1", True),
        ("http://10.1.2.3:8000/v1", True),
        ("https://gpu-box.example/v1", False),
        ("http://127.0.0.1:8000/v1", False),
        ("http://localhost:8000/v1", False),
        ("http://[::1]:8000/v1", False),
    ],
)
def test_a_key_over_plain_http_to_another_host_is_refused(base_url, refused):
    cfg = BackendConfig(backend="openai", base_url=base_url, model=MODEL, api_key_env=KEY_ENV)
    if refused:
        with pytest.raises(ConfigError, match="plain http") as info:
            OpenAIBackend(cfg)
        assert "allow_insecure_remote" in str(info.value)
        OpenAIBackend(cfg.model_copy(update={"allow_insecure_remote": True}))
    else:
        OpenAIBackend(cfg)
    # Without a key nothing secret travels, so plain http anywhere is fine.
    OpenAIBackend(cfg.model_copy(update={"api_key_env": None}))


def test_missing_base_url_or_model_is_a_config_error():
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIBackend(BackendConfig(backend="openai", model=MODEL))
    with pytest.raises(ConfigError, match="model"):
        OpenAIBackend(BackendConfig(backend="openai", base_url="http://127.0.0.1:1/v1"))
    with pytest.raises(ConfigError, match="not an http"):
        OpenAIBackend(BackendConfig(backend="openai", base_url="ftp://host/v1", model=MODEL))


def test_the_key_never_reaches_the_result_cache(server, monkeypatch, tmp_path):
    from xcomposer import Engine, config_from_dict

    monkeypatch.setenv(KEY_ENV, SECRET)
    backend = {"backend": "openai", "base_url": server.base_url, "model": MODEL}
    config = config_from_dict(
        {"backend": backend | {"api_key_env": KEY_ENV}, "cache_dir": str(tmp_path / "cache")}
    )
    engine = Engine(config)
    server.script(chat("A lighthouse guards the coast."))
    first = engine.ask("write", ask("Write one sentence about lighthouses."))
    again = engine.ask("write", ask("Write one sentence about lighthouses."))
    assert (first.text, first.cached) == ("A lighthouse guards the coast.", False)
    assert (again.text, again.cached) == (first.text, True)  # a cache entry exists
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert entries
    for entry in entries:
        content = entry.read_text(encoding="utf-8")
        assert SECRET not in content and KEY_ENV not in content


def test_vision_is_probed_once_unless_the_config_says(server):
    backend = backend_for(server)
    assert backend.has_vision and backend.has_vision
    (probe,) = server.requests  # one small image, one token, asked once
    assert probe.body["max_tokens"] == 1
    assert probe.body["messages"][0]["content"][0]["type"] == "image_url"


def test_vision_false_marks_a_text_only_model(server):
    assert not backend_for(server, vision=False).has_vision
    assert server.requests == []  # the config said: nothing probed
