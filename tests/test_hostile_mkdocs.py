"""A real MkDocs build whose xcomposer backend is the hostile server (over HTTP, on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_server import MODEL, UNSAFE_TERMINAL, HostileServer, live_html
from mkdocs_sites import build_site, main_content, make_site, output_path

PAGE = """\
# Lighthouses

/// compose
    max_images: 1
    sections: 2

Write about lighthouses.
///
"""


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # (CI and frozen mode: conftest.py)


@pytest.mark.slow
def test_a_hostile_server_cannot_put_live_html_in_the_site(
    tmp_path: Path, captioned_images: Path
) -> None:
    extensions = ["attr_list", "md_in_html", "admonition", "toc", "pymdownx.superfences"]
    with HostileServer("payload") as server:
        plugin = {"backend": "openai", "base_url": server.base_url, "model": MODEL}
        config = make_site(
            tmp_path,
            {"index.md": PAGE},
            images=captioned_images,
            plugin=plugin,
            extra={"markdown_extensions": extensions},
        )
        build_site(config)
        assert server.requests, "the build asked the hostile server"
    page = (tmp_path / "site" / output_path("index.md")).read_text(encoding="utf-8")
    content = main_content(page)
    assert live_html(content) == []
    assert "alert(" not in "".join(
        line for line in page.splitlines() if "<script" in line and "src=" not in line
    )
    assert "THOUGHT-MARKER" not in page
    assert not UNSAFE_TERMINAL.search(content)
    assert "&lt;script&gt;" in content  # the payload is shown as text
    assert content.count("<figure") == 1
