"""Opening images safely: every image the engine touches comes through here.

Truncated files, decompression bombs, non-images with an image extension and
oversize files raise :class:`ImageError` with a one-line reason, never a Pillow
traceback.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ImageError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif"}
)
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
