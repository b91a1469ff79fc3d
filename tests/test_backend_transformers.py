"""The transformers backend, for real on CPU, on tiny random models the tests build themselves.

A LLaVA (loaded through AutoModelForImageTextToText + AutoProcessor and its chat
template) and a remote-code stand-in for InternLM-XComposer 2.5 (loaded through
``trust_remote_code`` and driven through its own ``chat()``).  Their answers are random
words; what is checked is what a user relies on: answers come back, images change them,
constraints hold, the same seed gives the same text, and mistakes get one-line errors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures.tiny_models import sample_image, write_tiny_llava, write_tiny_xcomposer
from xcomposer import BackendConfig, ModelError
from xcomposer.backends.base import GenerateRequest, ImageRef, Message
from xcomposer.backends.transformers import TransformersBackend
from xcomposer.errors import ImageError
from xcomposer.images import file_sha256

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def image(name: str) -> ImageRef:
    path = sample_image(name)
    return ImageRef(path, file_sha256(path))


CAT, ASTRONAUT, COFFEE = image("chelsea.png"), image("astronaut.png"), image("coffee.png")


def chat(*content: str | ImageRef, system: str | None = None, **kw) -> GenerateRequest:
    messages = (Message("system", (system,)),) if system else ()
    return GenerateRequest(messages=messages + (Message("user", content),), **kw)


@pytest.fixture(scope="session")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


@pytest.fixture(scope="session")
def xcomposer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_xcomposer(tmp_path_factory.mktemp("models") / "tiny-xcomposer")


def backend_for(model: Path | str, **options) -> TransformersBackend:
    return TransformersBackend(
        BackendConfig(backend="transformers", model=str(model), device="cpu", **options)
    )


@pytest.fixture(scope="session")
def llava(llava_dir: Path) -> TransformersBackend:
    backend = backend_for(llava_dir, dtype="fp32")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def xcomposer(xcomposer_dir: Path) -> TransformersBackend:
    backend = backend_for(xcomposer_dir, trust_remote_code=True, hd_num=4)
    yield backend
    backend.close()


# -- image-text-to-text models (LLaVA) ------------------------------------------------


def test_llava_answers_text_only(llava: TransformersBackend) -> None:
    answer = llava.generate(chat("Describe a cat.", system="Be brief.", max_tokens=10))
    assert answer.text.strip()
    assert 0 < answer.completion_tokens <= 10
    assert answer.prompt_tokens > 5 and answer.seconds > 0
    assert answer.truncated == (answer.completion_tokens == 10)


def test_llava_looks_at_the_image(llava: TransformersBackend) -> None:
    plain = llava.generate(chat("Describe the picture.", max_tokens=10))
    cat = llava.generate(chat(CAT, "Describe the picture.", max_tokens=10))
    astronaut = llava.generate(chat(ASTRONAUT, "Describe the picture.", max_tokens=10))
    # The processor expands the image into 16 patch tokens (32 px, patch 8) in the prompt.
    assert cat.prompt_tokens - plain.prompt_tokens == 16
    assert cat.text.strip() and astronaut.text.strip()
    assert cat.text != astronaut.text  # another image, another answer


def test_llava_raw_prompt_with_image_placeholder(llava: TransformersBackend) -> None:
    request = GenerateRequest(
        prompt="Photo: [IMG] What is it?", images=(CAT,), image_placeholder="[IMG]", max_tokens=6
    )
    answer = llava.generate(request)
    assert answer.text.strip() and answer.prompt_tokens > 16
    with pytest.raises(Exception, match="placeholder") as err:
        llava.generate(GenerateRequest(prompt="no placeholder", images=(CAT,)))
    assert "\n" not in str(err.value)


def test_greedy_is_deterministic_and_sampling_follows_the_seed(
    llava: TransformersBackend,
) -> None:
    greedy = chat(CAT, "Write about it.", max_tokens=12)
    assert llava.generate(greedy).text == llava.generate(greedy).text
    sampled = [
        llava.generate(chat("Write about it.", max_tokens=16, temperature=1.0, seed=s)).text
        for s in (7, 7, 8)
    ]
    assert sampled[0] == sampled[1]
    assert sampled[0] != sampled[2]


def test_streaming_passes_on_the_same_text(llava: TransformersBackend) -> None:
    pieces: list[str] = []
    streamed = llava.generate(chat(CAT, "Describe it.", max_tokens=10), on_text=pieces.append)
    whole = llava.generate(chat(CAT, "Describe it.", max_tokens=10))
    assert len(pieces) > 1
    assert "".join(pieces).strip() == streamed.text.strip() == whole.text.strip()


def test_stop_string_cuts_the_answer(llava: TransformersBackend) -> None:
    whole = llava.generate(chat("Write about cats.", max_tokens=12)).text
    word = whole.split()[2]
    cut = llava.generate(chat("Write about cats.", max_tokens=12, stop=(word,))).text
    assert word not in cut and whole.startswith(cut.rstrip())


def test_choices_returns_the_most_likely_choice_exactly(
    llava: TransformersBackend, llava_dir: Path
) -> None:
    choices = ("cat", "a red rocket", "moon", "two dogs")
    request = chat(CAT, "What is in the picture?", choices=choices)
    answer = llava.generate(request)
    assert answer.text in choices and answer.completion_tokens >= 1

    # The same likelihoods computed independently, with plain transformers calls.
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(llava_dir).eval()
    processor = AutoProcessor.from_pretrained(llava_dir)
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}],
        }
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    picture = Image.open(CAT.path).convert("RGB")
    eos = model.generation_config.eos_token_id
    scores = {}
    for choice in choices:
        inputs = processor(text=[prompt + choice], images=[picture], return_tensors="pt")
        n_prompt = processor(text=[prompt], images=[picture], return_tensors="pt")["input_ids"]
        ids = inputs["input_ids"][0]
        with torch.no_grad():
            logp = torch.log_softmax(model(**inputs).logits[0].float(), -1)
            end = model(input_ids=ids[None], pixel_values=inputs["pixel_values"]).logits[0, -1]
        start = n_prompt.shape[1]
        total = sum(float(logp[i - 1, ids[i]]) for i in range(start, len(ids)))
        total += float(torch.log_softmax(end.float(), -1)[eos].logsumexp(-1))
        scores[choice] = total
    assert answer.text == max(scores, key=scores.get)


def test_choices_ignore_sampling_settings(llava: TransformersBackend) -> None:
    choices = ("1", "2", "3")
    answers = {
        llava.generate(chat("Pick one.", choices=choices, temperature=1.0, seed=s)).text
        for s in range(3)
    }
    assert len(answers) == 1 and answers <= set(choices)


def test_json_schema_outline_is_valid(llava: TransformersBackend) -> None:
    schema = {
        "type": "array",
        "items": {"type": "string", "minLength": 3, "maxLength": 40},
        "minItems": 3,
        "maxItems": 3,
    }
    answer = llava.generate(chat("Plan an article about cats.", json_schema=schema, max_tokens=90))
    headings = json.loads(answer.text)
    assert isinstance(headings, list) and len(headings) == 3
    assert all(isinstance(h, str) and 3 <= len(h) <= 40 for h in headings)
    assert answer.completion_tokens > 3


def test_json_schema_object_with_enum_integer_and_boolean(llava: TransformersBackend) -> None:
    schema = {
        "type": "object",
        "properties": {
            "animal": {"enum": ["cat", "dog", "horse"]},
            "count": {"type": "integer", "minimum": 1, "maximum": 4},
            "outdoors": {"type": "boolean"},
            "tags": {"type": "array", "items": {"enum": ["red", "blue"]}, "uniqueItems": True},
        },
        "required": ["animal", "count", "outdoors", "tags"],
    }
    answer = llava.generate(chat(COFFEE, "Describe it as JSON.", json_schema=schema))
    data = json.loads(answer.text)
    assert data["animal"] in ("cat", "dog", "horse") and 1 <= data["count"] <= 4
    assert isinstance(data["outdoors"], bool)
    assert len(set(data["tags"])) == len(data["tags"]) and set(data["tags"]) <= {"red", "blue"}


def test_json_schema_it_cannot_honour_is_refused(llava: TransformersBackend) -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    with pytest.raises(ModelError, match="anyOf") as err:
        llava.generate(chat("Answer.", json_schema=schema))
    assert "\n" not in str(err.value)


def test_scoring_reuses_the_prompt_cache_without_changing_results(
    llava: TransformersBackend,
) -> None:
    model = llava._load()
    call = llava._hf_call(model, chat(CAT, "Which one?"))
    cached, fresh = call.context(), call.context()
    fresh.cache = None  # the slow path: the whole sequence again
    assert cached.cache is not None
    for ids in ([5], [5, 9, 12], [30, 2, 7, 7]):
        assert torch.allclose(cached.logprobs(ids), fresh.logprobs(ids), atol=1e-4)
    assert cached.cache is not None and cached.cache.get_seq_length() == cached.prompt_length


def test_bad_image_is_refused_with_a_one_line_error(
    llava: TransformersBackend, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(CAT.path.read_bytes()[:2000])
    with pytest.raises(ImageError) as err:
        llava.generate(chat(ImageRef(broken, "x"), "Describe it."))
    assert "broken.png" in str(err.value) and "\n" not in str(err.value)


# -- InternLM-XComposer through its own code --------------------------------------------


def test_xcomposer_needs_trust_remote_code(xcomposer_dir: Path) -> None:
    backend = backend_for(xcomposer_dir)
    assert not backend.health().ok
    with pytest.raises(ModelError, match="trust_remote_code = true") as err:
        backend.generate(chat("Hello"))
    assert "\n" not in str(err.value) and backend._model is None


def test_xcomposer_chat_with_images(xcomposer: TransformersBackend) -> None:
    assert xcomposer.health().ok and xcomposer.has_vision
    text = xcomposer.generate(chat("Describe a cat.", max_tokens=8))
    cat = xcomposer.generate(chat(CAT, "Describe the picture.", max_tokens=8))
    astronaut = xcomposer.generate(chat(ASTRONAUT, "Describe the picture.", max_tokens=8))
    both = xcomposer.generate(chat(CAT, ASTRONAUT, "Compare them.", max_tokens=8))
    assert all(a.text.strip() for a in (text, cat, astronaut, both))
    assert cat.text != astronaut.text
    assert xcomposer.generate(chat(CAT, "Describe the picture.", max_tokens=8)).text == cat.text


def test_xcomposer_hd_num_reaches_the_model(xcomposer_dir: Path) -> None:
    answers = []
    for hd_num in (1, 4):
        backend = backend_for(xcomposer_dir, trust_remote_code=True, hd_num=hd_num)
        answers.append(backend.generate(chat(ASTRONAUT, "Describe it.", max_tokens=8)).text)
        backend.close()
    assert answers[0] != answers[1]  # more tiles, other image tokens, another answer


def test_xcomposer_raw_recipe_prompt_matches_the_chat_form(
    xcomposer: TransformersBackend,
) -> None:
    from xcomposer.recipes import load_recipe

    recipe = load_recipe("xcomposer2")
    raw = recipe.build("describe_question", "en", images=(CAT,), question="What is shown?")
    assert raw.prompt and "<ImageHere>" in raw.prompt
    system = recipe.text("system", "en")
    as_chat = chat(CAT, "\nWhat is shown?", system=system, max_tokens=8)
    assert xcomposer.generate(raw).text.strip()
    raw = GenerateRequest(
        prompt=raw.prompt, images=raw.images, image_placeholder="<ImageHere>", max_tokens=8
    )
    assert xcomposer.generate(raw).text == xcomposer.generate(as_chat).text


def test_xcomposer_choices_and_json(xcomposer: TransformersBackend) -> None:
    choices = ("A", "B", "C")
    first = xcomposer.generate(chat(CAT, ASTRONAUT, "Which fits?", choices=choices))
    again = xcomposer.generate(chat(CAT, ASTRONAUT, "Which fits?", choices=choices))
    assert first.text in choices and first.text == again.text
    schema = {"type": "array", "items": {"type": "string", "minLength": 3}, "minItems": 2}
    items = json.loads(xcomposer.generate(chat("Plan.", json_schema=schema, max_tokens=60)).text)
    assert len(items) >= 2 and all(len(i) >= 3 for i in items)


def test_xcomposer_streams(xcomposer: TransformersBackend) -> None:
    pieces: list[str] = []
    answer = xcomposer.generate(chat(CAT, "Describe.", max_tokens=8), on_text=pieces.append)
    assert "".join(pieces).strip() == answer.text.strip() and len(pieces) > 1


# -- errors, identity, health ------------------------------------------------------


def test_missing_model_folder_is_a_one_line_error(tmp_path: Path) -> None:
    backend = backend_for(tmp_path / "no-such-model")
    with pytest.raises(ModelError, match="no-such-model") as err:
        backend.generate(chat("Hello"))
    assert "\n" not in str(err.value) and "not found" in str(err.value)
    assert not backend.health().ok


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match="config.json"):
        backend_for(tmp_path).fingerprint()


def test_hub_id_not_cached_offline_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = backend_for("nobody-here/no-such-vlm-xyz")
    with pytest.raises(ModelError, match="nobody-here/no-such-vlm-xyz") as err:
        backend.generate(chat("Hello"))
    assert "\n" not in str(err.value) and "huggingface-cli download" in str(err.value)
    health = backend.health()
    assert not health.ok and "offline" in health.detail


def test_fingerprint_identifies_files_without_loading(llava_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(llava_dir, copy)
    backend = backend_for(copy)
    first = backend.fingerprint()
    assert first == backend_for(copy).fingerprint() and backend._model is None
    assert first["backend"] == "transformers" and first["hd_num"] == 9
    assert backend_for(copy, dtype="bf16").fingerprint() != first
    config = json.loads((copy / "config.json").read_text())
    config["text_config"]["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert backend_for(copy).fingerprint()["files"] != first["files"]


def test_health_reports_without_loading(llava_dir: Path) -> None:
    backend = backend_for(llava_dir)
    health = backend.health()
    assert health.ok and health.vision and health.backend == "transformers"
    assert str(llava_dir) in health.detail and backend._model is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(llava_dir: Path) -> None:
    backend = backend_for(llava_dir)
    backend = TransformersBackend(backend.config.model_copy(update={"device": "cuda"}))
    assert not backend.health().ok
    with pytest.raises(ModelError, match='device = "cpu"') as err:
        backend.generate(chat("Hello"))
    assert "\n" not in str(err.value)


def test_4bit_without_bitsandbytes_is_a_clear_error(llava_dir: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    backend = backend_for(llava_dir, load_in_4bit=True)
    with pytest.raises(ModelError, match="bitsandbytes"):
        backend.generate(chat("Hello"))


def test_out_of_memory_says_what_it_needed(llava_dir: Path, monkeypatch) -> None:
    # A real CUDA out-of-memory cannot happen on this CPU machine: raise the very error.
    backend = backend_for(llava_dir, dtype="bf16")
    model = backend._load()

    def no_room(**kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(model, "generate", no_room)
    with pytest.raises(ModelError) as err:
        backend.generate(chat("Hello", max_tokens=4))
    message = str(err.value)
    params = sum(p.numel() for p in model.parameters())
    assert "\n" not in message and "GiB" in message and "bf16" in message
    assert f"{params / 1e9:.2f}B parameters" in message
    assert "load_in_4bit = true" in message and 'device = "cpu"' in message


def test_text_only_model_writes_but_refuses_images(llava_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoProcessor, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoProcessor.from_pretrained(llava_dir).tokenizer
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "text-only")
    tokenizer.save_pretrained(tmp_path / "text-only")
    backend = backend_for(tmp_path / "text-only")
    assert not backend.has_vision
    assert backend.generate(chat("Write.", system="Be brief.", max_tokens=6)).text.strip()
    assert backend.generate(chat("Pick.", choices=("yes", "no"))).text in ("yes", "no")
    with pytest.raises(ModelError, match="text-only"):
        backend.generate(chat(CAT, "Describe."))


# -- the whole pipeline -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("which", ["llava", "xcomposer"])
def test_compose_runs_through_the_transformers_backend(
    which: str, llava_dir: Path, xcomposer_dir: Path, captioned_images: Path, tmp_path: Path
) -> None:
    from xcomposer import Engine
    from xcomposer.config import config_from_dict

    model = {"llava": llava_dir, "xcomposer": xcomposer_dir}[which]
    backend = {"backend": "transformers", "model": str(model), "device": "cpu"}
    if which == "xcomposer":
        backend["trust_remote_code"] = True
    config = config_from_dict(
        {
            "backend": backend,
            "library": {"roots": [str(captioned_images)]},
            "cache_dir": str(tmp_path),
        }
    )
    engine = Engine(config)
    assert engine.recipe("write").name == ("xcomposer2" if which == "xcomposer" else "chat")
    article = engine.compose("Write a short article about cats", n_images=1, sections=2, words=15)
    headings = [p for p in article.paragraphs if p.kind == "heading"]
    texts = [p for p in article.paragraphs if p.kind == "text" and p.text.strip()]
    assert len(headings) == 2 and texts
    assert len(article.figures) == 1
    figure = article.figures[0]
    assert (captioned_images / Path(figure.image).name).is_file()
    assert figure.alt.strip() and figure.caption.strip()


def test_default_device_auto_and_attention_option_load_and_answer(llava_dir: Path) -> None:
    config = BackendConfig(
        backend="transformers", model=str(llava_dir), attn_implementation="eager"
    )
    assert config.device == "auto"
    backend = TransformersBackend(config)
    model = backend._load()
    assert model.config._attn_implementation == "eager"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected
    assert backend.generate(chat("Write about cats.", max_tokens=6)).text.strip()
    backend.close()
