"""Opening images safely: every image the engine touches comes through here.

Truncated files, decompression bombs, non-images with an image extension and
oversize files raise :class:`ImageError` with a one-line reason, never a Pillow
traceback.

One loading path for every consumer (the index, thumbnails, hashes, vision
backends, figure sizes):

* :func:`open_image` decodes a file as stored (metadata intact; an SVG is
  sanitised and drawn, see :mod:`xcomposer.svg`);
* :func:`load_image` is what pixels are taken from: EXIF orientation applied,
  16-bit, palette, alpha, CMYK and other modes turned into 8-bit ``L``, ``RGB``
  or ``RGBA`` with their values scaled, not clipped;
* :func:`display_size` is the size a browser shows (rotated photos swapped,
  an SVG's width/height or viewBox), read without decoding the pixels;
* :func:`image_bytes` is the one policy for the bytes an image is embedded or
  published as (a site's copy, a notebook attachment, a model request): its own
  bytes where the caller keeps them (an SVG sanitised), else
  :func:`encode_image`'s PNG or JPEG, upright and scaled, whatever the source
  (WebP, SVG, TIFF...), since llama.cpp and some servers accept nothing else;
* :func:`check_image` and :func:`store_image_bytes` check an image a person sent
  (a path, an upload) with messages that name it as they know it, never by a
  server's absolute path.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import mimetypes
import tempfile
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ImageError, TooLargeError
from .svg import SVG_SUFFIXES

if TYPE_CHECKING:
    from PIL import Image

RASTER_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif"}
)
IMAGE_SUFFIXES = RASTER_SUFFIXES | SVG_SUFFIXES
#: ``keep`` of :func:`image_bytes`: every image keeps its own bytes (an SVG sanitised).
EVERY_FORMAT = frozenset({"*"})
#: EXIF orientations that turn the picture a quarter turn (width and height swap).
_QUARTER_TURNS = {5, 6, 7, 8}
_MIME = {"JPEG": "image/jpeg", "MPO": "image/jpeg"}
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_BYTES = 50_000_000


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def open_image(
    path: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:  # noqa: F821 - Pillow loads on first use
    """Open and fully decode an image, or raise :class:`ImageError` saying why not."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    fix = "replace or remove the file"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"image {path} not found", "check the path") from None
    except OSError as err:
        raise ImageError(f"image {path} cannot be read ({err.strerror})", fix) from None
    if not path.is_file():
        raise ImageError(f"{path} is not a file", "give the path of an image file")
    if size == 0:
        raise ImageError(f"image {path} is empty (0 bytes)", fix)
    if size > max_bytes:
        raise ImageError(
            f"image {path} is {size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit",
            "shrink it or raise library.max_file_bytes",
        )
    if is_svg(path):
        return _open_svg(path, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image {path} is {width}x{height} pixels, over the {max_pixels:,} pixel limit "
                    "(a decompression bomb?)",
                    "shrink it or raise library.max_image_pixels",
                )
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"image {path} declares more pixels than Pillow will decode (a decompression bomb?)",
            "shrink it or remove it",
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image Pillow can read", fix) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"image {path} is truncated or corrupt ({err})", fix) from None
    return img


def image_suffix_ok(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_svg(path: Path | str) -> bool:
    return Path(path).suffix.lower() in SVG_SUFFIXES


def _open_svg(path: Path, max_bytes: int, max_side: int | None = None) -> Image.Image:
    """The sanitised SVG drawn (longer side at most ``max_side``), ``format`` ``"SVG"``.

    ``info["svg_size"]`` is its display size and ``info["svg_texts"]`` what it
    says about itself (title, description, visible text).
    """
    from PIL import Image

    from . import svg

    doc = svg.parse_svg(svg.read_svg_bytes(path, max_bytes), f"image {path}")
    texts = svg.svg_texts(doc)
    svg.sanitise(doc.root)
    clean = svg.ET.tostring(doc.root, encoding="utf-8")
    side = max_side or svg.RASTER_MAX_SIDE
    try:
        png = svg.rasterise(clean, doc.width, doc.height, side)
    except ImageError as err:
        raise ImageError(f"image {path}: {err.what}", err.fix) from None
    img = Image.open(io.BytesIO(png))
    img.load()
    img.format = "SVG"
    img.info = {"svg_size": (doc.width, doc.height), "svg_texts": texts}
    return img


def normalise(img: Image.Image) -> Image.Image:
    """8-bit ``L``, ``RGB`` or ``RGBA``, values scaled (a 16-bit image is not clipped to white)."""
    import numpy as np
    from PIL import Image

    mode = img.mode
    if mode in ("L", "RGB", "RGBA"):
        return img
    if mode.startswith("I") or mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and values.min() >= 0 and values.max() < 65536):
            scaled = values / 257.0  # 0..65535 onto 0..255
        else:
            low, high = float(values.min()), float(values.max())
            scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        return img.convert("RGBA")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def upright(img: Image.Image) -> Image.Image:
    """The image as it is displayed: its EXIF orientation applied (a corrupt tag is ignored)."""
    from PIL import ImageOps

    try:
        turned = ImageOps.exif_transpose(img)
    except Exception:  # a corrupt orientation tag must not cost the image
        return img
    return img if turned is None else turned


def pixels(img: Image.Image) -> Image.Image:
    """What consumers look at: upright and normalised, ``format`` kept."""
    fmt = img.format
    out = normalise(upright(img))
    out.format = fmt
    return out


def load_image(
    path: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """Open an image for its pixels: upright (EXIF), 8-bit ``L``/``RGB``/``RGBA``; an SVG drawn."""
    return pixels(open_image(path, max_pixels=max_pixels, max_bytes=max_bytes))


def flatten(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB, transparent parts over ``background``."""
    from PIL import Image

    img = normalise(img)
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, background)
        flat.paste(img, mask=img.getchannel("A"))
        return flat
    return img.convert("RGB")


def display_size(path: Path | str) -> tuple[int, int] | None:
    """Width and height as a browser displays the image (EXIF rotation, SVG viewBox).

    Reads the header only; ``None`` when the file cannot be read as an image.
    """
    path = Path(path)
    if is_svg(path):
        from . import svg

        try:
            doc = svg.parse_svg(svg.read_svg_bytes(path), f"image {path}")
        except ImageError:
            return None
        return doc.width, doc.height
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            try:
                orientation = img.getexif().get(0x0112)
            except Exception:  # corrupt EXIF: shown as stored
                orientation = None
    except (OSError, ValueError, SyntaxError):
        return None
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def encode_image(
    path: Path | str,
    max_side: int | None = None,
    formats: tuple[str, ...] = ("PNG", "JPEG"),
) -> tuple[str, bytes]:
    """``(mime type, bytes)`` of an image in one of ``formats``, upright, longer side <= ``max_side``.

    A JPEG stays JPEG (quality 90) when JPEG is accepted; everything else
    (WebP, SVG, TIFF, 16-bit or palette PNG...) becomes PNG, which keeps
    transparency, or JPEG when only JPEG is accepted.
    """
    from PIL import Image

    img = load_image(Path(path))
    source = img.format
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if "JPEG" in formats and (source in ("JPEG", "MPO") or "PNG" not in formats):
        flatten(img).save(out, "JPEG", quality=90)
        return "image/jpeg", out.getvalue()
    img.save(out, "PNG")
    return "image/png", out.getvalue()


def image_bytes(
    path: Path | str,
    max_side: int | None = None,
    keep: Collection[str] = (),
    keep_bytes: int | None = None,
) -> tuple[str, bytes]:
    """``(mime type, bytes)`` to embed or publish an image as: the one policy for a site's
    copy, a notebook attachment and a model request, each giving only its parameters.

    An image keeps its own bytes when its format (Pillow's name: ``PNG``, ``JPEG``,
    ``GIF``, ``SVG`` ...) is in ``keep`` (:data:`EVERY_FORMAT`: any), its longer side is
    at most ``max_side`` and its file at most ``keep_bytes``; an SVG kept is sanitised
    (nothing in it runs or fetches).  Any other image becomes :func:`encode_image`'s
    upright PNG or JPEG, its longer side at most ``max_side``.  With
    :data:`EVERY_FORMAT` and no limits nothing is decoded (a site copies big photos).
    """
    path = Path(path)
    every = keep == EVERY_FORMAT
    if is_svg(path) and (every or "SVG" in keep):
        from .svg import safe_svg_bytes

        clean = safe_svg_bytes(path)  # an .svgz stays gzipped (reproducibly: no timestamp)
        return "image/svg+xml", gzip.compress(clean, mtime=0) if _gzipped(path) else clean
    if every and max_side is None and keep_bytes is None:
        return mimetypes.guess_type(path.name)[0] or "application/octet-stream", path.read_bytes()
    if keep and not is_svg(path) and (keep_bytes is None or path.stat().st_size <= keep_bytes):
        with open_image(path) as img:
            fmt, size = (img.format or "").upper(), img.size
        if (every or fmt in keep) and (max_side is None or max(size) <= max_side):
            return _MIME.get(fmt) or f"image/{fmt.lower()}", path.read_bytes()
    return encode_image(path, max_side)


def _gzipped(path: Path) -> bool:
    return path.suffix.lower() == ".svgz"


def image_data_uri(path: Path | str, max_side: int | None = None) -> str:
    """The image as a ``data:`` URI of PNG or JPEG bytes (see :func:`encode_image`)."""
    mime, data = image_bytes(path, max_side)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def check_image(path: Path, shown: str) -> None:
    """Raise :class:`ImageError` naming ``shown`` (never ``path`` itself, which may be a
    server's absolute path) when ``path`` is not an image :func:`open_image` decodes."""
    try:
        with open_image(path):
            pass
    except ImageError as err:
        raise ImageError(str(err).replace(str(path), f"'{shown}'")) from None


def store_image_bytes(
    data: bytes,
    folder: Path,
    max_bytes: int,
    name: str = "upload",
    limit_fix: str = "send a smaller image",
) -> Path:
    """Keep image bytes a person sent in ``folder`` as ``<sha256>.<format>``, once per content.

    The bytes are checked by :func:`open_image` before they get their name; an error
    names the image ``name``.  ``limit_fix`` is the fix an oversize upload is told (an
    adapter names its own setting for ``max_bytes``).
    """
    if len(data) > max_bytes:
        raise TooLargeError(
            f"the uploaded image is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit",
            limit_fix,
        )
    if not data:
        raise ImageError("the uploaded image is empty (0 bytes)", "send the image's bytes")
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    known = sorted(folder.glob(f"{digest}.*"))
    if known:
        return known[0]
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".upload") as fh:
        fh.write(data)
    tmp = Path(fh.name)
    try:
        with open_image(tmp, max_bytes=max_bytes) as img:
            suffix = (img.format or "img").lower().replace("jpeg", "jpg")
    except ImageError as err:
        tmp.unlink(missing_ok=True)
        raise ImageError(str(err).replace(str(tmp), f"'{name}'")) from None
    target = folder / f"{digest}.{suffix}"
    tmp.replace(target)
    return target
