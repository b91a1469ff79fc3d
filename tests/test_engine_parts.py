"""Config, recipes, cache and Article: the engine's plain parts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from xcomposer import (
    Article,
    ConfigError,
    EngineConfig,
    Figure,
    InputError,
    Paragraph,
    ResultCache,
    load_config,
)
from xcomposer.recipes import detect_language, load_recipe


def test_import_is_light() -> None:
    """`import xcomposer` must not pull heavy runtimes (a frozen build needs none)."""
    import subprocess

    code = (
        "import sys, xcomposer; "
        "heavy = [m for m in ('torch','transformers','llama_cpp','sentence_transformers','onnxruntime','mkdocs','jupyter_server') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_config_defaults_are_the_embedded_setup() -> None:
    cfg = EngineConfig()
    assert cfg.backend.backend == "llamacpp" and cfg.backend.model is None
    assert cfg.library.embeddings == "minilm"


def test_config_file_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "xcomposer.toml").write_text(
        '[backend]\nn_ctx = 2048\n[library]\nroots = ["pics"]\n[backends.big]\nbackend = "openai"\n'
        'base_url = "http://127.0.0.1:9/v1"\n[roles]\nwrite = "big"\n'
    )
    cfg = load_config(search_dir=tmp_path)
    assert cfg.backend.n_ctx == 2048
    assert cfg.library.roots == [str((tmp_path / "pics").resolve())]
    assert cfg.backend_for("write")[0] == "big"
    assert cfg.backend_for("describe")[0] == "main"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[backend]\nn_ctxx = 1\n", "unknown option 'backend.n_ctxx'"),
        ("[backend]\nbackend = 'gpt'\n", "bad value for 'backend.backend'"),
        ("[backend\n", "is not valid TOML"),
        ("[roles]\nwrite = 'nope'\n", None),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, text: str, message: str | None) -> None:
    path = tmp_path / "x.toml"
    path.write_text(text)
    if message is None:
        cfg = load_config(path)
        with pytest.raises(ConfigError, match="roles.write names backend 'nope'"):
            cfg.backend_for("write")
        return
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_recipes_are_versioned_data() -> None:
    chat, completion, xc = (load_recipe(n) for n in ("chat", "completion", "xcomposer2"))
    assert chat.style == "chat" and completion.style == "raw" and xc.style == "raw"
    assert len({chat.key, completion.key, xc.key}) == 3
    # xcomposer2 keeps its turn markers and image placeholder
    req = xc.build("describe_caption", "en", images=(_ref(),))
    assert "[UNUSED_TOKEN_146]user" in req.prompt and "<ImageHere>" in req.prompt
    assert req.images == (_ref(),)
    # chat puts images as content parts, in order
    req = chat.build("describe_caption", "en", images=(_ref(),))
    assert req.messages[1].images == (_ref(),)
    # Chinese texts exist for every English task of the chat recipe
    assert set(chat.texts["en"]) <= set(chat.texts["zh"])


def _ref():
    from xcomposer.backends.base import ImageRef

    return ImageRef(Path("/x.png"), "abc")


def test_language_detection() -> None:
    assert detect_language("Write a short article about lighthouses") == "en"
    assert detect_language("写一篇关于灯塔的短文") == "zh"


def test_cache_round_trip_and_corrupt_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResultCache(tmp_path)
    key = {"prompt": "hi", "images": ["abc"]}
    assert cache.get(key) is None
    cache.put(key, {"text": "hello"})
    assert cache.get(key) == {"text": "hello"}
    # corrupt the entry: ignored, reported once, recomputable
    (entry,) = list(tmp_path.rglob("*.json"))
    entry.write_text("{not json")
    assert cache.get(key) is None and cache.get(key) is None
    assert sum("corrupt" in r.message for r in caplog.records) == 1
    cache.put(key, {"text": "again"})
    assert cache.get(key) == {"text": "again"}
    assert not list(tmp_path.rglob("*.tmp"))


def test_article_json_round_trip_and_markdown_escaping() -> None:
    article = Article(
        title="Lighthouses",
        paragraphs=[Paragraph("History", "heading"), Paragraph("Towers guide ships.")],
        figures=[
            Figure(
                after=1,
                image="/imgs/a b.png",
                caption="A <b>tower</b> *at* dusk",
                alt="Tower [red]",
                score=0.5,
                sha256="x",
            )
        ],
    )
    again = Article.from_json(article.to_json())
    assert again == article
    md = article.to_markdown()
    assert md.startswith("# Lighthouses\n\n## History\n\nTowers guide ships.")
    assert "![Tower \\[red\\]](/imgs/a%20b.png)" in md
    assert "&lt;b&gt;tower&lt;/b&gt; \\*at\\* dusk" in md
    html = article.to_markdown(figure_html=True)
    assert '<img src="/imgs/a%20b.png" alt="Tower [red]" loading="lazy">' in html
    assert json.loads(article.to_json())["format"] == 1


@pytest.mark.parametrize(
    "data",
    [
        {"title": "x", "colour": 1},  # an unknown field
        {"title": "x", "paragraphs": [{"words": "y"}]},
        {"title": "x", "paragraphs": [], "figures": [{"after": 0}]},
        {"paragraphs": "not a list"},
        ["not", "an", "object"],
        None,
    ],
)
def test_article_json_sent_back_is_parsed_or_refused_in_one_line(data: object) -> None:
    with pytest.raises(InputError) as err:
        Article.parse(data)
    assert str(err.value) == (
        "the article is not valid article JSON; send the 'article' of an earlier result unchanged"
    )


def test_article_json_sent_back_unchanged_parses_to_the_same_article() -> None:
    article = Article("T", [Paragraph("Cats nap.")], [Figure(0, "a.png", "c", "a")])
    assert Article.parse(json.loads(article.to_json())) == article


def test_auto_recipe_looks_at_the_model_name_only(tmp_path: Path) -> None:
    from xcomposer import BackendConfig, Engine

    def recipe_for(model: str) -> str:
        cfg = EngineConfig(backend=BackendConfig(backend="transformers", model=model))
        return Engine(cfg, cache=ResultCache(tmp_path)).recipe("write").name

    assert recipe_for("internlm/internlm-xcomposer2d5-7b") == "xcomposer2"
    assert recipe_for("/models/internlm-xcomposer2-vl-7b") == "xcomposer2"
    assert recipe_for("/src/mkdocs-xcomposer/models/Qwen2-VL-2B") == "chat"
    served = EngineConfig(
        backend=BackendConfig(
            backend="openai", base_url="http://127.0.0.1:1/v1", model="internlm-xcomposer2d5-7b"
        )
    )
    assert Engine(served, cache=ResultCache(tmp_path)).recipe("write").name == "chat"


def _digest(**backend: object) -> str:
    from xcomposer import BackendConfig, identity_digest

    return identity_digest(EngineConfig(backend=BackendConfig(**backend)))


def test_engine_identity_changes_with_every_setting_that_changes_output() -> None:
    from xcomposer import GenerationConfig, identity_digest

    base = _digest(backend="openai", base_url="http://127.0.0.1:8080/v1", model="m")
    for changed in (
        {"image_max_side": 512},  # images are downscaled before the model sees them
        {"vision": False},  # selection by retrieval score instead of the model's choice
        {"recipe": "completion"},
        {"model": "another"},
    ):
        settings = {"backend": "openai", "base_url": "http://127.0.0.1:8080/v1", "model": "m"}
        assert _digest(**(settings | changed)) != base, changed
    # where or how fast it runs is not what it answers
    for same in ({"base_url": "http://gpu-box:8000/v1"}, {"timeout": 5.0}, {"concurrency": 16}):
        settings = {"backend": "openai", "base_url": "http://127.0.0.1:8080/v1", "model": "m"}
        assert _digest(**(settings | same)) == base, same
    seeded = EngineConfig(generation=GenerationConfig(seed=7))
    assert identity_digest(seeded) != identity_digest(EngineConfig())
    assert identity_digest(EngineConfig(cache_dir="/elsewhere")) == identity_digest(EngineConfig())


def test_engine_identity_has_no_machine_paths_and_names_versions() -> None:
    from xcomposer import PIPELINE_VERSION, ROLES, Engine, engine_identity

    here = _digest(model="/home/a/models/qwen2-vl.Q4_K_M.gguf", mmproj="/home/a/mm.gguf")
    there = _digest(model="/srv/b/qwen2-vl.Q4_K_M.gguf", mmproj="../mm.gguf")
    assert here == there  # the same files elsewhere are the same model
    assert _digest(model="Qwen/Qwen2-VL-2B-Instruct", backend="transformers") != _digest(
        model="other/Qwen2-VL-2B-Instruct", backend="transformers"
    )  # a hub id is kept whole
    config = EngineConfig()
    found = engine_identity(config)
    assert found["pipeline"] == PIPELINE_VERSION and set(found["roles"]) == set(ROLES)
    assert found["roles"]["write"]["recipe"] == load_recipe("chat").key
    assert Engine(config).identity() == found


def test_every_setting_is_either_in_the_identity_or_declared_harmless() -> None:
    from xcomposer import BackendConfig, engine_identity
    from xcomposer.identity import NOT_OUTPUT

    role = engine_identity(EngineConfig())["roles"]["write"]
    for name in BackendConfig.model_fields:
        assert (name in role) != (name in NOT_OUTPUT["backend"]), name


def test_a_block_backend_serves_every_role_or_fails_with_the_fix() -> None:
    from xcomposer import ROLES, BackendConfig, serving_every_role

    config = EngineConfig(backends={"big": BackendConfig(backend="openai", model="m")})
    served = serving_every_role(config, "big")
    assert {served.backend_for(role)[0] for role in ROLES} == {"big"}
    assert serving_every_role(config, None) is config
    with pytest.raises(ConfigError, match="names backend 'nope'"):
        serving_every_role(config, "nope")


def test_the_public_names_are_one_list_in_three_places() -> None:
    # engine/__init__.py names each export three times (the lazy table, the imports type
    # checkers read, __all__): they must agree, and every name must load.
    import xcomposer

    assert sorted(xcomposer.__all__) == sorted(xcomposer._MODULE_OF)
    assert all(getattr(xcomposer, name) is not None for name in xcomposer.__all__)


def test_a_front_ends_own_options_are_relative_to_its_folder(tmp_path: Path) -> None:
    from xcomposer import EngineConfig

    (tmp_path / "models").mkdir()
    (tmp_path / "models/m.gguf").write_bytes(b"GGUF")
    base = EngineConfig(library={"roots": ["/shared/images"]})
    cfg = base.for_folder(
        tmp_path,
        backend={"model": "models/m.gguf", "mmproj": "proj.gguf", "n_ctx": None},
        library=["images"],
        cache_dir="cache",
    )
    assert cfg.backend.model == str((tmp_path / "models/m.gguf").resolve())
    assert cfg.backend.mmproj == str((tmp_path / "proj.gguf").resolve()), "a .gguf is a path"
    assert cfg.backend.n_ctx == base.backend.n_ctx, "None: not set"
    assert cfg.library.roots == [str((tmp_path / "images").resolve()), "/shared/images"]
    assert cfg.cache_dir == str((tmp_path / "cache").resolve())
    hub = base.for_folder(tmp_path, backend={"model": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    assert hub.backend.model == "HuggingFaceTB/SmolLM2-135M-Instruct", "a hub id stays"


def test_a_settings_table_merges_over_the_config_key_by_key(tmp_path: Path) -> None:
    from xcomposer import ConfigError, config_from_dict

    base = config_from_dict({"generation": {"temperature": 0.5, "seed": 7}})
    cfg = base.with_settings({"generation": {"seed": 9}, "library": {"roots": ["imgs"]}}, tmp_path)
    assert (cfg.generation.temperature, cfg.generation.seed) == (0.5, 9)
    assert cfg.library.roots == [str((tmp_path / "imgs").resolve())]
    with pytest.raises(ConfigError, match="unknown option 'generation.x'"):
        base.with_settings({"generation": {"x": 1}}, tmp_path)
