"""SVG files as the engine sees them: parsed safely, sanitised, measured, read, rasterised.

An SVG is a program as much as a picture: it may carry scripts, event
handlers, references to other files or web addresses, and XML entities that
expand a few bytes into gigabytes.  Nothing here executes or fetches any of it:

* parsing goes through ``defusedxml``; a file that declares a DTD or entities
  is refused (:class:`~xcomposer.errors.ImageError`), never expanded;
* :func:`safe_svg_bytes` is what may be copied into a site or a notebook: the
  document without scripts, ``foreignObject``, ``on*`` handlers, or links and
  style ``url()`` references that leave the document (``#id`` and embedded
  ``data:image/...`` pictures stay);
* :func:`rasterise` draws only those sanitised bytes (CairoSVG, fetching
  nothing), so a vision model, a thumbnail and a hash see exactly
  what a browser would show from the sanitised file.
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageError

SVG_SUFFIXES = frozenset({".svg", ".svgz"})
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
#: Browsers draw an SVG without a size at 300x150.
DEFAULT_SIZE = (300, 150)
#: Rasters for models, thumbnails and hashes have at most this many pixels a side.
RASTER_MAX_SIDE = 1024
MAX_SVG_BYTES = 20_000_000

_FIX = "remove the file, or export it again from a drawing program"
_DANGEROUS_ELEMENTS = {
    "script",
    "foreignObject",
    "iframe",
    "embed",
    "object",
    "handler",
    "listener",
}
_ANIMATIONS = {"set", "animate", "animateTransform", "animateMotion", "discard"}
_SAFE_DATA_URI = re.compile(r"^\s*data:image/(png|jpeg|jpg|gif|webp);base64,", re.IGNORECASE)
_URL_REF = re.compile(r"url\(\s*(['\"]?)([^)'\"]*)\1\s*\)", re.IGNORECASE)
_UNITS = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54,
          "in": 96.0, "em": 16.0, "ex": 8.0}  # fmt: skip
_LENGTH = re.compile(r"^\s*([0-9.]+(?:e[-+]?\d+)?)\s*([a-z%]*)\s*$", re.IGNORECASE)

ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)


@dataclass(frozen=True)
class SvgDocument:
    """A parsed SVG: its root element, and the size it is displayed at (CSS pixels)."""

    root: ET.Element
    width: int
    height: int


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def read_svg_bytes(path: Path, max_bytes: int = MAX_SVG_BYTES) -> bytes:
    """The file's XML (``.svgz`` decompressed), bounded in size."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ImageError(
            f"image {path} cannot be read ({err.strerror})", "check the file"
        ) from None
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.open(Path(path)) as fh:
                data = fh.read(max_bytes + 1)
        except OSError:
            raise ImageError(f"image {path} is a corrupt .svgz", _FIX) from None
    if len(data) > max_bytes:
        raise ImageError(
            f"image {path} is over {max_bytes / 1e6:.0f} MB of SVG", "simplify or remove it"
        )
    return data


def parse_svg(data: bytes, name: str = "SVG") -> SvgDocument:
    """Parse SVG bytes without resolving entities, DTDs or external references."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise ImageError(
            f"{name} declares a DTD or XML entities (refused: entities can expand without bound "
            "or read other files)",
            _FIX,
        ) from None
    except ET.ParseError as err:
        raise ImageError(f"{name} is not valid SVG ({err})", _FIX) from None
    if _local(root.tag) != "svg":
        raise ImageError(f"{name} is XML but not SVG (its root is <{_local(root.tag)}>)", _FIX)
    width, height = _display_size(root)
    return SvgDocument(root, width, height)


def _length(value: str | None, reference: float | None = None) -> float | None:
    if not value:
        return None
    match = _LENGTH.match(value)
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "%":
        return None if reference is None else reference * number / 100
    factor = _UNITS.get(unit)
    return None if factor is None else number * factor


def _view_box(root: ET.Element) -> tuple[float, float] | None:
    parts = re.split(r"[\s,]+", (root.get("viewBox") or "").strip())
    if len(parts) != 4:
        return None
    try:
        width, height = float(parts[2]), float(parts[3])
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _display_size(root: ET.Element) -> tuple[int, int]:
    """width/height attributes, else the viewBox (scaled to a given side), else 300x150."""
    box = _view_box(root)
    width, height = _length(root.get("width")), _length(root.get("height"))
    if box is not None:
        if width and not height:
            height = width * box[1] / box[0]
        elif height and not width:
            width = height * box[0] / box[1]
        elif not width and not height:
            width, height = box
    if not width or not height:
        width, height = width or DEFAULT_SIZE[0], height or DEFAULT_SIZE[1]
    return max(1, round(width)), max(1, round(height))


def svg_texts(doc: SvgDocument) -> list[tuple[str, str]]:
    """``(source, text)`` pairs the file says about itself: its title, description, visible text."""
    out: list[tuple[str, str]] = []
    title = next((el for el in doc.root if _local(el.tag) == "title"), None)
    desc = next((el for el in doc.root if _local(el.tag) == "desc"), None)
    if title is not None and "".join(title.itertext()).strip():
        out.append(("svg-title", " ".join("".join(title.itertext()).split())))
    if desc is not None and "".join(desc.itertext()).strip():
        out.append(("svg-description", " ".join("".join(desc.itertext()).split())))
    words = []
    for el in doc.root.iter():
        if _local(el.tag) == "text":
            text = " ".join("".join(el.itertext()).split())
            if text:
                words.append(text)
    if words:
        out.append(("svg-text", " ".join(words)))
    return out


def _external(value: str) -> bool:
    """A reference that leaves the document (anything but ``#id`` or an embedded picture)."""
    value = value.strip()
    return not (value.startswith("#") or _SAFE_DATA_URI.match(value) or value == "")


def _clean_style(text: str) -> str | None:
    """CSS without imports, script and references outside the document; ``None`` if unsafe."""
    lowered = text.lower()
    if "@import" in lowered or "expression(" in lowered or "javascript:" in lowered:
        return None
    if any(_external(m.group(2)) for m in _URL_REF.finditer(text)):
        return None
    return text


def sanitise(root: ET.Element) -> int:
    """Remove, in place, everything that runs code or fetches; returns how much was removed."""
    removed = 0
    for parent in list(root.iter()):
        for child in list(parent):
            name = _local(child.tag)
            target = child.get("attributeName", "")
            if (
                not isinstance(child.tag, str)  # comments, processing instructions
                or name in _DANGEROUS_ELEMENTS
                or (name in _ANIMATIONS and (target.endswith("href") or target.startswith("on")))
                or (name == "style" and _clean_style("".join(child.itertext())) is None)
            ):
                parent.remove(child)
                removed += 1
    for el in root.iter():
        for key, value in list(el.attrib.items()):
            name = _local(key).lower()
            unsafe = (
                name.startswith("on")
                or (name == "href" and _external(value))
                or name == "base"  # xml:base
                or (name == "style" and _clean_style(value) is None)
                or ("url(" in value.lower() and _clean_style(value) is None)
                or "javascript:" in value.lower()
            )
            if unsafe:
                del el.attrib[key]
                removed += 1
    return removed


def safe_svg_bytes(source: Path | bytes, name: str | None = None) -> bytes:
    """An SVG that can be copied into a site or a notebook: nothing in it runs or fetches.

    Refuses (:class:`~xcomposer.errors.ImageError`) what cannot be parsed safely
    (DTDs, entities, not SVG); removes scripts, ``foreignObject``, event
    handlers and external references from the rest.
    """
    if isinstance(source, bytes):
        data, label = source, name or "SVG"
    else:
        data, label = read_svg_bytes(Path(source)), f"image {name or source}"
    doc = parse_svg(data, label)
    sanitise(doc.root)
    return ET.tostring(doc.root, encoding="utf-8", xml_declaration=True)


def rasterise(data: bytes, width: int, height: int, max_side: int = RASTER_MAX_SIDE) -> bytes:
    """PNG bytes of already-sanitised SVG ``data``, its longer side at most ``max_side``.

    Drawn by CairoSVG with its ``safe_fetch`` URL fetcher, which reads only
    ``data:`` URIs, so even an unsanitised reference could not be fetched.  (Measured against resvg-py in
    docs/library.md: CairoSVG drew faster here and finds fonts for generic
    families such as ``sans-serif`` through fontconfig, where resvg drew no text.)
    """
    try:
        from cairosvg.surface import PNGSurface
        from cairosvg.url import safe_fetch
    except (ImportError, OSError):  # OSError: the cairo system library is missing
        raise ImageError(
            "SVG images need CairoSVG and the cairo library to be drawn",
            "pip install cairosvg (and apt-get install libcairo2 where it is missing)",
        ) from None
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    try:
        png = PNGSurface.convert(
            bytestring=data,
            output_width=out_w,
            output_height=out_h,
            unsafe=False,
            url_fetcher=safe_fetch,
        )
    except Exception as err:  # CairoSVG raises many kinds for unrenderable input
        raise ImageError(
            f"SVG cannot be drawn ({type(err).__name__}: {str(err)[:120]})", _FIX
        ) from None
    return bytes(png)
