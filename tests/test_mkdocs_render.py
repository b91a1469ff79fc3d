"""Page Markdown from a stored block: the engine's one Markdown policy, as the page gets it."""

from __future__ import annotations

from mkdocs_xcomposer.render import article_markdown


def test_a_stored_article_renders_by_the_engines_policy() -> None:
    from xcomposer import Article

    stored = {
        "format": 1,
        "title": "Lights <b>",
        "paragraphs": [
            {"text": "History", "kind": "heading"},
            {"text": "Towers {{ x }}.\n\nKeepers <i>.", "kind": "text"},
        ],
        "figures": [
            {"after": 1, "image": "/site/a.png", "caption": "c", "alt": "a", "sha256": "5e"}
        ],
        "instruction": "Write about lighthouses",
    }
    page = article_markdown(stored, lambda fig: f"[figure {fig['image']} {fig['sha256']}]", 1)
    assert page == (
        "# Lights \u2039b\u203a\n\n## History\n\nTowers &#123;&#123; x &#125;&#125;.\n\n"
        "Keepers &lt;i&gt;.\n\n[figure /site/a.png 5e]"
    )
    engine_parts = Article.from_dict(stored).markdown_parts(1)
    assert page.startswith("\n\n".join(text for text, _o, _f in engine_parts))
    # an illustrate block: the person's text exactly as the page has it, no title
    mine = {"title": "", "paragraphs": [{"text": "My *own* <b>text</b>", "kind": "text"}]}
    assert article_markdown(mine, str, 0, writer_text=True) == "My *own* <b>text</b>"
