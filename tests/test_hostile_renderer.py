"""The safe renderer, reasoning removal and schema checks, on hostile strings.

Each payload is rendered the way a reader would see it: Markdown through
Python-Markdown (with the extensions MkDocs sites enable) and markdown-it-py,
HTML through a parser, terminal text as bytes.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hostile_server import (
    ATTR_LIST,
    AUTOLINK,
    DETAILS,
    HTML_PAYLOADS,
    MD_REFERENCE,
    RAW_HTML_BLOCK,
    TERMINAL,
    UNSAFE_TERMINAL,
    live_html,
    render_both,
)
from xcomposer import (
    Article,
    Figure,
    Paragraph,
    ResultCache,
    markdown_figure,
    markdown_heading,
    markdown_line,
    markdown_paragraphs,
    markdown_text,
    sanitise_html,
    terminal_safe,
    url_path,
    write_atomic,
)
from xcomposer.answers import admit_answer, without_reasoning
from xcomposer.backends.base import GenerateRequest, Generation
from xcomposer.backends.structured import check_answer, schema_error
from xcomposer.compose import HEADING_PATTERN
from xcomposer.errors import BackendError

STRUCTURE = [
    "# heading",
    "- list item",
    "1. ordered",
    "    indented code",
    "```js",
    "~~~",
    "| a | b |",
    "!!! danger",
    "??? note",
    "/// details | x",
    "::: block",
    '=== "Tab"',
    '--8<-- "/etc/passwd"',
    "{{ config.site_name }}",
    "*[HTML]: abbreviation",
    "[^1]: footnote",
    "`code`",
    "&lt;script&gt; entity text",
]
PAYLOADS = [*HTML_PAYLOADS, RAW_HTML_BLOCK, MD_REFERENCE, *STRUCTURE, TERMINAL]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_model_text_renders_as_its_own_text_and_nothing_else(payload: str) -> None:
    import html

    for renderer, page in render_both(markdown_text(payload)).items():
        assert live_html(page) == [], renderer
        body = page.strip()
        assert body.startswith("<p>") and body.endswith("</p>") and body.count("<") == 2, (
            renderer,
            body,
        )
        shown = html.unescape(body[3:-4])
        assert shown == " ".join(terminal_safe(payload).split()), renderer


def test_every_payload_at_once_in_a_heading_and_an_image() -> None:
    text = " ".join(PAYLOADS)
    page = f"# {markdown_line(text)}\n\n![{markdown_line(text)}](x.png)\n*{markdown_line(text)}*"
    for renderer, html in render_both(page).items():
        assert live_html(html) == [], renderer
        assert html.count("<img") == 1 and html.count("<h1") == 1, renderer


def test_terminal_safe_removes_escapes_controls_and_bidi_but_keeps_text() -> None:
    text = f"Title{TERMINAL}\tnext\r\nline\x00\x07\x7f\x85\u2066x\u2069 é 中文"
    clean = terminal_safe(text)
    assert not UNSAFE_TERMINAL.search(clean)
    assert "pwned" not in clean and "Y3Vyb" not in clean  # OSC payloads go with their ESC
    assert clean == "TitleRED2Jtxt.exe\tnext\nlinex é 中文"
    # An unterminated OSC cannot swallow the rest: only its introducer goes.
    assert terminal_safe("a\x1b]0;b c d") == "a0;b c d"


def test_image_paths_are_url_encoded() -> None:
    assert url_path("imgs/light house #1 (100%) é.png") == (
        "imgs/light%20house%20%231%20%28100%25%29%20%C3%A9.png"
    )
    assert url_path("javascript:alert(1)") == "javascript%3Aalert%281%29"
    assert url_path(Path("a b") / "c.png") == "a%20b/c.png"


def test_sanitise_html_keeps_figures_and_drops_what_runs() -> None:
    fragment = (
        '<figure><img src="a.png" alt="x" onerror="alert(1)" loading="lazy">'
        f"<figcaption>ok</figcaption></figure>{DETAILS}<script>x</script>"
        '<img src="https://evil.example/p.png"><a href="javascript:alert(1)">l</a>'
        '<img src="data:image/png;base64,iVBORw0KGgo=">'
    )
    clean = sanitise_html(fragment)
    assert live_html(clean) == []
    assert '<img src="a.png" alt="x" loading="lazy">' in clean and "<figcaption>ok" in clean
    with_data = sanitise_html(fragment, data_images=True)
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in with_data
    assert live_html(with_data, allow_data_images=True) == []


def hostile_article(instruction: str = "Write about lighthouses") -> Article:
    return Article(
        title="Lights <script>x</script>" + TERMINAL,
        paragraphs=[
            Paragraph("History " + AUTOLINK, "heading"),
            Paragraph(" ".join(HTML_PAYLOADS) + "\n\n" + RAW_HTML_BLOCK + TERMINAL),
        ],
        figures=[
            Figure(1, "/imgs/a #1 (2%).png", caption=DETAILS + ATTR_LIST, alt='x"] <b>'),
        ],
        instruction=instruction,
    )


@pytest.mark.parametrize("figure_html", [False, True])
def test_article_markdown_is_safe_in_both_renderers(figure_html: bool) -> None:
    markdown = hostile_article().to_markdown(figure_html=figure_html)
    assert not UNSAFE_TERMINAL.search(markdown)
    for renderer, page in render_both(markdown).items():
        assert live_html(page) == [], renderer
        assert page.count("<img") == 1 and "/imgs/a%20%231%20%282%25%29.png" in page


def test_a_persons_text_stays_as_written_but_terminal_safe() -> None:
    article = hostile_article(instruction="")  # illustrated: the paragraphs are a person's
    article.paragraphs[1].text = "Keep *my* [link](https://example.org)" + TERMINAL
    markdown = article.to_markdown()
    assert "Keep *my* [link](https://example.org)RED2Jtxt.exe" in markdown
    assert not UNSAFE_TERMINAL.search(markdown)


def test_one_markdown_policy_for_titles_headings_and_paragraphs() -> None:
    # a heading may become the page's <title>: no < or > survives, even escaped
    assert markdown_heading("Use <b> for *bold*") == "Use \u2039b\u203a for \\*bold\\*"
    assert markdown_paragraphs("One <i>.\n\n\n# Two\r\n\r\nthree") == (
        "One &lt;i&gt;.\n\n\\# Two\n\nthree"
    )
    article = Article(
        title="Lights <script>",
        paragraphs=[Paragraph("A <b> heading", "heading"), Paragraph("First.\n\n- second")],
        instruction="Write about lighthouses",
    )
    texts = [text for text, _opens, _figures in article.markdown_parts()]
    assert texts == [
        "# Lights \u2039script\u203a",
        "## A \u2039b\u203a heading",
        "First.\n\n&#45; second",
    ]
    assert [opens for _text, opens, _figures in article.markdown_parts()] == [True, True, False]
    untitled = [text for text, _opens, _figures in article.markdown_parts(0)]
    assert untitled[0] == "## A \u2039b\u203a heading"  # no title; headings stay at h2
    for renderer, page in render_both(article.to_markdown()).items():
        assert live_html(page) == [] and page.count("<p>") == 2, renderer


@pytest.mark.parametrize("caption_paragraph", [False, True])
def test_one_figure_markdown_for_pages_and_notebook_cells(caption_paragraph: bool) -> None:
    target = url_path("imgs/a #1.png")
    figure = markdown_figure(target, 'x"] <b>', DETAILS + ATTR_LIST, caption_paragraph)
    for renderer, page in render_both(figure).items():
        assert live_html(page) == [] and page.count("<img") == 1, renderer
        assert page.count("<p>") == (2 if caption_paragraph else 1), renderer
    assert markdown_figure("attachment:ab12.png", "a cat", "") == "![a cat](attachment:ab12.png)"
    article = hostile_article()
    shown = markdown_figure(
        url_path(article.figures[0].image), 'x"] <b>', DETAILS + ATTR_LIST, True
    )
    assert (shown in article.to_markdown(caption_paragraph=caption_paragraph)) == caption_paragraph


def test_a_persons_text_is_kept_exactly_where_a_page_holds_it_already() -> None:
    text = "Keep *my* [link](https://example.org)" + TERMINAL
    article = Article("", [Paragraph(text), Paragraph("| a | b |", "verbatim")])
    assert [t for t, _o, _f in article.markdown_parts(0, exact=True)] == [text, "| a | b |"]
    assert [t for t, _o, _f in article.markdown_parts(0)][0] == terminal_safe(text)
    # the same paragraphs as model text (a composed block) are escaped, whatever `exact` says
    escaped = article.markdown_parts(0, model_written=True, exact=True)[0][0]
    assert escaped == markdown_text(text) and "[link]" not in escaped


def test_article_json_is_terminal_safe_and_lossless() -> None:
    article = hostile_article()
    text = article.to_json()
    assert not UNSAFE_TERMINAL.search(text)
    assert Article.from_json(text) == article


# -- reasoning ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        ("<think>plan <b>x</b></think>\nLighthouses guide ships.", "Lighthouses guide ships."),
        ("<THINKING>\nhm\n</THINKING>Answer", "Answer"),
        ("<reasoning>a</reasoning> one <think>b</think> two", "one  two"),
        ("Lighthouses guide ships. <think>and then I", "Lighthouses guide ships."),
        ("the prompt opened it</think>\n\nAnswer", "Answer"),
        ("<think>never closed", ""),
        ("No reasoning here.", "No reasoning here."),
    ],
)
def test_reasoning_never_reaches_the_text(answer: str, kept: str) -> None:
    assert without_reasoning(answer) == kept


def test_admitted_answers_are_clean_and_bounded() -> None:
    request = GenerateRequest(prompt="x", max_tokens=10)
    answer = admit_answer(Generation("<think>x</think>ok" + TERMINAL + "y" * 100_000), request)
    assert answer.text.startswith("okRED2Jtxt.exe") and answer.truncated
    assert len(answer.text) <= 1024 + 32 * 10


# -- structured answers ------------------------------------------------------------------

OUTLINE = {
    "type": "array",
    "items": {"type": "string", "pattern": HEADING_PATTERN},
    "minItems": 2,
    "maxItems": 2,
}


@pytest.mark.parametrize("heading", ["lowercase start", "Has # inside", "Brace { open", "Star * x"])
def test_an_outline_that_breaks_the_pattern_is_rejected(heading: str) -> None:
    request = GenerateRequest(prompt="x", json_schema=OUTLINE)
    answer, why = check_answer(json.dumps(["Good heading", heading]), request)
    assert answer is None and "does not match" in why and "$[1]" in why


def test_unique_items_and_one_of_hold() -> None:
    assert "non-unique" in schema_error(["A", "A"], {"uniqueItems": True})
    one_of = {"oneOf": [{"type": "integer"}, {"type": "number"}]}
    assert schema_error(1, one_of) is not None  # both match: oneOf means exactly one
    assert schema_error(1.5, one_of) is None


def test_a_structured_answer_after_a_think_block_parses() -> None:
    request = GenerateRequest(prompt="x", json_schema=OUTLINE)
    text = '<think>I will write {"not": "this"}</think>\n["First part", "Second part"]'
    assert check_answer(text, request) == ('["First part", "Second part"]', "")
    choice = GenerateRequest(prompt="x", choices=("A", "B"))
    assert check_answer('<think>B? no</think>{"answer": "A"}', choice) == ("A", "")


def test_the_engine_rejects_a_schema_breaking_answer_from_any_backend(tmp_path: Path) -> None:
    from scripted import ScriptedBackend
    from xcomposer import Engine, EngineConfig

    backend = ScriptedBackend(lambda request: '["lowercase", "Good one"]')
    engine = Engine(EngineConfig(cache_dir=str(tmp_path)), backends={"main": backend})
    with pytest.raises(BackendError, match="breaks the JSON schema") as err:
        engine.ask("write", GenerateRequest(prompt="x", json_schema=OUTLINE))
    assert "\n" not in str(err.value)
    assert not list(tmp_path.rglob("*.json"))  # nothing stored


# -- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "out.md", b"text")
        ResultCache(tmp_path / "cache").put({"k": 1}, {"text": "v"})
    finally:
        os.umask(old)
    files = [tmp_path / "out.md", *(tmp_path / "cache").rglob("*.json")]
    assert len(files) == 2
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_html_preview_escapes_everything_and_keeps_only_data_images_it_is_told_to():
    import base64

    from xcomposer import Article, Figure, Paragraph

    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 300_000).decode()
    article = Article(
        title='<img src=x onerror="alert(1)">',
        paragraphs=[
            Paragraph(text="<script>alert(1)</script> [link](javascript:alert(2))"),
            Paragraph(text="<b>code</b>", kind="verbatim"),
        ],
        figures=[
            Figure(after=0, image="a.png", caption="<i>c</i>", alt='" onload="x'),
            Figure(after=1, image="b.png", caption="shown as its path", alt="b"),
        ],
    )
    urls = {"a.png": png, "b.png": None}
    html = article.to_html(lambda f: urls[f.image], data_images=True, numbered=True)
    assert "<script" not in html and "<img src=x" not in html and "<b>" not in html
    from html.parser import HTMLParser

    attributes: list[str] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            attributes.extend(name for name, _ in attrs)

    Collect().feed(html)
    assert not [a for a in attributes if a.startswith("on")], "model text stays text"
    assert png in html, "a large attachment is kept whole"
    assert "<code>b.png</code>" in html and '<span class="xcomposer-index">[0]</span>' in html
    without = article.to_html(lambda f: urls[f.image])
    assert "data:image" not in without, "data images only where the caller allows them"
