"""Text in screenshots and diagrams, read by RapidOCR (the optional ``ocr`` extra).

``rapidocr-onnxruntime``'s wheel ships its PP-OCRv4 models, so this works
offline.  The engine is loaded once per process, on the first image.
"""

from __future__ import annotations

import threading
from typing import Any

from PIL import Image

from ..errors import ModelError
from .sources import clean_text

MIN_CONFIDENCE = 0.6
MAX_SIDE = 1600
_ENGINE: list[Any] = []
_LOCK = threading.Lock()


def _engine() -> Any:
    with _LOCK:
        if not _ENGINE:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError:
                raise ModelError(
                    "library.ocr is on but rapidocr-onnxruntime is not installed",
                    "pip install 'mkdocs-xcomposer[ocr]', or turn library.ocr off",
                ) from None
            _ENGINE.append(RapidOCR())
        return _ENGINE[0]


def read_text(img: Image.Image) -> str:
    """The confident text lines of ``img``, top to bottom, or ``""``."""
    import numpy as np

    img = img.convert("RGB")
    if max(img.size) > MAX_SIDE:
        img = img.copy()
        img.thumbnail((MAX_SIDE, MAX_SIDE))
    # Screenshots and diagrams are upright: the orientation classifier would only cost time.
    result, _ = _engine()(np.asarray(img), use_cls=False)
    lines = []
    for box, text, score in result or []:
        text = clean_text(text)
        # Lone characters are mostly texture read as letters.
        if float(score) >= MIN_CONFIDENCE and sum(ch.isalnum() for ch in text) >= 2:
            top = min(point[1] for point in box)
            left = min(point[0] for point in box)
            lines.append((top, left, text))
    return clean_text(" ".join(text for _, _, text in sorted(lines)))
