"""A real `mkdocs build` on the embedded default model (SmolLM2-135M on llama.cpp)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mkdocs_sites import Elements, build_site, main_content, make_site

PAGE = """\
# Field notes

/// compose | Rockets at dawn
    max_images: 1
    sections: 2
    words: 40

Write a short article about watching a rocket launch at dawn.
///
"""


@pytest.mark.slow
def test_embedded_model_composes_a_page_then_the_cache_builds_it_without_a_model(
    tmp_path: Path, captioned_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("llama_cpp", reason="the llamacpp extra is not installed")
    config = make_site(tmp_path, {"notes/dawn.md": PAGE}, images=captioned_images)
    plugin = build_site(config)
    assert plugin.counts == {"composed": 1}
    assert plugin.model_calls() > 0
    out = tmp_path / "site/notes/dawn/index.html"
    first = out.read_bytes()
    content = main_content(first.decode())
    assert '<h2 id="rockets-at-dawn">Rockets at dawn</h2>' in content
    assert content.count("<h3") == 2, "two sections"
    (img,) = Elements(content).all("img")
    assert img["alt"].strip()
    assert (out.parent / img["src"]).resolve().is_file()

    monkeypatch.setenv("CI", "1")  # frozen: the committed cache is all it has
    plugin = build_site(config)
    assert plugin.counts == {"cached": 1}
    assert plugin.model_calls() == 0
    assert out.read_bytes() == first
