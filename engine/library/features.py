"""What the index keeps about an image's pixels: size, orientation, a perceptual hash, a thumbnail."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

THUMBNAIL_SIDE = 160
SQUARE_TOLERANCE = 0.05
NEAR_DUPLICATE_BITS = 6
"""Images whose perceptual hashes differ in at most this many of 64 bits are near-duplicates."""


@dataclass(frozen=True)
class PixelFeatures:
    format: str
    width: int
    height: int
    orientation: str
    phash: int
    thumbnail: bytes


def orientation_of(width: int, height: int) -> str:
    """``landscape``, ``portrait``, or ``square`` (sides within 5% of each other)."""
    if width > height * (1 + SQUARE_TOLERANCE):
        return "landscape"
    if height > width * (1 + SQUARE_TOLERANCE):
        return "portrait"
    return "square"


def difference_hash(img: Image.Image) -> int:
    """64-bit dHash: is each pixel of a 9x8 greyscale copy brighter than its right neighbour."""
    grey = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: np.ndarray | int, b: int) -> np.ndarray | int:
    """Bits that differ between 64-bit hashes (``a`` may be a uint64 array)."""
    x = np.bitwise_xor(np.atleast_1d(np.asarray(a, dtype=np.uint64)), np.uint64(b))
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def analyse(img: Image.Image) -> tuple[PixelFeatures, Image.Image]:
    """Features of a decoded image, and the image turned upright (EXIF orientation applied)."""
    fmt = img.format or ""
    try:
        upright = ImageOps.exif_transpose(img) or img
    except Exception:  # a corrupt orientation tag must not cost the image
        upright = img
    width, height = upright.size
    thumb = upright.copy()
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGBA")
        flat = Image.new("RGB", thumb.size, (255, 255, 255))
        flat.paste(thumb, mask=thumb.getchannel("A"))
        thumb = flat
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=80)
    features = PixelFeatures(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation_of(width, height),
        phash=difference_hash(thumb),
        thumbnail=buf.getvalue(),
    )
    return features, upright
