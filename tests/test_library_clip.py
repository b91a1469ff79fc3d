"""Image embeddings (CLIP through transformers) fused with the text score.

No CLIP model ships on PyPI, so this builds a tiny random one (2 layers, 32 px):
it checks the plumbing (pixels embedded and stored, queries embedded by the
text tower and remembered, scores fused), not retrieval quality.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from library_eval.folders import add_good_images
from xcomposer.config import LibraryConfig
from xcomposer.library import Library

pytest.importorskip("torch")
pytest.importorskip("transformers")


def write_tiny_clip(dest: Path) -> Path:
    """Save a tiny random CLIPModel with a word-level tokenizer and a 32 px image processor."""
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        PreTrainedTokenizerFast,
    )

    words = "<pad> <unk> <s> </s> a the cat rocket coffee astronaut launch pad cup on of in".split()
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>", model_max_length=16,
    )  # fmt: skip
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
    )
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 16,
            "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
        },
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def _image_columns(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / ".xcomposer" / "library.sqlite") as db:
        return db.execute("SELECT relpath, image_model, length(image_vec) FROM images").fetchall()


def test_image_embeddings_are_stored_fused_and_added_to_an_existing_index(tmp_path, tiny_clip):
    folder = tmp_path / "images"
    add_good_images(folder)
    query = "a rocket on the launch pad"
    with Library.open([folder]) as lib:  # text only first
        lib.update()
        text_only = {m.path.name: m.score for m in lib.search(query, k=4)}
    assert all(model is None for _, model, _ in _image_columns(folder))

    config = LibraryConfig(image_embeddings=str(tiny_clip))
    with Library.open([folder], config) as lib:
        report = lib.update()
        # Configuring a model adds the image vectors: each image is decoded once more.
        assert len(report.updated) == 4 and not report.added
        rows = _image_columns(folder)
        assert {model for _, model, _ in rows} == {str(tiny_clip)}
        assert {size for _, _, size in rows} == {16 * 4}  # projection_dim float32
        assert lib.update().unchanged == 4
        fused = lib.search(query, k=4)
    assert fused[0].path.name == "rocket.jpg"
    assert fused[0].matched == "sidecar: A rocket on the launch pad before lift-off"
    assert [m.score for m in fused] == sorted((m.score for m in fused), reverse=True)
    # The image side takes part: the scores are not the text scores.
    assert any(abs(m.score - text_only[m.path.name]) > 1e-4 for m in fused)
    # Its query embedding is remembered too, so a repeated query loads no model.
    with sqlite3.connect(folder / ".xcomposer" / "library.sqlite") as db:
        models = {m for (m,) in db.execute("SELECT model FROM queries WHERE text = ?", (query,))}
    assert models == {"sentence-transformers/all-MiniLM-L6-v2", f"image-text:{tiny_clip}"}


def test_a_bad_image_model_is_a_one_line_model_error(tmp_path):
    from xcomposer.errors import ModelError

    folder = tmp_path / "images"
    add_good_images(folder, ["cat.png"])
    (tmp_path / "not-a-model").mkdir()
    config = LibraryConfig(image_embeddings=str(tmp_path / "not-a-model"))
    with Library.open([folder], config) as lib, pytest.raises(ModelError) as err:
        lib.update()
    assert "image embedding model" in str(err.value) and "\n" not in str(err.value)
