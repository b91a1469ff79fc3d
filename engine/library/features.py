"""What the index keeps about an image's pixels: size, orientation, a perceptual hash, a thumbnail."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..images import flatten, pixels

THUMBNAIL_SIDE = 160
SQUARE_TOLERANCE = 0.05
NEAR_DUPLICATE_BITS = 6
"""Images whose perceptual hashes differ in at most this many of 64 bits are near-duplicates."""
FLAT_RANGE = 3
"""A 9x8 greyscale copy whose levels span at most this much has no structure to hash."""


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
    """64-bit perceptual hash: is each pixel of a 9x8 greyscale copy brighter than its right neighbour.

    A flat image (a solid colour, an almost empty diagram) has no such
    structure: every bit would be 0 and all flat images would look alike.  Its
    hash is instead drawn from its colour (quantised to 32 levels a channel),
    so two flat images are near-duplicates only when their colours match, and
    never near-duplicates of an image with structure.
    """
    grey = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    if int(grey.max()) - int(grey.min()) <= FLAT_RANGE:
        mean = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
        colour = bytes(int(c) >> 3 for c in np.rint(mean))
        return int.from_bytes(hashlib.blake2b(b"flat" + colour, digest_size=8).digest(), "big")
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: np.ndarray | int, b: int) -> np.ndarray | int:
    """Bits that differ between 64-bit hashes (``a`` may be a uint64 array)."""
    x = np.bitwise_xor(np.atleast_1d(np.asarray(a, dtype=np.uint64)), np.uint64(b))
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def analyse(img: Image.Image) -> tuple[PixelFeatures, Image.Image]:
    """Features of a decoded image (from :func:`~xcomposer.images.open_image`), and its pixels
    as consumers see them (:func:`~xcomposer.images.pixels`: upright, 8-bit).

    Width and height are the displayed size: a rotated photo's turned, an SVG's from its viewBox.
    """
    fmt = img.format or ""
    upright = pixels(img)
    width, height = (img.info.get("svg_size") if fmt == "SVG" else None) or upright.size
    thumb = upright.copy() if upright.mode == "L" else flatten(upright)  # flatten copies
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
