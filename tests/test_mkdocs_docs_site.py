"""The project's own documentation builds frozen, from its committed cache: no model needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from mkdocs_sites import build_site, main_content

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_from_the_committed_cache_without_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "1")

    plugin = build_site(ROOT / "mkdocs.yml", site_dir=str(tmp_path / "site"))
    assert plugin.workshop.settings.frozen
    assert plugin.counts["cached"] >= 2 and plugin.counts["composed"] == 0
    assert plugin.model_calls() == 0
    page = (tmp_path / "site/showcase/index.html").read_text(encoding="utf-8")
    assert main_content(page).count('<figure class="xcomposer-figure">') >= 2
