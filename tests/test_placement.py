"""Placement logic and article hygiene: each leak and truncation the issue found has a test here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scripted import ScriptedBackend, default_answer, request_text
from xcomposer import Article, Engine, EngineConfig
from xcomposer.backends.base import GenerateRequest
from xcomposer.compose import insert_figures, split_paragraphs
from xcomposer.placement import Evidence, assign, place_by_evidence
from xcomposer.recipes import RECIPE_NAMES, load_recipe
from xcomposer.text_cleaning import caption_text, echoes_prompt, heading_text, remove_scaffolding


def _evidence(scores: list[list[float]]) -> Evidence:
    matrix = np.array(scores, dtype=float)
    return Evidence(list(range(len(scores))), [None] * matrix.shape[1], matrix, matrix)  # type: ignore[list-item]


# -- the assignment ----------------------------------------------------------------
def test_a_picture_that_fits_later_is_not_spent_early() -> None:
    # image 0 fits paragraph 0 a little and paragraph 1 well; image 1 fits only paragraph 0:
    # greedy would give image 0 to paragraph 1 and then nothing good is left... the global
    # optimum gives each paragraph the picture that fits it.
    ev = _evidence([[0.70, 0.65], [0.72, 0.10]])
    assert assign(ev, 2) == [(0, 1), (1, 0)]


def test_a_fixed_count_is_exact_and_takes_the_best_pairs() -> None:
    ev = _evidence([[0.1, 0.2, 0.0], [0.9, 0.1, 0.0], [0.1, 0.1, 0.3], [0.0, 0.8, 0.1]])
    assert assign(ev, 2) == [(1, 0), (3, 1)]
    assert assign(ev, 9) == [(1, 0), (2, 2), (3, 1)]  # no more than there are images
    assert assign(ev, 0) == []


def test_auto_places_only_above_the_threshold_and_never_a_picture_twice() -> None:
    ev = _evidence([[0.9, 0.3], [0.85, 0.2], [0.2, 0.35]])
    assert assign(ev, None, 0.4) == [(0, 0)]
    assert assign(ev, None, 0.3) == [(0, 0), (2, 1)]
    assert assign(_evidence([[0.1, 0.2]]), None, 0.4) == []


# -- hygiene: headings, captions, scaffolding --------------------------------------
def test_a_heading_cut_at_its_length_limit_ends_on_a_word() -> None:
    cut = "Why a client should give up waiting for a slow-to-c"
    assert heading_text(cut, cut=True) == "Why a client should give up waiting"
    long = "Why a client should give up waiting for a slow-to-connect server after a while"
    shortened = heading_text(long, max_chars=51)
    assert long.startswith(shortened) and len(shortened) <= 51
    assert long[len(shortened)] == " " and not shortened.endswith((" a", " for"))
    assert heading_text("What it is") == "What it is"  # a whole heading keeps its words


def test_captions_are_whole_sentences_or_clean_phrases_without_markdown() -> None:
    assert caption_text("The new timeout no longer cuts a", truncated=True) == (
        "The new timeout no longer cuts"
    )
    assert caption_text("Call `retry()` on **slow** [servers](http://x). Then more.") == (
        "Call retry() on slow servers."
    )
    long = (
        "A lighthouse on a rocky coast, its beam sweeping over the dark sea while ships "
        "pass far out beyond the harbour wall every night"
    )
    assert caption_text(long) == "A lighthouse on a rocky coast"


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_every_recipe_field_echoed_back_is_taken_out(name: str) -> None:
    recipe = load_recipe(name)
    for lang, table in recipe.texts.items():
        real = "灯塔在夜里为船只照明。" if lang == "zh" else "Lighthouses guide ships at night."
        for task, template in table.items():
            filled = re.sub(r"\{[a-z_]+\}", "x", template).replace("<image>", "")
            literals = [
                line.strip()
                for piece in re.split(r"\{[a-z_]+\}", template.replace("<image>", ""))
                for line in piece.splitlines()
                if len(line.strip()) >= 12
            ]
            if not literals:
                continue  # e.g. "{letter}. <image>": nothing to echo
            cleaned = remove_scaffolding(filled + "\n" + real, [template])
            assert real in cleaned, (name, lang, task, cleaned)
            for literal in literals:
                assert literal not in cleaned, (name, lang, task, literal)


def test_short_answers_that_echo_a_prompt_are_recognised() -> None:
    caption_zh = load_recipe("chat").text("caption", "zh")
    assert echoes_prompt("15字以内的标题", [caption_zh])
    assert not echoes_prompt("夜里灯塔的光照亮海面", [caption_zh])
    caption_en = load_recipe("chat").text("caption", "en")
    assert echoes_prompt("Write a short caption (under 15 words) saying what", [caption_en])
    assert not echoes_prompt("A lighthouse beam over the sea at night", [caption_en])


def _echoing_backend() -> ScriptedBackend:
    """A model that repeats its prompt's scaffolding in every free-text answer."""

    def answer(req: GenerateRequest) -> str:
        if req.choices is not None or req.json_schema is not None:
            return default_answer(req)
        prompt = request_text(req)
        zh = "章节" in prompt or "标题" in prompt
        body = "灯塔在夜里为船只照明。" if zh else "Lighthouses guide ships at night."
        return prompt + "\n" + body

    return ScriptedBackend(answer)


@pytest.mark.parametrize("instruction", ["Write about lighthouses", "写一篇关于灯塔的短文"])
def test_no_prompt_scaffolding_reaches_the_article(
    tmp_path: Path, captioned_images: Path, instruction: str
) -> None:
    backend = _echoing_backend()
    engine = Engine(EngineConfig(cache_dir=str(tmp_path / "c")), backends={"main": backend})
    article = engine.compose(instruction, captioned_images, n_images=2, sections=2)
    # a picture without a description of its own gets a model caption: make one here too
    article = engine.insert_image(
        article,
        next(i for i, p in enumerate(article.paragraphs) if p.kind == "text"),
        captioned_images,
    )
    page = article.to_markdown() + "\n".join(f.caption for f in article.figures)
    recipe = load_recipe("chat")
    for lang in ("en", "zh"):
        for task, template in recipe.texts[lang].items():
            for literal in re.split(r"\{[a-z_]+\}", template):
                for line in literal.splitlines():
                    piece = line.strip()
                    if len(piece) >= 16 or len(re.findall(r"[\u4e00-\u9fff]", piece)) >= 6:
                        assert piece not in page, (lang, task, piece)
    assert 'The previous section ended: "' not in page
    assert "15字以内的标题" not in page
    assert all(p.text.strip() for p in article.paragraphs)


def test_a_chinese_instruction_answered_in_english_is_asked_again_then_warned(
    tmp_path: Path, captioned_images: Path, caplog
) -> None:
    def answer(req: GenerateRequest) -> str:
        if req.choices is not None or req.json_schema is not None:
            return default_answer(req)
        prompt = request_text(req)
        if "现在要写的一节是" in prompt:  # a section
            return "The Great Wall is long." if "只用" not in prompt else "长城很长，修建了很多年。"
        return default_answer(req)

    backend = ScriptedBackend(answer)
    engine = Engine(EngineConfig(cache_dir=str(tmp_path / "c")), backends={"main": backend})
    article = engine.compose("写一篇关于长城的短文", captioned_images, n_images=0, sections=2)
    sections = [p.text for p in article.paragraphs if p.kind == "text"]
    assert sections and all("长城" in s for s in sections)
    assert "language" not in article.provenance

    def stubborn(req: GenerateRequest) -> str:
        if req.choices is not None or req.json_schema is not None:
            return default_answer(req)
        return "The Great Wall is long."

    engine = Engine(
        EngineConfig(cache_dir=str(tmp_path / "d")), backends={"main": ScriptedBackend(stubborn)}
    )
    with caplog.at_level("WARNING", logger="xcomposer"):
        article = engine.compose("写一篇关于长城的短文", captioned_images, n_images=0, sections=2)
    assert "not in Chinese" in article.provenance["language"]
    warnings = [r for r in caplog.records if "another language" in r.getMessage()]
    assert len(warnings) == 1


# -- illustrating a person's Markdown ----------------------------------------------
def test_insert_figures_keeps_every_character(tmp_path: Path, captioned_images: Path) -> None:
    text = (
        "# Night at sea\r\n\r\n\r\nSailors   feared the rocky coast at night.  \r\n"
        "A second line of the same paragraph.\r\n\r\n```\r\nbeam = rotate(lamp)\r\n\r\n```\r\n\r\n"
        "A lighthouse beam sweeps the water so ships can see the danger.\r\n"
    )
    engine = Engine(
        EngineConfig(cache_dir=str(tmp_path / "c")), backends={"main": ScriptedBackend()}
    )
    article = engine.illustrate(text, captioned_images, n_images=2)
    assert len(article.figures) == 2
    out = insert_figures(text, article)
    assert out != text
    stripped = out
    for _fig in article.figures:
        stripped = re.sub(r"\r\n\r\n!\[[^\]]*\]\([^)]*\)\r\n\*[^\r\n]*\*", "", stripped, count=1)
    assert stripped == text
    assert [p.text for p in split_paragraphs(text)] == [p.text for p in article.paragraphs]


def test_insert_figures_writes_figures_a_front_ends_own_way(
    tmp_path: Path, captioned_images: Path
) -> None:
    text = "Sailors feared the rocky coast.\r\n\r\nA lighthouse beam sweeps the water.\r\n"
    engine = Engine(
        EngineConfig(cache_dir=str(tmp_path / "c")), backends={"main": ScriptedBackend()}
    )
    article = engine.illustrate(text, captioned_images, n_images=2)
    out = insert_figures(text, article, figure_markdown=lambda f: f"[{Path(f.image).name}]\n!")
    names = [Path(f.image).name for f in article.figures]
    assert [m.group(1) for m in re.finditer(r"\r\n\r\n\[([^\]]+)\]\r\n!", out)] == names
    assert re.sub(r"\r\n\r\n\[[^\]]+\]\r\n!", "", out) == text  # the person's text, every byte


def test_removing_scaffolding_keeps_dotted_words_and_versions_intact() -> None:
    # The sentence splitter once cut after every full stop and joined with spaces:
    # "pypi.org" became "pypi. org" and "1.6.1" became "1. 6. 1".
    text = "Install mkdocs 1.6.1 from pypi.org. Set config.site_name next!  Done?"
    assert remove_scaffolding(text, ['The previous section ended: "{tail}"']) == (
        "Install mkdocs 1.6.1 from pypi.org. Set config.site_name next! Done?"
    )
    assert remove_scaffolding("长城很长。它建于明朝！", ["{x}"]) == "长城很长。它建于明朝！"


def test_a_heading_the_model_repeats_before_its_section_is_removed() -> None:
    from xcomposer.text_cleaning import without_heading

    assert without_heading("What It Is: The day begins.", "What It Is") == "The day begins."
    assert without_heading("## What it is\n\nThe day.", "What It Is") == "The day."
    assert without_heading("长城：它很长。", "长城") == "它很长。"
    # a sentence that merely starts with the heading's words keeps them
    text = "What it is like to fly is hard to say."
    assert without_heading(text, "What It Is") == text


def test_a_library_with_every_image_used_says_so_with_counts(
    tmp_path: Path, captioned_images: Path
) -> None:
    engine = Engine(
        EngineConfig(cache_dir=str(tmp_path / "c")), backends={"main": ScriptedBackend()}
    )
    library = engine.open_library(captioned_images)
    every = {m.sha256 for m in library.search("a picture", k=len(library))}
    assert len(every) == len(library)
    article = Article(title="", paragraphs=split_paragraphs("Ships need light.\n"), instruction="")
    placements, why = place_by_evidence(article, library, 1, exclude=every)
    assert placements == []
    assert why == (
        f"no unused image left in the library ({len(library)} image(s), "
        f"{len(library)} already on the page)"
    )
