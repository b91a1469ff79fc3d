"""Model text is untrusted, and pages without blocks are untouched.

Sanitising: a scripted backend answers with what a real model cannot be made to
write on demand (script tags, event handlers, javascript:/data: links, raw
iframes, Jinja, pymdownx block openers, snippet includes), in a site with the
Markdown extensions that would act on them.  Transparency: pages without blocks
are byte-identical to a build without the plugin, default theme and material.
"""

from __future__ import annotations

import filecmp
import html
import json
import shutil
from pathlib import Path

import pytest
from mkdocs_sites import Elements, build_site, main_content, make_site, output_path
from scripted import ScriptedBackend, default_answer

EVIL = (
    "Rockets <script>alert('script')</script> fly. <img src=x onerror=\"alert('onerror')\"> "
    "[click me](javascript:alert('link')) <iframe src=\"https://evil.example/\"></iframe> "
    "![pixel](data:image/png;base64,iVBORw0KGgo=) ![track](https://evil.example/t.png) "
    '{{ config.site_name }} {: onclick="alert(1)" }\n'
    "/// details | Open me\n    type: warning\n\nhidden inside\n///\n"
    '!!! danger "Admonition"\n    made by the model\n'
    '--8<-- "secret.txt"\n'
    "<a href='javascript:alert(2)' onclick='alert(3)'>plain link</a>\n"
    "```\nan open fence that never closes\n"
)
# Within the outline schema's pattern (an uppercase start, no braces or brackets): an
# answer outside it is now rejected before it reaches a page.
EVIL_HEADING = "Launch <script>alert('heading')</script> day"


def evil_answer(request):  # noqa: ANN001, ANN201
    if request.json_schema is not None:
        n = request.json_schema.get("minItems", 1)
        return json.dumps([EVIL_HEADING[:60]] + [f"Part {i}" for i in range(1, n)])
    if request.choices is not None:
        return default_answer(request)
    return EVIL


PAGE = """\
/// compose
    max_images: 1
    sections: 2

Write about rockets.
///
"""


@pytest.mark.parametrize("theme", ["mkdocs", "material"])
def test_model_html_scripts_and_links_never_reach_the_page(
    tmp_path: Path, captioned_images: Path, theme: str
) -> None:
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT\n")
    extensions = [
        "attr_list",
        "md_in_html",
        "admonition",
        "toc",
        "pymdownx.superfences",
        "pymdownx.blocks.details",
        "pymdownx.blocks.admonition",
        {"pymdownx.snippets": {"base_path": [str(tmp_path)], "check_paths": False}},
    ]
    config = make_site(
        tmp_path,
        {"index.md": "# Home\n", "news/launch.md": PAGE},
        images=captioned_images,
        theme=theme,
        extra={"markdown_extensions": extensions},
    )
    build_site(config, {"main": ScriptedBackend(evil_answer)})
    page = (tmp_path / "site" / output_path("news/launch.md")).read_text()
    content = main_content(page)
    elements = Elements(content)
    tags = {tag for tag, _ in elements.tags}
    assert "script" not in tags and "iframe" not in tags
    assert "details" not in tags, "a /// details opener in model text stays text"
    for tag, attrs in elements.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}=...> survived"
            if name in ("href", "src"):
                assert not value.strip().lower().startswith(("javascript:", "data:")), value
    # The whole page (navigation and table of contents included) runs no model script.
    whole = Elements(page)
    assert not any("alert(" in s for s in whole.scripts)
    assert "<script>alert" not in page
    assert "TOP-SECRET-CONTENT" not in page, "a snippet include in model text is not followed"
    assert "Fixture site" not in content, "no Jinja in model text"
    imgs = elements.all("img")
    assert [i["src"] for i in imgs] == ["../../assets/xcomposer/images/rocket.jpg"], (
        "the figure is the block's only image: model text shows no image of its own"
    )
    assert "{{ config.site_name }}" in html.unescape(content), "braces are shown as text"
    # The text itself is still there, as text, and so is the figure.
    assert "&lt;script&gt;" in content
    assert "an open fence that never closes" in content
    assert content.count("<figure") == 1 and content.count("admonition danger") == 0


def test_model_caption_and_alt_are_escaped(tmp_path: Path, captioned_images: Path) -> None:
    def answer(request):  # noqa: ANN001, ANN202
        if request.json_schema is not None or request.choices is not None:
            return default_answer(request)
        return '"><img src=x onerror=alert(1)> caption'

    # Without the writer's captions the model writes the figure's caption and alt text.
    bare = tmp_path / "bare"
    shutil.copytree(captioned_images, bare, ignore=shutil.ignore_patterns("*.txt"))
    config = make_site(tmp_path, {"index.md": PAGE}, images=bare)
    build_site(config, {"main": ScriptedBackend(answer)})
    content = main_content((tmp_path / "site/index.html").read_text())
    imgs = Elements(content).all("img")
    assert len(imgs) == 1 and set(imgs[0]) <= {
        "src",
        "alt",
        "width",
        "height",
        "loading",
        "decoding",
    }
    assert "&lt;img src=x onerror=alert(1)&gt; caption</figcaption>" in content


PLAIN_PAGES = {
    "index.md": "# Home\n\nSome *text* with a [link](guide/setup.md).\n\n![A cat](img/cat.png)\n",
    "guide/setup.md": (
        "# Setup\n\n```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "<div markdown>raw <b>html</b></div>\n\n![](../img/cat.png)\n"
    ),
    "guide/deep/notes.md": "---\ntitle: Notes\n---\n\nNotes with front matter.\n\n## Part\n\nText.\n",
}


@pytest.mark.parametrize("theme", ["mkdocs", "material"])
@pytest.mark.parametrize("use_directory_urls", [True, False])
def test_pages_without_blocks_are_byte_identical_to_a_build_without_the_plugin(
    tmp_path: Path, captioned_images: Path, theme: str, use_directory_urls: bool
) -> None:
    pages = dict(PLAIN_PAGES)
    # A page with a block in the same site; its title is fixed, as the navigation
    # on every page shows it (the composed title would differ from the file name).
    pages["story.md"] = "---\ntitle: Story\n---\n\n" + PAGE
    common = {
        "theme": theme,
        "use_directory_urls": use_directory_urls,
        "extra": {"markdown_extensions": ["attr_list", "md_in_html", "toc", "tables"]},
    }
    with_plugin = make_site(tmp_path / "a", pages, images=captioned_images, **common)
    without = make_site(tmp_path / "b", pages, images=captioned_images, with_plugin=False, **common)
    for root in (tmp_path / "a", tmp_path / "b"):
        (root / "docs/img").mkdir()
        (root / "docs/img/cat.png").write_bytes((captioned_images / "cat.png").read_bytes())
    build_site(with_plugin, {"main": ScriptedBackend()})
    # Without the plugin the block stays as written: only the other pages are compared.
    build_site(without)
    for src in PLAIN_PAGES:
        out = output_path(src, use_directory_urls)
        a, b = tmp_path / "a/site" / out, tmp_path / "b/site" / out
        assert a.read_bytes() == b.read_bytes(), f"{out} differs"
    # Static files the theme ships are untouched as well.
    assert filecmp.cmp(
        tmp_path / "a/site/img/cat.png", tmp_path / "b/site/img/cat.png", shallow=False
    )
