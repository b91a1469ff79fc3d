"""Where descriptions come from: sidecars, captions files, embedded metadata, Markdown pages,
names, OCR and a vision captioner; and which text becomes the alt text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from library_eval import SKIMAGE_DATA
from library_eval.drawings import login_screen
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from xcomposer.cache import ResultCache
from xcomposer.config import LibraryConfig
from xcomposer.errors import BackendError, ImageError
from xcomposer.library import Library, indexer
from xcomposer.library.docs_refs import collect_references
from xcomposer.library.sources import (
    assemble,
    choose_alt,
    filename_source,
    metadata_sources,
)

XMP = """<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
  xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:Headline="Lift-off day">
 <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Rocket at dawn</rdf:li></rdf:Alt></dc:title>
 <dc:description><rdf:Alt><rdf:li xml:lang="x-default">A rocket waits on the pad</rdf:li></rdf:Alt></dc:description>
 <dc:subject><rdf:Bag><rdf:li>rocket</rdf:li><rdf:li>launch</rdf:li></rdf:Bag></dc:subject>
 <Iptc4xmpCore:AltTextAccessibility><rdf:Alt><rdf:li xml:lang="x-default">White rocket on a launch pad</rdf:li></rdf:Alt></Iptc4xmpCore:AltTextAccessibility>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def _entry_sources(folder: Path, name: str, **config) -> dict[str, list[str]]:
    with Library.open([folder], LibraryConfig(**config)) as lib:
        lib.update(embed=False)
        entry = lib.entry(folder / name)
    assert entry is not None, name
    out: dict[str, list[str]] = {}
    for source, text in entry.sources:
        out.setdefault(source, []).append(text)
    return out


def test_sidecars_txt_md_and_folder_captions(tmp_path):
    for name in ("a.png", "b.png", "c.png", "d.jpg", "e.png"):
        Image.open(SKIMAGE_DATA / "coins.png").convert("RGB").save(tmp_path / name)
    (tmp_path / "a.txt").write_text("Greek coins\non a dark cloth\n")
    (tmp_path / "b.md").write_text(
        "---\ntitle: x\n---\n# Coins\n\nSilver **drachmas**, see [the museum](https://example.org).\n"
    )
    (tmp_path / "d.jpg.txt").write_text("Coins, the full name form\n")
    (tmp_path / "captions.yml").write_text(
        "c.png: Coins from the yaml file\n"
        "e:\n  caption: Coins with a caption\n  alt: Rows of old coins\n  tags: [money, history]\n"
    )
    assert _entry_sources(tmp_path, "a.png")["sidecar"] == ["Greek coins on a dark cloth"]
    assert _entry_sources(tmp_path, "b.png")["sidecar"] == [
        "Coins Silver drachmas, see the museum."
    ]
    assert _entry_sources(tmp_path, "d.jpg")["sidecar"] == ["Coins, the full name form"]
    assert _entry_sources(tmp_path, "c.png")["captions"] == ["Coins from the yaml file"]
    e = _entry_sources(tmp_path, "e.png")
    assert e["captions-alt"] == ["Rows of old coins"]
    assert e["captions"] == ["Coins with a caption"]
    assert e["captions-tags"] == ["money, history"]


def test_captions_json_and_a_broken_captions_file(tmp_path, caplog):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder in (good, bad):
        folder.mkdir()
        shutil.copy(SKIMAGE_DATA / "moon.png", folder / "moon.png")
    (good / "captions.json").write_text(json.dumps({"moon.png": "The Moon's craters"}))
    (bad / "captions.yml").write_text("moon.png: [unclosed\n")
    assert _entry_sources(good, "moon.png")["captions"] == ["The Moon's craters"]
    assert "captions" not in _entry_sources(bad, "moon.png")
    assert "captions.yml is not valid" in caplog.text


def test_embedded_metadata_exif_xmp_png_text_and_comments(tmp_path):
    photo = Image.open(SKIMAGE_DATA / "rocket.jpg")
    exif = Image.Exif()
    exif[0x010E] = "Rocket on the pad, seen from the north"
    exif[0x9C9B] = "Launch day".encode("utf-16-le")  # Windows XPTitle
    photo.save(tmp_path / "exif.jpg", exif=exif)
    junk = Image.Exif()
    junk[0x010E] = "OLYMPUS DIGITAL CAMERA         "
    photo.save(
        tmp_path / "junk.jpg", exif=junk, comment=b"CREATOR: gd-jpeg v1.0 (using IJG JPEG v62)"
    )
    photo.save(tmp_path / "xmp.jpg", xmp=XMP.encode())
    info = PngInfo()
    info.add_text("Title", "Chelsea the cat")
    info.add_itxt("Description", "A tabby cat, photographed at home")
    info.add_text("Software", "GIMP 2.10")
    info.add_itxt("XML:com.adobe.xmp", XMP)
    Image.open(SKIMAGE_DATA / "chelsea.png").save(tmp_path / "text.png", pnginfo=info)

    def sources(name: str) -> list[tuple[str, str]]:
        img = Image.open(tmp_path / name)
        img.load()
        return metadata_sources(img)

    assert sources("exif.jpg") == [
        ("exif-description", "Rocket on the pad, seen from the north"),
        ("exif-title", "Launch day"),
    ]
    assert sources("junk.jpg") == []
    xmp = sources("xmp.jpg")
    assert xmp == [
        ("xmp-alt", "White rocket on a launch pad"),
        ("xmp-title", "Rocket at dawn"),
        ("xmp-title", "Lift-off day"),
        ("xmp-description", "A rocket waits on the pad"),
        ("xmp-keywords", "rocket, launch"),
    ]
    png = dict(sources("text.png"))
    assert png["png-title"] == "Chelsea the cat"
    assert png["png-description"] == "A tabby cat, photographed at home"
    assert png["xmp-alt"] == "White rocket on a launch pad"
    assert "GIMP" not in json.dumps(sources("text.png"))
    # The real photos in scikit-image carry stamps, not descriptions.
    for name in ("rocket.jpg", "astronaut.png", "chelsea.png", "hubble_deep_field.jpg"):
        img = Image.open(SKIMAGE_DATA / name)
        img.load()
        assert metadata_sources(img) == [], name


def test_markdown_pages_give_alt_text_titles_and_captions(tmp_path):
    images, docs = tmp_path / "docs" / "img", tmp_path / "docs"
    images.mkdir(parents=True)
    for name in ("moon.png", "coins.png", "camera.png", "horse.png", "rocket.jpg", "text.png"):
        shutil.copy(SKIMAGE_DATA / name, images / name)
    (docs / "guide").mkdir()
    (docs / "guide" / "page.md").write_text(
        """# Guide

![The Moon's craters](../img/moon.png "Full moon")

![Old coins][coins]

<img src="../img/camera.png" alt="A man with a camera on a tripod">

<figure>
  <img src="/img/horse.png" alt="">
  <figcaption>A horse, <em>drawn</em> in black</figcaption>
</figure>

![rocket](../img/rocket.jpg)
*The rocket, an hour before launch*

![](../img/text.png)
/// caption
Handwritten **equations**
///

![remote](https://example.org/img/moon.png) ![data](data:image/png;base64,xyz)

[coins]: ../img/coins.png "A tray of coins"
""",
        encoding="utf-8",
    )
    refs = collect_references(docs)
    by_name = {Path(k).name: v for k, v in refs.items()}
    assert by_name["moon.png"] == [
        ("markdown-alt", "The Moon's craters"),
        ("markdown-title", "Full moon"),
    ]
    assert by_name["coins.png"] == [
        ("markdown-alt", "Old coins"),
        ("markdown-title", "A tray of coins"),
    ]
    assert by_name["camera.png"] == [("markdown-alt", "A man with a camera on a tripod")]
    assert by_name["horse.png"] == [("markdown-caption", "A horse, drawn in black")]
    assert by_name["rocket.jpg"] == [
        ("markdown-alt", "rocket"),
        ("markdown-caption", "The rocket, an hour before launch"),
    ]
    assert by_name["text.png"] == [("markdown-caption", "Handwritten equations")]
    assert len(refs) == 6  # remote and data: URLs are not files

    # Through the library: the page's words describe the image, and give its alt text.
    with Library.open([images], LibraryConfig(docs_dir=str(docs))) as lib:
        lib.update()
        top = lib.search("photographer with a tripod", k=1)[0]
        assert top.path.name == "camera.png"
        assert top.matched == "markdown-alt: A man with a camera on a tripod"
        assert top.alt == "A man with a camera on a tripod"
        # A page edit is an update of that image, without reading the image again.
        page = docs / "guide" / "page.md"
        page.write_text(page.read_text().replace("A man with a camera", "A cameraman"))
        report = lib.update()
        assert [p.name for p in report.updated] == ["camera.png"]
        assert lib.entry(images / "camera.png").alt == "A cameraman on a tripod"


def test_names_become_words_and_alt_falls_back_to_them():
    assert filename_source("diagrams/ci/buildPipeline_v2-final.png") == [
        ("filename", "build pipeline (in diagrams / ci)")
    ]
    assert filename_source("IMG_1234.JPG") == []
    assert filename_source("a3f9c2d1e8b7/photo-of-the-bay.jpg") == [
        ("filename", "photo of the bay")
    ]
    assert choose_alt([("filename", "red lighthouse")], "red-lighthouse.png") == "Red lighthouse"
    assert choose_alt([], "IMG_1234.JPG") == "Image"
    sources = [("ocr", "Sign in"), ("vision", "a form"), ("markdown-alt", "The sign-in form"),
               ("sidecar", "Login page of the app")]  # fmt: skip
    assert choose_alt(sources, "x.png") == "Login page of the app"
    long = "A very long caption. " + "word " * 60
    assert choose_alt([("sidecar", long)], "x.png") == "A very long caption."
    assert (
        assemble([("filename", "x"), ("sidecar", "A cat"), ("exif-title", "a cat.")]) == "A cat. x."
    )


def test_ocr_reads_text_in_screenshots(tmp_path, monkeypatch):
    pytest.importorskip("rapidocr_onnxruntime")
    login_screen().save(tmp_path / "Screenshot 2024-03-01 at 10.22.13.png")
    shutil.copy(SKIMAGE_DATA / "chelsea.png", tmp_path / "IMG_0001.png")
    with Library.open([tmp_path], LibraryConfig(ocr=True)) as lib:
        lib.update()
        top = lib.search("the login page", k=1)[0]
        assert top.path.name.startswith("Screenshot")
        assert top.matched.startswith("ocr: ")
        ocr_text = dict(top.sources)["ocr"]
        assert "Sign in" in ocr_text.replace("Signin", "Sign in") and "Password" in ocr_text
        cat = lib.entry(tmp_path / "IMG_0001.png")
        assert "ocr" not in dict(cat.sources)  # a photo without text gets no OCR noise
    # Turning OCR off drops its text from the descriptions; turning it back on reuses it.
    with Library.open([tmp_path], LibraryConfig(ocr=False)) as lib:
        report = lib.update()
        assert [p.name for p in report.updated] == [top.path.name] and report.unchanged == 1
        assert "ocr" not in dict(lib.entry(top.path).sources)
    monkeypatch.setattr(indexer, "_ocr", lambda img: pytest.fail("OCR ran twice on one image"))
    with Library.open([tmp_path], LibraryConfig(ocr=True)) as lib:
        assert [p.name for p in lib.update().updated] == [top.path.name]
        assert dict(lib.entry(top.path).sources)["ocr"] == ocr_text


class Captioner:
    """A vision captioner double that counts its calls (the engine supplies the real one)."""

    fingerprint = {"model": "test-vision", "recipe": 1}

    def __init__(self, fail: type[Exception] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, path: Path) -> str:
        self.calls.append(path.name)
        if self.fail is ImageError:
            raise ImageError(f"image {path} is too small for the vision model", "use a larger one")
        if self.fail is not None:
            raise self.fail("the vision server is unreachable", "start it")
        return {"cat.png": "a striped cat glancing sideways", "moon.png": "the moon, grey"}.get(
            path.name, "a picture"
        )


def test_vision_captions_are_made_once_per_image_content(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(SKIMAGE_DATA / "chelsea.png", folder / "cat.png")
    shutil.copy(SKIMAGE_DATA / "moon.png", folder / "moon.png")
    cache = ResultCache(tmp_path / "cache")
    captioner = Captioner()
    with Library.open([folder], cache=cache, describe_image=captioner) as lib:
        lib.update()
        assert sorted(captioner.calls) == ["cat.png", "moon.png"]
        top = lib.search("a cat with stripes", k=1)[0]
        assert top.path.name == "cat.png"
        assert top.matched == "vision: a striped cat glancing sideways"
        assert top.alt == "Cat"  # a model's words are not a person's alt text
        # Renamed: same bytes, no new call.
        (folder / "cat.png").rename(folder / "kitty.png")
        report = lib.update()
        assert [p.name for p in report.added] == ["kitty.png"]
        assert sorted(captioner.calls) == ["cat.png", "moon.png"]
    # A fresh index with the same result cache: still no new call.
    with Library.open(
        [folder], index_dir=tmp_path / "other", cache=cache, describe_image=captioner
    ) as lib:
        lib.update()
        assert len(captioner.calls) == 2
        assert dict(lib.entry(folder / "moon.png").sources)["vision"] == "the moon, grey"
    # Opened later without a captioner (e.g. a CLI without a vision model): captions stay.
    with Library.open([folder]) as lib:
        assert lib.update().unchanged == 2
        assert dict(lib.entry(folder / "kitty.png").sources)["vision"].startswith("a striped")


def test_a_caption_failing_for_one_image_costs_no_image_and_is_asked_again(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(SKIMAGE_DATA / "chelsea.png", folder / "IMG_0001.png")
    (folder / "IMG_0001.txt").write_text("Our cat\n")
    with Library.open([folder], describe_image=Captioner(fail=ImageError)) as lib:
        report = lib.update()
        assert [p.name for p in report.added] == ["IMG_0001.png"]
        assert "no vision caption for" in str(report) and "too small" in str(report)
        assert lib.search("cat", k=1)[0].matched == "sidecar: Our cat"
    working = Captioner()
    with Library.open([folder], describe_image=working) as lib:
        report = lib.update()
        assert working.calls == ["IMG_0001.png"] and report.updated
        assert dict(lib.entry(folder / "IMG_0001.png").sources)["vision"] == "a picture"


def test_a_broken_vision_model_stops_indexing_with_its_own_error(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("chelsea.png", "moon.png", "coins.png"):
        shutil.copy(SKIMAGE_DATA / name, folder / name)
    broken = Captioner(fail=BackendError)
    with Library.open([folder], describe_image=broken) as lib:
        with pytest.raises(BackendError, match="unreachable"):
            lib.update()
        assert len(broken.calls) == 1  # not once per image
    with Library.open([folder]) as lib:  # the index is intact; without the model, all is indexed
        assert len(lib.update().added) == 3
