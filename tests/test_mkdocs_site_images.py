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


def test_a_built_site_serves_every_kind_of_svg_sanitised_and_other_images_as_they_are(
    tmp_path: Path,
) -> None:
    import gzip

    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

    library = tmp_path / "photos"
    library.mkdir()
    (library / "diagram.svg").write_text(HOSTILE_SVG, encoding="utf-8")
    (library / "packed.svgz").write_bytes(gzip.compress(HOSTILE_SVG.encode()))
    (library / "photo.png").write_bytes(b"\x89PNG not really, served as is")
    docs = tmp_path / "docs"
    docs.mkdir()
    config = MkDocsConfig()
    config.load_dict({"site_name": "t", "docs_dir": str(docs), "site_dir": str(tmp_path / "s")})
    assert config.validate() == ([], [])
    config.plugins._current_plugin = "xcomposer"  # as MkDocs sets it while a plugin's event runs
    images, files = SiteImages(docs, (library,)), Files([])
    svg = images.file_for(library / "diagram.svg", files, config).content_bytes.decode()
    svgz = gzip.decompress(images.file_for(library / "packed.svgz", files, config).content_bytes)
    for served in (svg, svgz.decode()):
        assert "<rect" in served and "<script" not in served and "onload" not in served
    png = images.file_for(library / "photo.png", files, config)
    assert png.content_bytes == (library / "photo.png").read_bytes()
