"""Every kind of image a documentation site has, made here as real files, through the one loading path."""

from __future__ import annotations

import base64
import gzip
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from xcomposer import (
    EVERY_FORMAT,
    ImageError,
    TooLargeError,
    check_image,
    display_size,
    encode_image,
    image_bytes,
    image_data_uri,
    load_image,
    safe_svg_bytes,
    store_image_bytes,
)
from xcomposer.images import open_image
from xcomposer.library.features import NEAR_DUPLICATE_BITS, analyse, hamming

DIAGRAM = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 200">
<title>Build pipeline</title><desc>Three stages from source to site</desc>
<rect width="400" height="200" fill="#ffffff"/>
<rect x="20" y="60" width="100" height="60" fill="#2e7d32"/>
<rect x="150" y="60" width="100" height="60" fill="#1565c0"/>
<text x="30" y="160" font-family="sans-serif" font-size="20">fetch</text>
<text x="160" y="160" font-family="sans-serif" font-size="20">render</text>
</svg>"""


def _features(path: Path):
    return analyse(open_image(path))[0]


def _sixteen_bit(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def test_sixteen_bit_png_is_scaled_not_white_and_distinct_ones_are_not_duplicates(tmp_path):
    ramp = np.linspace(20_000, 60_000, 96 * 64).reshape(64, 96)
    rings = 40_000 + 20_000 * np.sin(np.hypot(*np.mgrid[-32:32, -48:48]) / 4)
    a = _sixteen_bit(tmp_path / "ramp16.png", ramp)
    b = _sixteen_bit(tmp_path / "rings16.png", rings)
    assert Image.open(a).mode.startswith("I")  # really a 16-bit file
    pixels = np.asarray(load_image(a))
    assert pixels.min() == round(20_000 / 257) and pixels.max() == round(60_000 / 257)
    thumb = np.asarray(Image.open(io.BytesIO(_features(a).thumbnail)).convert("L"))
    assert thumb.mean() < 200  # the thumbnail a user sees is the picture, not white
    assert hamming(_features(a).phash, _features(b).phash)[0] > NEAR_DUPLICATE_BITS


def test_solid_colours_are_never_near_duplicates_of_each_other(tmp_path):
    colours = [(255, 0, 0), (0, 128, 0), (0, 0, 255), (250, 250, 250), (40, 40, 40), (190, 0, 0)]
    hashes = []
    for i, colour in enumerate(colours):
        Image.new("RGB", (120, 80), colour).save(tmp_path / f"solid{i}.png")
        hashes.append(_features(tmp_path / f"solid{i}.png").phash)
    Image.new("RGB", (64, 64), colours[0]).save(tmp_path / "same_red.png")
    for i, h in enumerate(hashes):
        others = [x for j, x in enumerate(hashes) if j != i]
        assert min(hamming(np.array(others, dtype=np.uint64), h)) > NEAR_DUPLICATE_BITS
    # the same colour again is the same picture
    assert _features(tmp_path / "same_red.png").phash == hashes[0]


def test_palette_png_with_transparency_keeps_its_alpha(tmp_path):
    img = Image.new("P", (40, 20), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (20, 0, 40, 20))
    img.save(tmp_path / "palette.png", transparency=0)
    loaded = load_image(tmp_path / "palette.png")
    assert loaded.mode == "RGBA"
    assert loaded.getpixel((5, 5))[3] == 0 and loaded.getpixel((30, 5)) == (0, 0, 255, 255)
    thumb = Image.open(io.BytesIO(_features(tmp_path / "palette.png").thumbnail)).convert("RGB")
    assert min(thumb.getpixel((2, 5))) > 230  # transparent parts over white, not black


def test_cmyk_jpeg_comes_out_in_its_colours(tmp_path):
    Image.new("CMYK", (60, 40), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    red = load_image(tmp_path / "cmyk.jpg").getpixel((30, 20))
    assert red[0] > 230 and red[1] < 30 and red[2] < 30
    mime, data = encode_image(tmp_path / "cmyk.jpg")
    assert mime == "image/jpeg" and Image.open(io.BytesIO(data)).mode == "RGB"


def test_webp_and_svg_reach_a_backend_as_png(tmp_path):
    Image.new("RGB", (30, 20), (10, 200, 30)).save(tmp_path / "x.webp")
    (tmp_path / "d.svg").write_text(DIAGRAM)
    for name, size in (("x.webp", (30, 20)), ("d.svg", (400, 200))):
        uri = image_data_uri(tmp_path / name)
        assert uri.startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert decoded.format == "PNG" and decoded.size == size


def test_exif_rotated_photo_is_upright_for_every_consumer(tmp_path):
    img = Image.new("RGB", (200, 100), (200, 10, 10))
    img.paste((10, 10, 200), (0, 0, 100, 100))  # blue on the left as stored
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    path = tmp_path / "rotated.jpg"
    assert Image.open(path).size == (200, 100)
    assert display_size(path) == (100, 200)
    assert load_image(path).size == (100, 200)
    features = _features(path)
    assert (features.width, features.height, features.orientation) == (100, 200, "portrait")
    _, data = encode_image(path, max_side=50)
    sent = Image.open(io.BytesIO(data))
    assert sent.size == (25, 50)
    top = sent.convert("RGB").getpixel((12, 5))
    assert top[2] > top[0]  # blue, stored on the left, is on top once upright


def test_svg_size_text_and_pixels(tmp_path):
    (tmp_path / "d.svg").write_text(DIAGRAM)
    (tmp_path / "sized.svg").write_text(
        DIAGRAM.replace('viewBox="0 0 400 200"', 'width="8cm" viewBox="0 0 400 200"')
    )
    assert display_size(tmp_path / "d.svg") == (400, 200)
    assert display_size(tmp_path / "sized.svg") == (302, 151)  # 8 cm at 96 dpi, the viewBox's ratio
    img = open_image(tmp_path / "d.svg")
    assert img.format == "SVG"
    assert dict(img.info["svg_texts"]) == {
        "svg-title": "Build pipeline",
        "svg-description": "Three stages from source to site",
        "svg-text": "fetch render",
    }
    drawn = load_image(tmp_path / "d.svg").convert("RGB")
    assert drawn.getpixel((70, 90)) == (0x2E, 0x7D, 0x32)
    ink = np.asarray(drawn.crop((20, 140, 120, 170)).convert("L")) < 128
    assert ink.sum() > 50  # the labels are drawn (a font was found for sans-serif)


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_hostile_svg_is_never_run_or_fetched_and_copies_are_sanitised(tmp_path, web_server):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    hostile = f"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     viewBox="0 0 100 50" onload="alert(1)">
  <title>Innocent chart</title>
  <script>fetch('{web_server}/script')</script>
  <style>@import url({web_server}/import.css); rect {{ fill: red }}</style>
  <image xlink:href="{web_server}/image.png" width="10" height="10"/>
  <image href="file://{secret}" width="10" height="10"/>
  <use xlink:href="{web_server}/sprite.svg#icon"/>
  <rect width="100" height="50" fill="url({web_server}/paint)" onclick="steal()"/>
  <a href="javascript:alert(1)"><circle cx="5" cy="5" r="4" fill="#00f"/></a>
  <foreignObject width="10" height="10"><iframe xmlns="http://www.w3.org/1999/xhtml" src="{web_server}/frame"/></foreignObject>
  <set attributeName="href" to="javascript:alert(1)"/>
</svg>"""
    path = tmp_path / "hostile.svg"
    path.write_text(hostile)
    cleaned = safe_svg_bytes(path).decode("utf-8")
    for bad in ("script", "onload", "onclick", "@import", web_server, "file:", "javascript:",
                "foreignObject", "<set"):  # fmt: skip
        assert bad not in cleaned, bad
    assert "<title>Innocent chart</title>" in cleaned and "circle" in cleaned
    # Indexing draws it (thumbnail, hash, size) and a backend gets its pixels: nothing is fetched.
    assert _features(path).width == 100
    image_data_uri(path)
    assert display_size(path) == (100, 50)
    assert _Recorder.hits == []


@pytest.mark.parametrize(
    "doctype",
    [
        # billion laughs
        '<!DOCTYPE svg [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
        # XXE: an external entity reading a local file
        '<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_svg_with_entities_is_refused_with_a_reason(tmp_path, doctype):
    body = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&c;&xxe;</text></svg>'
    )
    if "xxe" in doctype:
        body = body.replace("&c;", "")
    else:
        body = body.replace("&xxe;", "")
    path = tmp_path / "entities.svg"
    path.write_text(f'<?xml version="1.0"?>\n{doctype}\n{body}')
    for call in (open_image, safe_svg_bytes):
        with pytest.raises(ImageError, match="DTD or XML entities"):
            call(path)
    assert display_size(path) is None


def test_not_svg_and_broken_svg_are_image_errors(tmp_path):
    (tmp_path / "html.svg").write_text("<html><body>hi</body></html>")
    (tmp_path / "cut.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect')
    with pytest.raises(ImageError, match="not SVG"):
        open_image(tmp_path / "html.svg")
    with pytest.raises(ImageError, match="not valid SVG"):
        open_image(tmp_path / "cut.svg")


def test_an_image_error_names_the_image_as_the_person_knows_it(tmp_path):
    secret = tmp_path / "server-root" / "notes.png"
    secret.parent.mkdir()
    secret.write_text("not an image")
    with pytest.raises(ImageError) as err:
        check_image(secret, "notes.png")
    assert "'notes.png' is not an image" in str(err.value)
    assert str(tmp_path) not in str(err.value)
    Image.new("RGB", (8, 8), "red").save(secret)
    check_image(secret, "notes.png")  # an image passes


def test_uploaded_bytes_are_kept_once_by_content_after_checking(tmp_path):
    png, jpeg = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (20, 10), "blue").save(png, "PNG")
    Image.new("RGB", (20, 10), "green").save(jpeg, "JPEG")
    folder = tmp_path / "uploads"
    first = store_image_bytes(png.getvalue(), folder, 1_000_000)
    assert first.suffix == ".png" and first.read_bytes() == png.getvalue()
    assert store_image_bytes(png.getvalue(), folder, 1_000_000) == first  # same bytes, same file
    assert store_image_bytes(jpeg.getvalue(), folder, 1_000_000).suffix == ".jpg"
    assert load_image(first).size == (20, 10)
    with pytest.raises(ImageError, match="'holiday.png' is not an image") as err:
        store_image_bytes(b"<html>not an image</html>", folder, 1_000_000, name="holiday.png")
    assert str(folder) not in str(err.value)
    with pytest.raises(ImageError, match="empty"):
        store_image_bytes(b"", folder, 1_000_000)
    with pytest.raises(TooLargeError, match="over the 0.0 MB limit; raise upload_limit"):
        store_image_bytes(png.getvalue(), folder, 10, limit_fix="raise upload_limit")
    assert sorted(p.suffix for p in folder.iterdir()) == [".jpg", ".png"]  # nothing else left


def test_one_policy_for_the_bytes_an_image_is_embedded_or_published_as(tmp_path):
    small, big, photo, webp = (tmp_path / n for n in ("s.png", "b.png", "p.jpg", "w.webp"))
    Image.new("RGB", (40, 20), "red").save(small)
    Image.new("RGB", (400, 200), "blue").save(big)
    Image.new("RGB", (40, 20), "green").save(photo, quality=95)
    Image.new("RGB", (40, 20), "white").save(webp)
    (tmp_path / "d.svg").write_text(DIAGRAM.replace("<title>", "<script>alert(1)</script><title>"))
    notebook = {"max_side": 100, "keep": ("PNG", "JPEG", "GIF"), "keep_bytes": 600_000}
    # a notebook attachment: small PNG/JPEG keep their own bytes
    assert image_bytes(small, **notebook) == ("image/png", small.read_bytes())
    assert image_bytes(photo, **notebook) == ("image/jpeg", photo.read_bytes())
    # too large a side, too many bytes, a format not kept, an SVG: re-encoded and scaled
    mime, data = image_bytes(big, **notebook)
    assert mime == "image/png" and Image.open(io.BytesIO(data)).size == (100, 50)
    assert image_bytes(photo, **{**notebook, "keep_bytes": 10})[1] != photo.read_bytes()
    assert image_bytes(webp, **notebook)[0] == "image/png"
    mime, data = image_bytes(tmp_path / "d.svg", **notebook)
    assert mime == "image/png" and Image.open(io.BytesIO(data)).size == (100, 50)
    # a model request keeps nothing: PNG or JPEG, scaled (what image_data_uri sends)
    assert image_bytes(photo)[1] != photo.read_bytes()
    assert image_data_uri(big, 100) == "data:image/png;base64," + base64.b64encode(
        image_bytes(big, 100)[1]
    ).decode("ascii")
    # a site's copy keeps every file's bytes without decoding it; an SVG sanitised
    (tmp_path / "odd.png").write_bytes(b"not decoded")
    assert image_bytes(tmp_path / "odd.png", keep=EVERY_FORMAT) == ("image/png", b"not decoded")
    assert image_bytes(webp, keep=EVERY_FORMAT) == ("image/webp", webp.read_bytes())
    mime, svg = image_bytes(tmp_path / "d.svg", keep=EVERY_FORMAT)
    assert mime == "image/svg+xml" and b"script" not in svg and b"Build pipeline" in svg
    (tmp_path / "z.svgz").write_bytes(gzip.compress((tmp_path / "d.svg").read_bytes()))
    _, svgz = image_bytes(tmp_path / "z.svgz", keep=EVERY_FORMAT)
    assert gzip.decompress(svgz) == svg  # still gzipped, as its name says, and sanitised
    assert image_bytes(tmp_path / "z.svgz", keep=EVERY_FORMAT)[1] == svgz  # reproducible
