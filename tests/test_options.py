"""The one option validation: bounds, one-line messages naming the field, YAML's booleans."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scripted import ScriptedBackend
from xcomposer import (
    ComposeOptions,
    DescribeOptions,
    EditOptions,
    Engine,
    EngineConfig,
    IllustrateOptions,
    InputError,
    OptionError,
    Switch,
    TooLargeError,
    XComposerError,
    check_text_fits,
)


@pytest.mark.parametrize(
    ("values", "field", "fragments"),
    [
        ({"candidates": 11}, "candidates", ["from 1 to 10", "not 11", "default 4"]),
        ({"candidates": 0}, "candidates", ["from 1 to 10"]),
        ({"candidates": True}, "candidates", ["whole number", "not True"]),
        ({"sections": 13}, "sections", ["from 1 to 12"]),
        ({"words": 5}, "words", ["from 10 to 1000"]),
        ({"n_images": -1}, "n_images", ["'auto' or a whole number from 0 to 20"]),
        ({"n_images": "lots"}, "n_images", ["not 'lots'"]),
        ({"seed": 1.5}, "seed", ["whole number", "leave it out"]),
        ({"language": False}, "language", ["text", "not False"]),
        ({"min_score": 2}, "min_score", ["a number from -1.0 to 1.0", "or leave it out"]),
        (
            {"candidate": 3},
            "candidate",
            ["unknown option 'candidate'", "did you mean 'candidates'"],
        ),
    ],
)
def test_a_bad_compose_option_is_one_line_naming_the_field_and_the_fix(
    values: dict, field: str, fragments: list[str]
) -> None:
    with pytest.raises(OptionError) as caught:
        ComposeOptions.parse(values)
    err = caught.value
    assert isinstance(err, InputError) and isinstance(err, XComposerError)
    assert err.option == field
    message = str(err)
    assert "\n" not in message and message.count(";") >= 1  # "<what>; <fix>"
    for fragment in fragments:
        assert fragment in message, message


def test_defaults_keywords_and_none_meaning_default() -> None:
    options = ComposeOptions.parse({"candidates": None, "n_images": "2"}, sections=3)
    assert (options.n_images, options.candidates, options.sections, options.words) == (2, 4, 3, 80)
    assert ComposeOptions.parse(options) == options  # an instance passes through unchanged
    assert ComposeOptions(candidates=3).candidates == 3
    with pytest.raises(OptionError, match="candidates must be"):
        ComposeOptions(candidates=30)  # the constructor validates too


def test_each_operation_has_its_own_bounds() -> None:
    assert IllustrateOptions.parse(n_images=0).n_images == 0
    with pytest.raises(OptionError, match="unknown option 'sections'"):
        IllustrateOptions.parse(sections=2)  # illustrate keeps the writer's text
    with pytest.raises(OptionError, match="'caption' or 'alt' or 'explain'"):
        DescribeOptions.parse(style="long")
    with pytest.raises(OptionError, match="question must be text"):
        DescribeOptions.parse(question="")
    with pytest.raises(OptionError, match="from 1 to 10"):
        EditOptions.parse(candidates=32)


def test_yaml_booleans_work_where_an_option_means_on_or_off() -> None:
    class BlockOptions(ComposeOptions):  # how an adapter adds its own on/off option
        show_image: Switch = False

    written = yaml.safe_load("a: off\nb: yes\nc: 'on'\nd: 'no'\ne: true\n")
    shown = {key: BlockOptions.parse(show_image=value).show_image for key, value in written.items()}
    assert shown == {"a": False, "b": True, "c": True, "d": False, "e": True}
    with pytest.raises(OptionError, match="show_image must be on or off"):
        BlockOptions.parse(show_image=3)
    # where an option is a number or text, YAML's booleans are refused, never read as 1 or 0
    with pytest.raises(OptionError, match="language must be text"):
        ComposeOptions.parse(yaml.safe_load("language: no"))


def test_the_engine_refuses_a_bad_option_before_any_model_call(
    tmp_path: Path, captioned_images: Path
) -> None:
    backend = ScriptedBackend()
    engine = Engine(EngineConfig(cache_dir=str(tmp_path / "c")), backends={"main": backend})
    with pytest.raises(OptionError, match="candidates"):
        engine.compose("Write about lighthouses", captioned_images, candidates=11)
    with pytest.raises(OptionError, match="unknown option 'sections'"):
        engine.illustrate("A lighthouse by the sea.", captioned_images, sections=2)
    with pytest.raises(OptionError, match="style"):
        engine.describe(captioned_images / "cat.png", style="poem")
    with pytest.raises(OptionError, match="words"):
        engine.compose_many(["Write about cats"], captioned_images, words=2)
    assert backend.requests == []
    article = engine.compose(
        "Write about lighthouses", captioned_images, ComposeOptions(n_images=1, sections=2)
    )
    headings = [p for p in article.paragraphs if p.kind == "heading"]
    assert len(headings) == 2 and len(article.figures) == 1


def test_the_cli_reports_a_bad_option_in_one_line(tmp_path: Path, captioned_images: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xcomposer", "compose", "Write about cats"]
        + ["--images", str(captioned_images), "--candidates", "12"]
        + ["--cache-dir", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "xcomposer: error: candidates must be a whole number from 1 to 10, not 12; "
        "give a whole number from 1 to 10 (default 4)"
    ]


def test_a_text_must_fit_the_models_context() -> None:
    # a 4096-token model takes about 6,144 characters (3 a token, half the context)
    check_text_fits("Write about lighthouses", "instruction", 4096)
    check_text_fits("x" * 6_144, "instruction", 4096)
    with pytest.raises(TooLargeError) as err:
        check_text_fits("x" * 6_145, "text to illustrate", 4096)
    assert str(err.value) == (
        "the text to illustrate is 6,145 characters, more than this model's context takes "
        "(about 6,144); give a shorter text to illustrate, or split it into parts"
    )
    check_text_fits("x" * 6_145, "instruction", 8192)  # a longer context takes it
    for empty in ("", "  \n "):
        with pytest.raises(InputError, match="^the instruction is empty; give the instruction$"):
            check_text_fits(empty, "instruction", 4096)
