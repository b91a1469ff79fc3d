"""Library images copied into a site: an SVG arrives sanitised, other images byte for byte."""

from __future__ import annotations

from pathlib import Path

from mkdocs_xcomposer.site_files import SiteImages

HOSTILE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="40" height="20" onload="alert(1)"><title>Countdown</title>'
    "<script>alert(2)</script>"
    '<image xlink:href="http://example.com/track.png" width="10" height="10"/>'
    '<rect width="40" height="20" fill="red" onclick="alert(3)"/></svg>'
)


def test_an_svg_copied_into_docs_has_no_script_handler_or_external_reference(
    tmp_path: Path,
) -> None:
    library = tmp_path / "photos"
    library.mkdir()
    (library / "diagram.svg").write_text(HOSTILE_SVG, encoding="utf-8")
    (library / "photo.png").write_bytes(b"\x89PNG not really, copied as is")
    docs = tmp_path / "docs"
    images = SiteImages(docs, (library,))
    copied = images.copy_into_docs(library / "diagram.svg")
    assert copied is not None and copied.is_relative_to(docs)
    text = copied.read_text(encoding="utf-8")
    assert "<rect" in text and "Countdown" in text
    for bad in ("<script", "onload", "onclick", "http://example.com"):
        assert bad not in text
    png = images.copy_into_docs(library / "photo.png")
    assert png is not None and png.read_bytes() == (library / "photo.png").read_bytes()
