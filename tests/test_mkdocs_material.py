"""What writers on Material sites met: titles, blog excerpts, headings, typos, alt text.

Each test is a regression test for a defect seen on real Material sites (httpx's
and sqlmodel's docs, trimmed into tests/mkdocs_sites/material_blog), built for real
with scripted answers.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError
from mkdocs_sites import Elements, build_site, main_content, make_site, output_path
from scripted import ScriptedBackend
from xcomposer import images_without_alt, with_alt

from mkdocs_xcomposer.blocks import BlockError, find_blocks

BLOG_SITE = Path(__file__).parent / "mkdocs_sites" / "material_blog"

COMPOSE = (
    "/// compose | Rockets\n    max_images: 1\n    sections: 2\n    words: 30\n\n"
    "Write about rockets.\n///\n"
)


def test_the_page_title_is_kept_when_a_block_follows_the_writers_text(
    tmp_path: Path, captioned_images: Path
) -> None:
    page = "Some words of my own first.\n\n" + COMPOSE
    config = make_site(
        tmp_path,
        {"index.md": "# Home\n", "guide.md": page},
        images=captioned_images,
        theme="material",
        extra={"nav": [{"Home": "index.md"}, {"The guide": "guide.md"}]},
    )
    build_site(config, {"main": ScriptedBackend()})
    content = main_content((tmp_path / "site" / output_path("guide.md")).read_text())
    h1 = re.findall(r"<h1[^>]*>(.*?)</h1>", content, re.DOTALL)
    assert h1 == ["The guide"], "Material's own title stays; the composed title is an h2"
    assert "<h2" in content


def test_generated_headings_have_the_sites_own_markup(
    tmp_path: Path, captioned_images: Path
) -> None:
    page = "# My page\n\n## My own section\n\n" + COMPOSE
    config = make_site(
        tmp_path,
        {"index.md": page},
        images=captioned_images,
        theme="material",
        extra={"markdown_extensions": [{"toc": {"permalink": True}}]},
    )
    build_site(config, {"main": ScriptedBackend()})
    content = main_content((tmp_path / "site/index.html").read_text())
    anchors = [a for a in Elements(content).all("a") if "headerlink" in a.get("class", "")]
    assert len(anchors) >= 3, "the composed headings get permalinks like the page's own"
    assert {tuple(sorted(a)) for a in anchors} == {("class", "href", "title")}
    assert "noopener" not in content and "xcomposer:" not in content


@pytest.mark.parametrize(
    ("page", "line", "message"),
    [
        ("# T\n\n/// compse | Typo\n\nWrite.\n///\n", 3, "did you mean '/// compose'"),
        ("/// Illustrate\n\nText.\n///\n", 1, "did you mean '/// illustrate'"),
        ("/// compose\n  max_images: 1\n\nWrite.\n///\n", 2, "indented by 2 space(s)"),
        ("/// compose\n    max_image: 1\n\nWrite.\n///\n", 1, "did you mean 'max_images'"),
    ],
)
def test_typos_and_shallow_options_are_refused_with_page_and_line(
    tmp_path: Path, captioned_images: Path, page: str, line: int, message: str
) -> None:
    config = make_site(tmp_path, {"bad.md": page}, images=captioned_images)
    with pytest.raises(PluginError) as err:
        build_site(config, {"main": ScriptedBackend()})
    assert f"bad.md:{line}:" in str(err.value) and message in str(err.value)


def test_every_bad_block_of_a_page_is_reported() -> None:
    page = "/// compse\n\nA.\n///\n\n/// compose\n  words: 3\n\nB.\n///\n\n/// describe\n"
    with pytest.raises(BlockError) as err:
        find_blocks(page, "p.md")
    text = str(err.value)
    assert "p.md:1:" in text and "p.md:7:" in text and "p.md:12:" in text


def test_pymdownx_blocks_are_not_taken_for_typos() -> None:
    page = "/// details | Mine\ncontent\n///\n\n/// note\nx\n///\n/// tab | One\ny\n///\n"
    assert find_blocks(page, "p.md") == []


def test_blocks_inside_admonitions_render(tmp_path: Path, captioned_images: Path) -> None:
    page = '# Page\n\n!!! note "Aside"\n\n    ' + COMPOSE.replace("\n", "\n    ").rstrip() + "\n"
    config = make_site(
        tmp_path,
        {"index.md": page},
        images=captioned_images,
        theme="material",
        extra={"markdown_extensions": ["admonition"]},
    )
    build_site(config, {"main": ScriptedBackend()})
    content = main_content((tmp_path / "site/index.html").read_text())
    aside = content.split('class="admonition note"', 1)[1]
    assert "<figure" in aside and "/// compose" not in content


@pytest.mark.parametrize(("written", "expected"), [(False, "off"), (True, "missing")])
def test_yaml_booleans_mean_off_and_on(
    tmp_path: Path, captioned_images: Path, written: bool, expected: str
) -> None:
    config = make_site(
        tmp_path, {"index.md": "# x\n"}, images=captioned_images, plugin={"alt_text": written}
    )
    plugin = build_site(config, {"main": ScriptedBackend()})
    assert plugin.config.alt_text == expected


def test_a_library_path_that_is_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "photos.jpg").write_bytes(b"x")
    config = make_site(tmp_path, {"index.md": "# x\n"}, plugin={"library": ["photos.jpg"]})
    with pytest.raises(PluginError, match="'photos.jpg' is a file, not a folder"):
        build_site(config)


def test_alt_text_cases_comments_angle_brackets_and_references(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "photos").mkdir(parents=True)
    for name in ("lily copy.jpg", "cat.jpg"):
        (docs / "photos" / name).write_bytes(b"\xff\xd8\xff")
    page = (
        "<!-- ![](photos/cat.jpg) an old image, commented out -->\n\n"
        "![](<photos/lily copy.jpg>)\n\n"
        "![][cat] and ![][nowhere]\n\n"
        "[cat]: photos/cat.jpg\n"
    )
    found = images_without_alt(page, docs / "index.md", docs)
    assert [(m.line, m.found.ref, m.image.name if m.image else None) for m in found] == [
        (3, "", "lily copy.jpg"),
        (5, "cat", "cat.jpg"),
        (5, "nowhere", None),
    ]
    assert with_alt(found[0], "A lily") == "![A lily](<photos/lily copy.jpg>)"
    assert with_alt(found[1], "A cat") == "![A cat][cat]"
    assert "no definition" in found[2].problem


def test_a_material_blog_shows_figures_in_excerpts_with_working_links(
    tmp_path: Path, captioned_images: Path
) -> None:
    site = tmp_path / "blog"
    shutil.copytree(BLOG_SITE, site)
    shutil.copytree(captioned_images, site / "images")
    build_site(site / "mkdocs.yml", {"main": ScriptedBackend()})
    built = site / "site"
    post = next(built.glob("blog/20*/**/index.html"))
    listing_pages = [built / "blog/index.html", *built.glob("blog/category/*/index.html")]
    listing_pages += list(built.glob("blog/archive/*/index.html"))
    assert len(listing_pages) >= 3, "index, category and archive pages"
    for page in [post, *listing_pages]:
        text = page.read_text()
        assert "xcomposer:" not in text, f"{page}: a marker leaked"
        figures = re.findall(r'<figure class="xcomposer-figure">\s*<img [^>]*src="([^"]+)"', text)
        assert figures, f"{page}: the excerpt shows the post's figure"
        for src in figures:
            assert (page.parent / src).resolve().is_file(), f"{page}: {src} does not resolve"


def test_images_that_is_a_file_says_so(tmp_path: Path, captioned_images: Path) -> None:
    page = "/// illustrate\n    images: img/photo.png\n\nText.\n///\n"
    config = make_site(tmp_path, {"bad.md": page}, images=captioned_images)
    (tmp_path / "docs/img").mkdir()
    (tmp_path / "docs/img/photo.png").write_bytes(b"x")
    with pytest.raises(PluginError, match=r"bad\.md:1: image folder 'img/photo.png' is a file"):
        build_site(config, {"main": ScriptedBackend()})


def test_plain_python_markdown_shows_a_notice_for_a_block_missing_from_the_cache(
    tmp_path: Path, captioned_images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import markdown

    from mkdocs_xcomposer.extension import XComposerExtension

    page = "# Page\n\n" + COMPOSE
    config = make_site(tmp_path, {"index.md": page}, images=captioned_images)
    ext = XComposerExtension(config_file=str(config), options={"missing": "notice"})
    html = markdown.Markdown(extensions=[ext]).convert(page)
    assert 'class="admonition failure xcomposer-notice"' in html
    assert "index.md:3: this compose block is not in the cache" in html
    assert "/// compose" not in html
    assert any("index.md:3" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
