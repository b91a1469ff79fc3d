"""The tiny GGUF pair the tests build: llama.cpp loads it, looks at images, honours grammars."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from fixtures.tiny_models import sample_image, write_tiny_gguf

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def gguf_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf"))


@pytest.fixture(scope="module")
def llm(gguf_pair: tuple[Path, Path]):
    from llama_cpp.llama_chat_format import MTMDChatHandler

    model, mmproj = gguf_pair
    handler = MTMDChatHandler(clip_model_path=str(mmproj), verbose=False)
    llm = llama_cpp.Llama(
        model_path=str(model), chat_handler=handler, n_ctx=512, seed=0, verbose=False
    )
    yield llm
    llm.close()


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def ask(llm, *parts: dict, max_tokens: int = 8) -> dict:
    messages = [{"role": "user", "content": list(parts)}]
    return llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0)


def test_files_are_small_gguf_and_written_the_same_every_time(tmp_path: Path) -> None:
    first = write_tiny_gguf(tmp_path / "a")
    second = write_tiny_gguf(tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes()[:4] == b"GGUF"
        assert a.stat().st_size < 2_000_000
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_text_model_has_byte_fallback_vocab_and_chat_template(gguf_pair, llm) -> None:
    assert llm.n_embd() == 64
    template = llm.metadata["tokenizer.chat_template"]
    assert "content" in template and "<|im_start|>" in template
    # Characters outside the vocabulary go through the <0xNN> byte tokens and come back intact.
    text = "naïve — 東京"
    tokens = llm.tokenize(text.encode(), add_bos=False, special=False)
    assert llm.detokenize(tokens).decode().strip() == text


def test_image_turns_into_image_tokens_and_an_answer(llm) -> None:
    question = {"type": "text", "text": "What is in this picture?"}
    plain = ask(llm, question)
    with_image = ask(
        llm, {"type": "image_url", "image_url": {"url": data_uri(sample_image())}}, question
    )
    answer = with_image["choices"][0]["message"]["content"]
    assert isinstance(answer, str) and answer
    # The projector turns a 32 px image (patch 8) into 16 embeddings in the prompt.
    extra = with_image["usage"]["prompt_tokens"] - plain["usage"]["prompt_tokens"]
    assert extra >= 16
    assert with_image["usage"]["completion_tokens"] > 0


def test_grammar_constrains_the_random_model(llm) -> None:
    grammar = llama_cpp.LlamaGrammar.from_string('root ::= "yes" | "no"', verbose=False)
    out = llm.create_completion("Is this a cat? Answer:", grammar=grammar, max_tokens=8)
    assert out["choices"][0]["text"] in ("yes", "no")

    schema = {"type": "array", "items": {"enum": ["cat", "moon", "rocket"]}, "maxItems": 2}
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    out = llm.create_completion("List: ", grammar=grammar, max_tokens=24)
    items = json.loads(out["choices"][0]["text"])
    assert isinstance(items, list) and len(items) <= 2
    assert set(items) <= {"cat", "moon", "rocket"}
