"""The MkDocs plugin in real `mkdocs build` runs: output, URLs, cache, frozen and strict modes.

Answers come from a scripted backend (the embedded model's real run is in
test_mkdocs_real_model.py); images are real photos with sidecar captions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mkdocs.exceptions import Abort, PluginError
from mkdocs_sites import Elements, build_site, main_content, make_site, output_path, page_html
from scripted import ScriptedBackend
from xcomposer.backends.base import Backend

COMPOSE = """\
/// compose | Rockets and coffee
    max_images: 2
    sections: 2
    words: 30

Write a short article about rockets, and about the coffee engineers drink at launch.
///
"""

ILLUSTRATE = """\
# A day at the launch site

/// illustrate
    max_images: 1

The engineers arrive before dawn and check the rocket on the pad.

Later they share a cup of coffee while the countdown starts.
///
"""


class NoModel(Backend):
    """A backend that must not be called: frozen and cached builds prove it."""

    has_vision = False

    def generate(self, request, on_text=None):  # noqa: ANN001, ANN201
        raise AssertionError("the model was called")

    def fingerprint(self) -> dict:
        return {"backend": "scripted", "vision": False}

    def health(self):  # noqa: ANN201
        raise AssertionError("not used")


def images_in(page: str) -> list[dict[str, str]]:
    return Elements(main_content(page)).all("img")


@pytest.mark.parametrize("theme", ["mkdocs", "material"])
@pytest.mark.parametrize("use_directory_urls", [True, False])
def test_nested_pages_get_figures_whose_urls_resolve(
    tmp_path: Path, captioned_images: Path, theme: str, use_directory_urls: bool
) -> None:
    pages = {
        "index.md": "# Home\n\nNo blocks here.\n",
        "guide/launch/day.md": COMPOSE,
        "guide/story.md": ILLUSTRATE,
    }
    config = make_site(
        tmp_path, pages, images=captioned_images, theme=theme,
        use_directory_urls=use_directory_urls,
    )  # fmt: skip
    backend = ScriptedBackend()
    build_site(config, {"main": backend})
    site = tmp_path / "site"
    for src, expected in (("guide/launch/day.md", 2), ("guide/story.md", 1)):
        page = page_html(site, src, use_directory_urls)
        figures = main_content(page).count('<figure class="xcomposer-figure">')
        assert figures == expected, src
        page_dir = (site / output_path(src, use_directory_urls)).parent
        for img in images_in(page):
            assert img["alt"].strip(), "every figure has alt text"
            assert img["loading"] == "lazy"
            target = (page_dir / img["src"]).resolve()
            assert target.is_file(), f"{src}: {img['src']} does not resolve to a file"
            assert target.is_relative_to(site.resolve())
            assert target.parent.name == "images", "library images are copied into the site"
    story = main_content(page_html(site, "guide/story.md", use_directory_urls))
    assert "The engineers arrive before dawn and check the rocket on the pad." in story
    assert "<figcaption>" in story


def test_second_build_makes_no_model_call_and_gives_the_same_html(
    tmp_path: Path, captioned_images: Path
) -> None:
    config = make_site(tmp_path, {"index.md": COMPOSE}, images=captioned_images)
    backend = ScriptedBackend()
    plugin = build_site(config, {"main": backend})
    first = (tmp_path / "site/index.html").read_bytes()
    calls = len(backend.requests)
    assert calls > 0 and plugin.counts["composed"] == 1
    plugin = build_site(config, {"main": NoModel()})
    assert plugin.counts == {"cached": 1}
    assert (tmp_path / "site/index.html").read_bytes() == first
    # An edit to the instruction is a miss: exactly that block is composed again.
    page = tmp_path / "docs/index.md"
    page.write_text(COMPOSE.replace("short article", "brief article"), encoding="utf-8")
    backend2 = ScriptedBackend()
    plugin = build_site(config, {"main": backend2})
    assert plugin.counts["composed"] == 1 and len(backend2.requests) > 0


def test_entries_no_page_uses_are_removed_after_a_full_build(
    tmp_path: Path, captioned_images: Path
) -> None:
    config = make_site(tmp_path, {"index.md": COMPOSE}, images=captioned_images)
    build_site(config, {"main": ScriptedBackend()})
    entries = lambda: sorted((tmp_path / "xcomposer-cache/blocks").rglob("*.json"))  # noqa: E731
    old = entries()
    assert len(old) == 1
    (tmp_path / "docs/index.md").write_text(COMPOSE.replace("Rockets", "Launches"))
    build_site(config, {"main": ScriptedBackend()})
    new = entries()
    assert len(new) == 1 and new != old
    gitignore = (tmp_path / "xcomposer-cache/.gitignore").read_text()
    assert "answers/" in gitignore and "blocks" not in gitignore.split("\n", 1)[1]


def test_frozen_build_fails_on_a_miss_with_the_page_line_and_the_command(
    tmp_path: Path, captioned_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = "Intro line.\n\n" + COMPOSE
    config = make_site(tmp_path, {"index.md": page}, images=captioned_images)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(PluginError) as err:
        build_site(config, {"main": NoModel()})
    message = str(err.value)
    assert "index.md:3:" in message
    assert "XCOMPOSER_FROZEN=0 mkdocs build -f" in message
    assert not (tmp_path / "site/index.html").exists(), "no page is written"
    # Filled once with a model (the command's override), the frozen build passes without one.
    monkeypatch.setenv("XCOMPOSER_FROZEN", "0")
    build_site(config, {"main": ScriptedBackend()})
    monkeypatch.delenv("XCOMPOSER_FROZEN")
    plugin = build_site(config, {"main": NoModel()})
    assert plugin.counts == {"cached": 1}
    assert "<figure" in (tmp_path / "site/index.html").read_text()


def test_frozen_build_needs_no_model_installed(tmp_path: Path, captioned_images: Path) -> None:
    """A committed cache builds on a machine where the model file does not exist at all."""
    config = make_site(
        tmp_path, {"index.md": COMPOSE}, images=captioned_images,
        plugin={"model": str(tmp_path / "no-such-model.gguf")},
    )  # fmt: skip
    build_site(config, {"main": ScriptedBackend()})
    html = (tmp_path / "site/index.html").read_bytes()
    plugin = build_site(config)  # no scripted backend: the configured model, which is missing
    assert plugin.counts == {"cached": 1}
    assert (tmp_path / "site/index.html").read_bytes() == html


def test_strict_mode_turns_a_warning_into_a_failed_build(
    tmp_path: Path, captioned_images: Path
) -> None:
    # Two images asked of a library with one: the block works, with a warning.
    (tmp_path / "one").mkdir()
    (tmp_path / "one/rocket.jpg").write_bytes((captioned_images / "rocket.jpg").read_bytes())
    (tmp_path / "one/rocket.txt").write_text("A rocket on the launch pad")
    text = COMPOSE.replace("max_images: 2", "max_images: 2\n    images: ../one")
    config = make_site(tmp_path, {"index.md": text}, plugin={"library": ["one"]})
    plugin = build_site(config, {"main": ScriptedBackend()})
    assert plugin.counts["composed"] == 1
    with pytest.raises(Abort, match="strict"):
        build_site(config, {"main": NoModel()}, strict=True)


def test_a_failing_block_leaves_no_page_and_no_cache_entry(
    tmp_path: Path, captioned_images: Path
) -> None:
    from xcomposer import BackendError

    def answer(request):  # noqa: ANN001, ANN202
        text = json.dumps(request.cache_payload())
        if "coffee" in text and request.json_schema is None and request.choices is None:
            raise BackendError("the server went away", "start it again")
        from scripted import default_answer

        return default_answer(request)

    pages = {"good.md": COMPOSE.replace("coffee", "tea"), "bad.md": COMPOSE}
    config = make_site(tmp_path, pages, images=captioned_images)
    with pytest.raises(PluginError, match=r"bad\.md:1: the server went away"):
        build_site(config, {"main": ScriptedBackend(answer, concurrency=2)})
    assert not list((tmp_path / "site").rglob("*.html")), "no page written"
    entries = list((tmp_path / "xcomposer-cache/blocks").rglob("*.json"))
    assert len(entries) == 1, "the good block is kept, the failed one leaves nothing"
    for entry in entries:
        json.loads(entry.read_text())


def test_describe_block_with_a_vision_backend(tmp_path: Path, captioned_images: Path) -> None:
    page = "# Cats\n\n/// describe | img/cat.png\n    style: caption\n    show_image: true\n///\n"
    (tmp_path / "docs/img").mkdir(parents=True)
    (tmp_path / "docs/img/cat.png").write_bytes((captioned_images / "cat.png").read_bytes())
    config = make_site(tmp_path, {"index.md": page})
    vision = ScriptedBackend(lambda r: "A tabby <b>cat</b> looking left", vision=True)
    build_site(config, {"main": vision})
    content = main_content((tmp_path / "site/index.html").read_text())
    assert "<figcaption>A tabby &lt;b&gt;cat&lt;/b&gt; looking left</figcaption>" in content
    assert 'src="img/cat.png"' in content


def test_alt_text_fills_only_missing_alt_and_never_a_persons(
    tmp_path: Path, captioned_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = tmp_path / "docs/img"
    img.mkdir(parents=True)
    for name in ("cat.png", "rocket.jpg"):
        (img / name).write_bytes((captioned_images / name).read_bytes())
        (img / name).with_suffix(".txt").write_text(
            (captioned_images / name).with_suffix(".txt").read_text()
        )
    page = (
        "# Pictures\n\n![](img/cat.png)\n\n![My own words](img/rocket.jpg)\n\n"
        '<img src="img/rocket.jpg" alt="">\n\n`![](img/cat.png)`\n'
    )
    config = make_site(tmp_path, {"guide/index.md": page}, plugin={"alt_text": "missing"})
    # The sidecars are in docs/img, outside any library folder: the plugin reads them anyway.
    (tmp_path / "docs/guide/img").mkdir()
    os.replace(img / "cat.png", tmp_path / "docs/guide/img/cat.png")
    os.replace(img / "cat.txt", tmp_path / "docs/guide/img/cat.txt")
    page = page.replace("![My own words](img/rocket.jpg)", "![My own words](../img/rocket.jpg)")
    page = page.replace('src="img/rocket.jpg"', 'src="../img/rocket.jpg"')
    (tmp_path / "docs/guide/index.md").write_text(page)
    build_site(config, {"main": ScriptedBackend()})
    content = main_content((tmp_path / "site/guide/index.html").read_text())
    imgs = Elements(content).all("img")
    assert imgs[0]["alt"] == "A tabby cat looking to the side"
    assert imgs[1]["alt"] == "My own words"
    assert imgs[2]["alt"] == "", "an explicit empty HTML alt is a person's choice"
    assert "<code>![](img/cat.png)</code>" in content
    # From the cache, with no model at all:
    monkeypatch.setenv("CI", "1")
    plugin = build_site(config, {"main": NoModel()})
    assert plugin.counts["alt filled"] == 1


@pytest.mark.parametrize(
    ("page", "line", "message"),
    [
        ("/// compose | T\n    max_images: [1\n\nWrite.\n///\n", 2, "not valid YAML"),
        ("/// compose | T\n    colour: red\n\nWrite.\n///\n", 1, "unknown option 'colour'"),
        ("Intro.\n\n/// compose | T\n\nWrite about it.\n", 3, "not closed"),
        ("/// compose\n    images: nowhere\n\nWrite.\n///\n", 1, "'nowhere' does not exist"),
        ("/// compose\n    images: ../../etc\n\nWrite.\n///\n", 1, "outside docs_dir"),
        ("/// describe | ../../../../../etc/passwd\n///\n", 1, "outside docs_dir"),
        ("/// compose | Empty\n    max_images: 1\n\n///\n", 1, "instruction is empty"),
        ("/// compose\n    sections: 99\n\nWrite.\n///\n", 1, "sections must be"),
        # bounds come from the engine's option models, in the block's own option names
        ("/// illustrate\n    max_images: -1\n\nText.\n///\n", 1, "max_images must be 'auto' or"),
        ("/// compose\n    candidates: 50\n\nWrite.\n///\n", 1, "candidates must be a whole"),
        ("/// compose\n    backend: gpu\n\nWrite.\n///\n", 1, "backend 'gpu' is not configured"),
    ],
)
def test_bad_blocks_fail_with_page_and_line(
    tmp_path: Path, captioned_images: Path, page: str, line: int, message: str
) -> None:
    config = make_site(
        tmp_path, {"index.md": "# Fine\n", "sub/bad.md": page}, images=captioned_images
    )
    backend = ScriptedBackend()
    with pytest.raises(PluginError) as err:
        build_site(config, {"main": backend})
    assert f"sub/bad.md:{line}:" in str(err.value)
    assert message in str(err.value)
    assert backend.requests == [], "nothing composed"
    assert not list((tmp_path / "site").rglob("*.html")), "nothing written"


def test_several_bad_blocks_are_reported_together(tmp_path: Path, captioned_images: Path) -> None:
    pages = {
        "a.md": "/// compose\n    colour: red\n\nWrite.\n///\n",
        "b.md": "/// illustrate\n    images: ../../x\n\nText.\n///\n",
    }
    config = make_site(tmp_path, pages, images=captioned_images)
    with pytest.raises(PluginError) as err:
        build_site(config, {"main": ScriptedBackend()})
    assert "2 blocks failed" in str(err.value)
    assert "a.md:1:" in str(err.value) and "b.md:1:" in str(err.value)


def test_bad_plugin_config_is_a_clear_error(tmp_path: Path) -> None:
    config = make_site(tmp_path, {"index.md": "# x\n"}, plugin={"library": ["missing"]})
    with pytest.raises(PluginError, match="library folder 'missing' does not exist"):
        build_site(config)
    config = make_site(tmp_path, {"index.md": "# x\n"}, plugin={"engine": {"generation": {"x": 1}}})
    with pytest.raises(PluginError, match="unknown option 'generation.x'"):
        build_site(config)


def test_blocks_in_code_fences_and_comments_are_left_alone(
    tmp_path: Path, captioned_images: Path
) -> None:
    page = "# Syntax\n\n```markdown\n" + COMPOSE + "```\n\n<!--\n" + COMPOSE + "-->\n"
    config = make_site(tmp_path, {"index.md": page}, images=captioned_images)
    plugin = build_site(config, {"main": NoModel()})
    assert plugin.counts == {}
    assert "/// compose | Rockets and coffee" in (tmp_path / "site/index.html").read_text()


def test_front_matter_keeps_line_numbers_right(tmp_path: Path, captioned_images: Path) -> None:
    page = "---\ntitle: Hello\n---\n\n/// compose\n    colour: red\n\nWrite.\n///\n"
    config = make_site(tmp_path, {"index.md": page}, images=captioned_images)
    with pytest.raises(PluginError, match=r"index\.md:5:"):
        build_site(config, {"main": ScriptedBackend()})


def test_a_cached_rebuild_does_not_start_the_engine_until_a_model_file_changes(
    tmp_path: Path, captioned_images: Path
) -> None:
    model = tmp_path / "models/tiny.gguf"
    config = make_site(
        tmp_path, {"index.md": COMPOSE}, images=captioned_images, plugin={"model": str(model)}
    )
    build_site(config, {"main": ScriptedBackend()})  # fills the cache
    plugin = build_site(config)  # the engine is asked once (the model file is missing) ...
    assert plugin.counts == {"cached": 1} and plugin.project.engines is not None
    plugin.on_shutdown()  # as at the end of a `mkdocs build` process
    plugin = build_site(config)  # ... and remembered by the next process: no engine at all
    assert plugin.counts == {"cached": 1} and plugin.project.engines is None
    assert (tmp_path / "xcomposer-cache/index/plugin-state.json").is_file()
    # A model file that appears (or changes) is fingerprinted again: entries made by
    # another model are composed again, here with a file that is not a model.
    model.parent.mkdir()
    model.write_bytes(b"not a gguf file" * 100)
    with pytest.raises(PluginError, match=r"index\.md:1: .*tiny\.gguf"):
        build_site(config)


def test_an_image_known_only_by_its_file_name_gets_no_alt_and_a_warning(
    tmp_path: Path, captioned_images: Path
) -> None:
    from PIL import Image

    (tmp_path / "docs/img").mkdir(parents=True)
    Image.new("RGB", (64, 48), (200, 120, 40)).save(tmp_path / "docs/img/IMG_2034.png")
    page = "# Photos\n\n![](img/IMG_2034.png)\n"
    config = make_site(tmp_path, {"index.md": page}, plugin={"alt_text": "missing"})
    build_site(config, {"main": ScriptedBackend()})
    (img,) = Elements(main_content((tmp_path / "site/index.html").read_text())).all("img")
    assert img["alt"] == "", "a file name is no description"
    with pytest.raises(Abort, match="strict"):
        build_site(config, {"main": ScriptedBackend()}, strict=True)


def test_blocks_work_beside_pymdownx_blocks(tmp_path: Path, captioned_images: Path) -> None:
    """With pymdownx.blocks enabled, its own blocks inside an illustrate body still render."""
    page = (
        "# Story\n\n//// illustrate\n    max_images: 1\n\n"
        "The engineers check the rocket before dawn.\n\n"
        "/// details | The checklist\nFuel, valves, weather.\n///\n\n"
        "Later they drink coffee while the countdown runs.\n////\n"
    )
    config = make_site(
        tmp_path,
        {"index.md": page},
        images=captioned_images,
        theme="material",
        extra={"markdown_extensions": ["pymdownx.blocks.details", "pymdownx.blocks.admonition"]},
    )
    build_site(config, {"main": ScriptedBackend()})
    content = main_content((tmp_path / "site/index.html").read_text())
    assert "<details>" in content and "<summary>The checklist</summary>" in content
    assert content.count('<figure class="xcomposer-figure">') == 1
    assert "////" not in content and "illustrate" not in content


def test_a_block_picks_a_named_backend(tmp_path: Path, captioned_images: Path) -> None:
    engine = {"backends": {"served": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1"}}}
    page = COMPOSE.replace("    sections: 2", "    sections: 2\n    backend: served")
    config = make_site(
        tmp_path, {"index.md": page}, images=captioned_images, plugin={"engine": engine}
    )
    main, served = ScriptedBackend(), ScriptedBackend(name="served")
    build_site(config, {"main": main, "served": served})
    assert served.requests and not main.requests


def test_describe_without_a_vision_model_says_how_to_get_one(
    tmp_path: Path, captioned_images: Path
) -> None:
    (tmp_path / "docs/img").mkdir(parents=True)
    (tmp_path / "docs/img/cat.png").write_bytes((captioned_images / "cat.png").read_bytes())
    config = make_site(tmp_path, {"index.md": "# Cat\n\n/// describe | img/cat.png\n///\n"})
    with pytest.raises(PluginError, match=r"index\.md:3: no vision model .*configure one") as err:
        build_site(config, {"main": ScriptedBackend(vision=False)})
    # the fix names the keys mkdocs.yml takes, not command-line flags
    assert "'mmproj'" in str(err.value) and "--" not in str(err.value)
