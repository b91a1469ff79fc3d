"""Pipeline logic against scripted answers: what a real small model cannot be made to do on cue."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import draw_lighthouse
from PIL import Image, ImageOps
from scripted import ScriptedBackend, default_answer, request_text
from xcomposer import (
    BackendError,
    CacheMissError,
    Engine,
    EngineConfig,
    InputError,
    ModelError,
)
from xcomposer.backends.base import GenerateRequest


def make_engine(tmp_path: Path, backend: ScriptedBackend, **cfg) -> Engine:
    return Engine(
        EngineConfig(cache_dir=str(tmp_path / "cache"), **cfg), backends={"main": backend}
    )


@pytest.fixture
def tied_images(tmp_path: Path, captioned_images: Path) -> Path:
    """The captioned folder plus a second lighthouse picture described exactly like the first."""
    folder = tmp_path / "tied"
    shutil.copytree(captioned_images, folder)
    draw_lighthouse(folder / "lighthouse_dusk.png")
    with Image.open(folder / "lighthouse_dusk.png") as img:  # another picture, same description
        ImageOps.mirror(ImageOps.posterize(img, 3)).save(folder / "lighthouse_dusk.png")
    shutil.copy(folder / "lighthouse_day.txt", folder / "lighthouse_dusk.txt")
    return folder


TIED_TEXT = (
    "A white lighthouse with red stripes stands by the sea.\n\n"
    "Our tabby cat looks to the side, bored.\n"
)


def test_vision_model_chooses_only_among_near_tied_candidates(
    tmp_path: Path, tied_images: Path
) -> None:
    def answer(req: GenerateRequest) -> str:
        if req.choices and req.choices[0] == "A":
            return "B"  # the second of the tied candidates
        return default_answer(req)

    backend = ScriptedBackend(answer, vision=True)
    engine = make_engine(tmp_path, backend)
    art = engine.illustrate(TIED_TEXT, tied_images, n_images=2)
    lighthouse, cat = art.figures
    select = [r for r in backend.requests if r.choices and r.choices[0] == "A"]
    # one question, for the tie only: the cat's strong match is never second-guessed
    assert len(select) == 1 and len(select[0].all_images) == 2
    assert lighthouse.image == lighthouse.candidates[1].image
    assert lighthouse.provenance["image"].startswith("model (vision")
    assert lighthouse.provenance["signals"].endswith("+vision")
    assert Path(cat.image).name == "cat.png" and cat.provenance["image"] == "evidence"
    assert cat.provenance["alt"] == "model"  # the vision model wrote the alt text
    assert len({f.image for f in art.figures}) == 2


def test_used_images_are_never_candidates_again(tmp_path: Path, captioned_images: Path) -> None:
    engine = make_engine(tmp_path, ScriptedBackend())
    art = engine.compose("Write about lighthouses", captioned_images, n_images=4, sections=4)
    chosen = [f.image for f in art.figures]
    assert len(chosen) == len(set(chosen)) == 4
    for k, fig in enumerate(art.figures):
        earlier = set(chosen[:k])
        assert not earlier & {c.image for c in fig.candidates}


def test_more_images_than_paragraphs_is_capped_and_recorded(
    tmp_path: Path, captioned_images: Path
) -> None:
    engine = make_engine(tmp_path, ScriptedBackend())
    art = engine.compose("Write about lighthouses", captioned_images, n_images=9, sections=2)
    assert len(art.figures) == 2
    assert "9 asked, 2 placed" in art.provenance["image_count"]


def test_a_backend_that_breaks_its_constraint_is_an_error(
    tmp_path: Path, tied_images: Path
) -> None:
    def answer(req: GenerateRequest) -> str:
        return "paragraph seven, obviously" if req.choices else default_answer(req)

    engine = make_engine(tmp_path, ScriptedBackend(answer, vision=True))
    with pytest.raises(BackendError, match="constrained to one of"):
        engine.illustrate(TIED_TEXT, tied_images, n_images=2)


def test_frozen_mode_never_calls_a_model(tmp_path: Path, captioned_images: Path) -> None:
    backend = ScriptedBackend()
    engine = make_engine(tmp_path, backend, frozen=True)
    with pytest.raises(CacheMissError, match="frozen mode"):
        engine.compose("Write about lighthouses", captioned_images, n_images=1, sections=2)
    assert backend.requests == []
    # fill the cache without frozen, then frozen answers everything
    make_engine(tmp_path, ScriptedBackend()).compose(
        "Write about lighthouses", captioned_images, n_images=1, sections=2
    )
    again = make_engine(tmp_path, backend, frozen=True)
    art = again.compose("Write about lighthouses", captioned_images, n_images=1, sections=2)
    assert len(art.figures) == 1 and backend.requests == []


def test_output_language_is_the_instructions_unless_given(
    tmp_path: Path, captioned_images: Path
) -> None:
    backend = ScriptedBackend()
    engine = make_engine(tmp_path, backend)
    engine.compose("写一篇关于灯塔的短文", captioned_images, n_images=1, sections=2)
    assert "章节" in request_text(backend.requests[0])
    backend.requests.clear()
    engine.compose("写一篇关于灯塔的短文", captioned_images, n_images=1, sections=2, language="en")
    assert "section headings" in request_text(backend.requests[0])


def test_roles_route_to_named_backends(tmp_path: Path, captioned_images: Path) -> None:
    from xcomposer import BackendConfig

    writer, seer = ScriptedBackend(name="writer"), ScriptedBackend(name="seer", vision=True)
    cfg = EngineConfig(
        cache_dir=str(tmp_path / "c"),
        backends={"seer": BackendConfig(backend="openai", base_url="http://127.0.0.1:9/v1")},
        roles={"select": "seer", "describe": "seer"},
    )
    engine = Engine(cfg, backends={"main": writer, "seer": seer})
    art = engine.compose("Write about lighthouses", captioned_images, n_images=1, sections=2)
    assert seer.requests and all(r.all_images for r in seer.requests)
    assert writer.requests and not any(r.all_images for r in writer.requests)
    assert art.figures[0].provenance["alt"] == "model"


def test_edits(tmp_path: Path, captioned_images: Path) -> None:
    def answer(req: GenerateRequest) -> str:
        text = request_text(req)
        if "Expand this paragraph" in text:
            return "An expanded paragraph. " * 3
        return default_answer(req)

    engine = make_engine(tmp_path, ScriptedBackend(answer))
    art = engine.compose("Write about lighthouses", captioned_images, n_images=1, sections=3)
    text_ids = [i for i, p in enumerate(art.paragraphs) if p.kind == "text"]
    fig = art.figures[0]

    expanded = engine.expand_paragraph(art, text_ids[0])
    assert expanded.paragraphs[text_ids[0]].text.startswith("An expanded paragraph.")
    assert (
        art.paragraphs[text_ids[0]].text != expanded.paragraphs[text_ids[0]].text
    )  # input unchanged

    inserted = engine.insert_paragraph(art, 0, "the keeper's life")
    assert len(inserted.paragraphs) == len(art.paragraphs) + 1
    assert inserted.figures[0].after == fig.after + 1

    spot = next(i for i in text_ids if i != fig.after)
    more = engine.insert_image(art, spot, captioned_images)
    assert len(more.figures) == 2 and {f.after for f in more.figures} == {fig.after, spot}
    assert len({f.image for f in more.figures}) == 2

    replaced = engine.replace_image(art, 0, captioned_images)
    assert replaced.figures[0].image != fig.image and replaced.figures[0].caption == fig.caption

    assert engine.remove_image(art, 0).figures == []
    with pytest.raises(InputError, match="figure 5 does not exist"):
        engine.remove_image(art, 5)
    with pytest.raises(InputError, match="paragraph 99 does not exist"):
        engine.rewrite_paragraph(art, 99)
    with pytest.raises(InputError, match="is a heading"):
        engine.rewrite_paragraph(art, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instruction": "  "}, "the instruction is empty"),
        ({"n_images": "lots"}, "n_images must be 'auto' or a whole number"),
        ({"n_images": -1}, "from 0 to 20, not -1"),
        ({"candidates": 0}, "candidates must be a whole number from 1 to 10, not 0"),
    ],
)
def test_bad_arguments(tmp_path: Path, captioned_images: Path, kwargs: dict, message: str) -> None:
    engine = make_engine(tmp_path, ScriptedBackend())
    args = {"instruction": "Write about lighthouses"} | kwargs
    with pytest.raises(InputError, match=message):
        engine.compose(args.pop("instruction"), captioned_images, **args)


def test_no_library_and_empty_library(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, ScriptedBackend())
    with pytest.raises(InputError, match="no image library given"):
        engine.compose("Write about lighthouses")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="has no usable images"):
        engine.compose("Write about lighthouses", empty)


def test_describe_without_vision_says_how_to_configure_one(
    tmp_path: Path, captioned_images: Path
) -> None:
    engine = make_engine(tmp_path, ScriptedBackend())
    with pytest.raises(ModelError) as err:
        engine.describe(captioned_images / "cat.png")
    # the fix names the option keys every front end shares (mkdocs.yml, xcomposer.toml, CLI)
    assert "no vision model is configured" in str(err.value) and "'mmproj'" in str(err.value)
    assert "\n" not in str(err.value)


def test_describe_styles_and_question(tmp_path: Path, captioned_images: Path) -> None:
    backend = ScriptedBackend(lambda r: "Caption: A cat.\nMore text", vision=True)
    engine = make_engine(tmp_path, backend)
    assert engine.describe(captioned_images / "cat.png", style="alt") == "A cat."
    answer = engine.describe(captioned_images / "cat.png", "What animal is it?")
    assert "A cat." in answer
    assert "What animal is it?" in request_text(backend.requests[-1])
    with pytest.raises(InputError, match="style must be .caption. or .alt. or .explain."):
        engine.describe(captioned_images / "cat.png", style="poem")  # type: ignore[arg-type]


def test_model_text_is_escaped_in_markdown(tmp_path: Path, captioned_images: Path) -> None:
    def answer(req: GenerateRequest) -> str:
        if "caption" in request_text(req).lower() and not req.choices:
            return '<img src=x onerror="alert(1)"> lighthouse'
        return default_answer(req)

    engine = make_engine(tmp_path, ScriptedBackend(answer))
    art = engine.compose("Write about lighthouses", captioned_images, n_images=0, sections=2)
    # a spot the person chose is captioned by the model
    art = engine.insert_image(art, 1, captioned_images)
    md = art.to_markdown()
    assert "<img" not in md and "&lt;img src=x onerror=" in md
    html = art.to_markdown(figure_html=True)
    assert not re.search(r"<img[^>]*onerror", html)


def test_a_long_lived_engine_sees_images_added_later(
    tmp_path: Path, captioned_images: Path
) -> None:
    import shutil

    folder = tmp_path / "pics"
    folder.mkdir()
    engine = make_engine(tmp_path, ScriptedBackend())
    with pytest.raises(InputError, match="has no usable images"):
        engine.open_library(folder)
    shutil.copy(captioned_images / "cat.png", folder / "cat.png")
    (folder / "cat.txt").write_text("A tabby cat looking to the side\n")
    art = engine.compose("Write about cats", folder, n_images=1, sections=2)
    assert Path(art.figures[0].image).name == "cat.png"
