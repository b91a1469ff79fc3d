"""The block syntax as a writer types it: headers, YAML options, bodies, line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from xcomposer import images_without_alt, markdown_line

from mkdocs_xcomposer.blocks import BlockError, find_blocks
from mkdocs_xcomposer.render import neutralise
from mkdocs_xcomposer.spec import Folders, build_spec


def test_header_options_body_and_lines() -> None:
    page = (
        "# Title\n\nIntro.\n\n"
        "/// compose | Lighthouses of the north\n"
        "    images: [photos/coast, photos/ships]\n"
        "    max_images: 2\n"
        "\n"
        "Write about lighthouses.\n"
        "\n"
        "Mention the keepers.\n"
        "///\n"
        "\nAfter.\n"
    )
    (block,) = find_blocks(page, "guide/a.md")
    assert block.kind == "compose"
    assert block.argument == "Lighthouses of the north"
    assert block.options == {"images": ["photos/coast", "photos/ships"], "max_images": 2}
    assert block.body == "Write about lighthouses.\n\nMention the keepers."
    assert (block.line, block.end_line) == (5, 12)
    assert block.where == "guide/a.md:5"
    assert page[block.start : block.end].startswith("/// compose")
    assert page[block.end :] == "\nAfter.\n"


def test_fences_comments_and_other_blocks_are_not_ours() -> None:
    page = (
        "```\n/// compose\nnot a block\n///\n```\n\n"
        "<!-- /// compose\ncommented out\n///\n-->\n\n"
        "/// details | pymdownx's own\ncontent\n///\n\n"
        "/// illustrate\n\nText one.\n\n//// note\nnested with more slashes\n////\n\nText two.\n///\n"
    )
    blocks = find_blocks(page, "p.md")
    assert [b.kind for b in blocks] == ["illustrate"]
    assert "//// note" in blocks[0].body and blocks[0].body.endswith("Text two.")


def test_nested_pymdownx_block_with_the_same_fence_closes_first() -> None:
    page = "/// illustrate\n\nText.\n\n/// caption\nA caption\n///\n\nMore.\n///\nafter\n"
    (block,) = find_blocks(page, "p.md")
    assert block.body.endswith("More.") and block.end_line == 10


def test_code_fence_inside_a_body_may_contain_slashes() -> None:
    page = "/// illustrate\n\nText.\n\n```\n///\n```\n\nMore.\n///\n"
    (block,) = find_blocks(page, "p.md")
    assert block.body.endswith("More.")


@pytest.mark.parametrize(
    ("page", "line", "message"),
    [
        ("a\n\n/// compose\n\nWrite.\n", 3, "not closed"),
        ("/// compose\n    max_images: [1, 2\n\nWrite.\n///\n", 2, "not valid YAML"),
        ("/// compose\n    - one\n    - two\n\nWrite.\n///\n", 2, "'key: value'"),
        ("//// compose\n\nWrite.\n///\n", 1, "'////'"),
    ],
)
def test_syntax_errors_say_where(page: str, line: int, message: str) -> None:
    with pytest.raises(BlockError) as err:
        find_blocks(page, "p.md")
    assert str(err.value).startswith(f"p.md:{line}: ")
    assert message in str(err.value)


def test_front_matter_offset() -> None:
    (block,) = find_blocks("x\n/// compose\n\nWrite.\n///\n", "p.md", line_offset=3)
    assert block.line == 5


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("/// describe | a.png\n    style: alt\n    colour: red\n///\n", "unknown option 'colour'"),
        ("/// describe | a.png\n    images: x\n///\n", "unknown option 'images'"),
        ("/// compose\n    max_image: 2\n\nW.\n///\n", "did you mean 'max_images'"),
        ("/// compose\n    n_images: 2\n\nW.\n///\n", "did you mean 'max_images'"),
        ("/// compose\n    title: T\n\nW.\n///\n", "title goes in its header"),
        ("/// compose\n    title_level: 7\n\nW.\n///\n", "title_level must be a whole number"),
        ("/// compose\n    backend: 3\n\nW.\n///\n", "backend must be text"),
        ("/// describe | a.png\n    show_image: maybe\n///\n", "show_image must be on or off"),
        ("/// illustrate\n    sections: 2\n\nT.\n///\n", "unknown option 'sections'"),
    ],
)
def test_block_options_are_the_engine_models_plus_the_blocks_own(
    tmp_path: Path, page: str, message: str
) -> None:
    (block,) = find_blocks(page, "p.md")
    folders = Folders(tmp_path, tmp_path, (tmp_path,))
    with pytest.raises(BlockError, match=message) as err:
        build_spec(block, folders, set())
    assert str(err.value).startswith("p.md:1: ") and "\n" not in str(err.value)


def test_a_blocks_own_options_do_not_name_its_result(tmp_path: Path) -> None:
    folders = Folders(tmp_path, tmp_path, (tmp_path,))
    plain, leveled = (
        build_spec(find_blocks(page, "p.md")[0], folders, set())
        for page in ("/// compose\n\nW.\n///\n", "/// compose\n    title_level: 2\n\nW.\n///\n")
    )
    assert leveled.title_level == 2
    assert type(leveled.options).__name__ == "ComposeOptions"
    assert plain.key_inputs(folders) == leveled.key_inputs(folders)


def test_neutralise_keeps_text_and_defuses_structure() -> None:
    text = "/// details\n!!! note\n# not a heading\n```\n{{ x }} <b>b</b> ![i](data:x) --8<-- x"
    out = neutralise(text)
    assert not any(line.startswith(("///", "!!!", "#", "```")) for line in out.splitlines())
    assert "{" not in out and "<" not in out and "![" not in out


def test_missing_alt_is_found_only_where_empty(tmp_path) -> None:  # noqa: ANN001
    docs = tmp_path / "docs"
    (docs / "img").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (docs / "img" / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    page = docs / "index.md"
    text = (
        '![](img/a.png)\n![Mine](img/b.png)\n![](img/b.png "Title")\n'
        "`![](img/a.png)`\n```\n![](img/a.png)\n```\n![](https://x/y.png)\n![](img/none.png)\n"
        "![](../../outside.png)\n"
    )
    found = images_without_alt(text, page, docs)
    assert [(m.line, m.found.src, m.found.title) for m in found] == [
        (1, "img/a.png", ""),
        (3, "img/b.png", ' "Title"'),
    ]
    assert markdown_line("a [b] *c* <d>") == "a \\[b\\] \\*c\\* &lt;d&gt;"


def test_blocks_in_code_or_comments_are_left_alone_and_comments_in_a_body_are_text() -> None:
    page = (
        "Shown as code:\n\n```markdown\n/// compose\n\nNot a block.\n///\n```\n\n"
        "Old draft <!-- left out:\n/// compose\n\nNot a block either.\n///\n-->\n\n"
        "/// illustrate\n\nMy text <!-- a note I never closed\n///\n"
    )
    (block,) = find_blocks(page, "p.md")
    assert block.kind == "illustrate" and block.body == "My text <!-- a note I never closed"
