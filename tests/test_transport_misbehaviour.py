"""A server that misbehaves on the wire: one clear error line within the deadline, bounded output.

Each case runs the real OpenAI-compatible backend against the scripted loopback
server in misbehaving_server.py, with ``timeout = 2``: the call must end within
that deadline plus 5 s with one ``BackendError`` line naming the server and the
fix (never a traceback), or with a clean answer.  A cut body and a dropped
connection, answers of 20 MB, ``usage`` of the wrong type and a key the server
echoes back are each covered; so is the CLI end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import openai_fixtures
import pytest
import skimage
from misbehaving_server import (
    MODEL,
    MisbehavingServer,
    Reply,
    chat,
    cut_body,
    dropped,
    endless_stream,
    huge,
    stream,
    trickle,
)
from xcomposer.backends.base import GenerateRequest, Message
from xcomposer.backends.openai import OpenAIBackend
from xcomposer.errors import BackendError

pytestmark = pytest.mark.usefixtures("quick_backoff")  # retries wait milliseconds

TIMEOUT = 2.0
GRACE = 5.0
SECRET = "sk-echoed-6b1f0c9e-0000-4e2a"
KEY_ENV = "XCOMPOSER_TEST_ECHO_KEY"


def backend_for(server: MisbehavingServer, **options) -> OpenAIBackend:
    options = {"timeout": TIMEOUT, "max_retries": 0, "vision": False} | options
    return openai_fixtures.backend_for(server, **options)


def ask(max_tokens: int = 64) -> GenerateRequest:
    return GenerateRequest(messages=(Message("user", ("Say hi.",)),), max_tokens=max_tokens)


def fails_quickly(call, *fragments: str) -> str:
    """The call raises one BackendError line containing ``fragments`` within the deadline."""
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        call()
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < TIMEOUT + GRACE, f"took {elapsed:.1f} s: {message}"
    assert "\n" not in message and len(message) < 600
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_trickling_body_is_cut_off_at_the_total_deadline(server):
    server.script(trickle(every=0.1))  # ~200 bytes: 20 s if it were waited for
    backend = backend_for(server)
    fails_quickly(lambda: backend.generate(ask()), "did not answer within 2 s", "timeout")


def test_an_endless_event_stream_is_cut_off(server):
    server.script(endless_stream(event_delay=0.05))
    backend = backend_for(server)
    seen: list[str] = []
    fails_quickly(lambda: backend.generate(ask(), on_text=seen.append), "within 2 s")
    assert seen  # it streamed until the deadline


def test_a_fast_endless_event_stream_stops_at_the_byte_cap(server):
    server.script(endless_stream(piece="spam " * 20, event_delay=0))
    backend = backend_for(server, timeout=60)
    seen: list[str] = []
    fails_quickly(lambda: backend.generate(ask(16), on_text=seen.append), "KiB", "max_tokens")
    assert sum(map(len, seen)) < 200_000


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_20_mb_answer_stops_at_the_byte_cap(server, chunked):
    server.script(huge(20, chunked=chunked))
    backend = backend_for(server, timeout=30)
    fails_quickly(lambda: backend.generate(ask(256)), "KiB", "far beyond the token budget")


def test_a_body_cut_halfway_says_it_broke_off(server):
    server.script(cut_body())
    message = fails_quickly(lambda: backend_for(server).generate(ask()), "broke off")
    assert "malformed JSON" not in message


def test_a_dropped_connection_is_retried_then_one_line(server):
    server.script(dropped(), dropped())
    backend = backend_for(server, max_retries=1)
    fails_quickly(lambda: backend.generate(ask()), "dropped the connection", "server's log")
    assert len(server.requests) == 2


def test_a_dropped_connection_then_an_answer_succeeds(server):
    server.script(dropped(), chat("fine"))
    assert backend_for(server, max_retries=2).generate(ask()).text == "fine"


@pytest.mark.parametrize(
    "usage", [[1], {"prompt_tokens": "many"}, "lots", {"completion_tokens": -3}, 7]
)
def test_usage_of_the_wrong_type_leaves_a_clean_answer_and_one_warning(server, usage, caplog):
    reply = chat("the answer")
    reply.body["usage"] = usage
    server.script(reply, Reply(body=reply.body))
    backend = backend_for(server)
    first, second = backend.generate(ask()), backend.generate(ask())
    assert first.text == second.text == "the answer"
    assert first.completion_tokens == 0
    warnings = [r for r in caplog.records if "malformed usage" in r.getMessage()]
    assert len(warnings) == 1


def test_usage_of_the_wrong_type_in_a_stream_is_not_a_traceback(server):
    server.script(stream(["a", "b"], usage={"prompt_tokens": [1]}))
    assert backend_for(server).generate(ask(), on_text=lambda _: None).text == "ab"


def test_a_key_echoed_in_an_answer_is_scrubbed(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    server.script(chat(f"Your key is {SECRET}, keep it safe."))
    answer = backend_for(server, api_key_env=KEY_ENV).generate(ask())
    assert SECRET not in answer.text and "***" in answer.text


def test_a_key_echoed_across_stream_pieces_is_scrubbed(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    half = len(SECRET) // 2
    server.script(stream(["key: ", SECRET[:half], SECRET[half:], " end"]))
    seen: list[str] = []
    answer = backend_for(server, api_key_env=KEY_ENV).generate(ask(), on_text=seen.append)
    assert SECRET not in "".join(seen) and SECRET not in answer.text
    assert "".join(seen) == answer.text == "key: *** end"


def test_reasoning_content_stays_out_of_the_answer(server):
    reply = chat("The answer.")
    reply.body["choices"][0]["message"]["reasoning_content"] = "secret thoughts"
    server.script(reply)
    events = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "thinking..."}}]},
        {"choices": [{"index": 0, "delta": {"content": "Streamed."}}]},
    ]
    server.script(Reply(events=events))
    backend = backend_for(server)
    assert backend.generate(ask()).text == "The answer."
    assert backend.generate(ask(), on_text=lambda _: None).text == "Streamed."


# -- the CLI, end to end ------------------------------------------------------------


def cli(server: MisbehavingServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "xcomposer.toml"
    config.write_text(f"[backend]\ntimeout = {TIMEOUT}\nmax_retries = 0\n", encoding="utf-8")
    command = [sys.executable, "-m", "xcomposer", "compose", "Write about tea."]
    command += ["--backend", "openai", "--base-url", server.base_url, "--model", MODEL]
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(Path(skimage.__file__).parent / "data" / name, images / name)
    command += ["--config", str(config), "--cache-dir", str(tmp_path / "cache"), "-q"]
    command += ["--images", str(images), *args]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "reply, fragment",
    [(trickle(every=0.1), "within 2 s"), (cut_body(), "broke off"), (huge(20), "KiB")],
    ids=["trickle", "cut-body", "20-MB"],
)
def test_the_cli_prints_one_error_line_and_exits_2(server, tmp_path, reply, fragment):
    server.default = lambda request: reply
    started = time.monotonic()
    result = cli(server, tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("xcomposer: error: ") and fragment in lines[-1]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # One request failed (not retried), plus Python's start: well within deadline + 5 s.
    assert elapsed < 30
    cache = tmp_path / "cache"
    size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0
    assert size < 1_000_000
