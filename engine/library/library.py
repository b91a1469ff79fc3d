"""The :class:`Library`: a writer's image folders, indexed and searchable."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import ResultCache
from ..config import LibraryConfig
from ..errors import ConfigError, InputError
from ..progress import ProgressCallback, ignore_progress
from . import search as ranking
from .embeddings import ImageEmbedder, TextEmbedder
from .index import DB_NAME, IndexStore, View
from .indexer import Indexer
from .records import IndexReport, Match, SearchFilters

log = logging.getLogger("xcomposer.library")

#: Candidates re-scored with their individual sources (per search, at least).
RERANK_CANDIDATES = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_KINDS = "PNG, JPEG, WebP or GIF"


def _root_key(root: Path, index_dir: Path) -> str:
    """How the index names a root: relative to the index folder, so a moved project still matches."""
    try:
        return Path(os.path.relpath(root, index_dir)).as_posix()
    except ValueError:  # another drive (Windows)
        return root.as_posix()


def writable_folder(folder: Path) -> bool:
    """Whether an index can be kept in ``folder`` (created if need be): a real write is tried."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
        db = folder / DB_NAME
        return not db.exists() or os.access(db, os.W_OK)
    except OSError:
        return False


def fallback_index_dir(roots: Sequence[Path], cache: ResultCache | None) -> Path:
    """Where the index of read-only ``roots`` goes: the result cache's folder, else the user cache."""
    name = hashlib.sha256("\0".join(str(r) for r in roots).encode("utf-8")).hexdigest()[:16]
    candidates = []
    if cache is not None and not getattr(cache, "readonly", False):
        candidates.append(Path(cache.directory) / "library-index" / name)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    candidates.append(base / "xcomposer" / "library-index" / name)
    for candidate in candidates:
        if writable_folder(candidate):
            return candidate
    raise ConfigError(
        f"image folder {roots[0]} is read-only and no cache folder can be written "
        f"({', '.join(str(c) for c in candidates)})",
        "pass --index-dir (or set library.index_dir) to a writable folder",
    )


def _describer_id(describe_image: Callable[[Path], str] | None) -> str | None:
    if describe_image is None:
        return None
    fingerprint = getattr(describe_image, "fingerprint", None)
    if callable(fingerprint):
        fingerprint = fingerprint()
    if fingerprint is None:
        return "default"
    blob = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _source_scores(
    sources: list[tuple[str, str]], blob: bytes | None, qvec: np.ndarray
) -> list[tuple[str, float]]:
    """Each source's cosine with the query (the vectors are stored as float16 rows)."""
    if not blob or not sources:
        return []
    vectors = np.frombuffer(blob, np.float16).reshape(len(sources), -1).astype(np.float32)
    return list(zip([s[0] for s in sources], ranking.dot(vectors, qvec).tolist(), strict=True))


class Library:
    """Image folders (roots) and their index.

    Open with :meth:`open`; :meth:`update` brings the index up to date;
    :meth:`search` finds images for a text.  Opening and searching an
    up-to-date index with a query seen before loads no model.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        index_dir: Path,
        config: LibraryConfig,
        cache: ResultCache | None,
        describe_image: Callable[[Path], str] | None,
    ) -> None:
        self.config = config
        self.index_dir = index_dir
        self.cache = cache
        self.describe_image = describe_image
        self._roots = list(roots)
        self._keys = {_root_key(r, index_dir): r for r in self._roots}
        try:
            self.store = IndexStore(index_dir / DB_NAME)
        except (OSError, sqlite3.Error) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise ConfigError(
                f"the image index in {index_dir} cannot be opened for writing ({reason})",
                "pass --index-dir (or set library.index_dir) to a writable folder",
            ) from None
        self.config = config = self._with_remembered_settings(config)
        self.text_embedder = TextEmbedder(config.embeddings)
        self.image_embedder = (
            ImageEmbedder(config.image_embeddings) if config.image_embeddings else None
        )
        self._view: View | None = None
        self._view_version: int | None = None
        self._lookup: dict[str, list[int]] | None = None
        self._fingerprint: tuple[int, str] | None = None
        self._generation = 0

    @classmethod
    def open(
        cls,
        roots: Sequence[str | Path],
        config: LibraryConfig | None = None,
        index_dir: Path | None = None,
        cache: ResultCache | None = None,
        describe_image: Callable[[Path], str] | None = None,
    ) -> Library:
        """Open (or create) the index of ``roots``; cheap when the index exists.

        ``index_dir`` defaults to ``config.index_dir``, else ``.xcomposer/`` in the
        first root.  ``describe_image`` (a vision captioner) is called once per
        image content ever; give it a ``fingerprint`` attribute (a value or a
        callable) naming its model so a new model describes images anew.
        """
        config = config or LibraryConfig()
        given = list(roots) or list(config.roots)
        if not given:
            raise InputError(
                "no image folder given", "pass one or more folders, or set library.roots"
            )
        resolved: list[Path] = []
        for root in given:
            path = Path(root).expanduser()
            if not path.exists():
                raise InputError(
                    f"image folder {root} does not exist",
                    "check the path, or create the folder and put images in it",
                )
            if not path.is_dir():
                raise InputError(
                    f"image folder {root} is not a folder", "give the folder that holds the images"
                )
            path = path.resolve()
            if path not in resolved:
                resolved.append(path)
        chosen = index_dir or config.index_dir
        if chosen:
            where = Path(chosen).expanduser().resolve()
            if not writable_folder(where):
                raise ConfigError(
                    f"the index folder {where} cannot be written",
                    "pass --index-dir (or set library.index_dir) to a writable folder",
                )
        else:
            where = resolved[0] / ".xcomposer"
            if not writable_folder(where):
                where = fallback_index_dir(resolved, cache).resolve()
                log.info(
                    "image folder %s is read-only; its index is kept in %s", resolved[0], where
                )
        return cls(resolved, where, config, cache, describe_image)

    # ----------------------------------------------------------------- basics

    @property
    def roots(self) -> list[Path]:
        """The image folders, resolved, in the order given."""
        return list(self._roots)

    def __len__(self) -> int:
        return self.store.count(list(self._keys))

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    def __repr__(self) -> str:
        return f"Library(roots={[str(r) for r in self._roots]}, index={self.store.path})"

    # ----------------------------------------------------------------- update

    def _with_remembered_settings(self, config: LibraryConfig) -> LibraryConfig:
        """The docs folder and OCR setting the index was last built with, unless given now.

        ``xcomposer index DIR --docs-dir D --ocr`` followed by a plain ``xcomposer
        search`` (or ``compose``) must not drop the Markdown captions and OCR text.
        """
        try:
            remembered = json.loads(self.store.get_meta("settings") or "{}")
        except ValueError:
            remembered = {}
        changes: dict[str, Any] = {}
        if config.docs_dir is None and remembered.get("docs_dir"):
            changes["docs_dir"] = remembered["docs_dir"]
        if "ocr" not in config.model_fields_set and "ocr" in remembered:
            changes["ocr"] = bool(remembered["ocr"])
        return config.model_copy(update=changes) if changes else config

    def _remember_settings(self) -> None:
        docs = self.config.docs_dir or None
        settings = {"docs_dir": str(Path(docs).resolve()) if docs else None, "ocr": self.config.ocr}
        with self.store.transaction() as db:
            self.store.set_meta("settings", json.dumps(settings), db)

    def update(
        self, progress: ProgressCallback = ignore_progress, embed: bool = True
    ) -> IndexReport:
        """Bring the index up to date with the roots; only new or changed files are read.

        With ``embed=False`` descriptions are stored but not embedded (faster; the
        next ``update()`` or the first search embeds them).  Bad files are skipped
        with a reason; indexing never stops on one.
        """
        indexer = Indexer(
            self.store,
            self._keys,
            self.index_dir,
            self.config,
            self.text_embedder,
            self.image_embedder,
            self.cache,
            self.describe_image,
            _describer_id(self.describe_image),
        )
        report = indexer.run(progress, embed)
        self._remember_settings()
        self._invalidate()
        return report

    def _invalidate(self) -> None:
        self._view = None
        self._lookup = None
        self._generation += 1

    # ----------------------------------------------------------------- search

    def _current_view(self) -> View:
        version = self.store.data_version()
        if self._view is None or version != self._view_version:
            keys = list(self._keys)
            image_model = self.image_embedder.model_id if self.image_embedder else None
            view = self.store.load_view(keys, self.text_embedder.model_id, image_model)
            if len(view) < self.store.count(keys):  # some wait for embeddings (embed=False)
                Indexer(
                    self.store, self._keys, self.index_dir, self.config, self.text_embedder,
                    None, self.cache, None, None,
                ).embed_pending(ignore_progress)  # fmt: skip
                view = self.store.load_view(keys, self.text_embedder.model_id, image_model)
            self._view = view
            self._view_version = self.store.data_version()
            self._lookup = None
        return self._view

    def _abs_path(self, root_key: str, relpath: str) -> Path:
        return self._keys[root_key] / relpath

    def _rows_for(self, view: View, items: Collection[str]) -> list[int]:
        if self._lookup is None:
            lookup: dict[str, list[int]] = {}
            for i, (key, rel, sha) in enumerate(
                zip(view.roots, view.relpaths, view.sha256, strict=True)
            ):
                lookup.setdefault(sha, []).append(i)
                lookup.setdefault(str(self._abs_path(key, rel)), []).append(i)
            self._lookup = lookup
        rows: set[int] = set()
        for item in items:
            text = str(item)
            if _SHA256.fullmatch(text):
                rows.update(self._lookup.get(text, []))
                continue
            path = Path(text).expanduser()
            for candidate in {os.path.abspath(path), str(path.resolve())}:
                rows.update(self._lookup.get(candidate, []))
        return sorted(rows)

    def _raise_empty(self) -> None:
        folders = ", ".join(str(r) for r in self._roots)
        indexed = all(self.store.get_meta(f"indexed:{k}") for k in self._keys)
        if not indexed:
            raise InputError(
                f"image folder {folders} has not been indexed yet",
                f"run `xcomposer index {folders}` first",
            )
        raise InputError(
            f"image folder {folders} has no usable images",
            f"add {_IMAGE_KINDS} files (or fix those `xcomposer index` lists as skipped), "
            f"then run `xcomposer index {folders}`",
        )

    def _query_vector(self, query: str) -> np.ndarray:
        model = self.text_embedder.model_id
        key = {"xcomposer.library": "query-embedding", "model": model, "text": query}
        if self.cache is not None:
            cached = self.cache.get(key)
            if isinstance(cached, list) and cached:
                return np.asarray(cached, dtype=np.float32)
        vector = self.store.get_query(model, query)
        if vector is None:
            vector = self.text_embedder.embed([query])[0]
            self.store.put_query(model, query, vector)
        if self.cache is not None:
            self.cache.put(key, [float(x) for x in vector])
        return vector

    def _image_query_vector(self, query: str) -> np.ndarray:
        assert self.image_embedder is not None
        model = f"image-text:{self.image_embedder.model_id}"
        vector = self.store.get_query(model, query)
        if vector is None:
            vector = self.image_embedder.embed_texts([query])[0]
            self.store.put_query(model, query, vector)
        return vector

    def search(
        self,
        query: str,
        k: int = 4,
        exclude: Collection[str] = (),
        filters: SearchFilters | None = None,
        diverse: bool = True,
    ) -> list[Match]:
        """The ``k`` images whose descriptions best match ``query``, best first.

        ``exclude`` holds sha256s or paths of images already used (with
        ``diverse``, their near-duplicates are left out too); ``filters``
        restricts by subfolder glob, minimum size and orientation.
        """
        query = " ".join(str(query).split())
        if not query:
            raise InputError("the search text is empty", "describe the image you are looking for")
        if k < 1:
            raise InputError(f"k must be at least 1 (got {k})", "ask for 1 or more images")
        view = self._current_view()
        if len(view) == 0:
            self._raise_empty()
        qvec = self._query_vector(query)
        if qvec.shape[0] != view.vectors.shape[1]:
            raise InputError(
                "the index was embedded with another text model", "run `xcomposer index` again"
            )
        mask = np.ones(len(view), dtype=bool)
        excluded = self._rows_for(view, exclude) if exclude else []
        mask[excluded] = False
        if filters is not None:
            mask &= ranking.filter_mask(view, filters)
        fused = view.image_vectors is not None and self.image_embedder is not None
        if len(view) > ranking.EXACT_LIMIT and not fused:
            if view.bits is None:
                view.bits = ranking.sign_bits(view.vectors)
            scores, mask = ranking.approximate_scores(view.vectors, view.bits, qvec, mask)
        else:
            scores = ranking.dot(view.vectors, qvec)
        if fused:
            image_scores = ranking.dot(view.image_vectors, self._image_query_vector(query))
            scores = ranking.fuse(scores, image_scores, mask)
        candidates = ranking.top_rows(scores, mask, max(RERANK_CANDIDATES, 8 * k))
        if len(candidates) == 0:
            return []
        stored = self.store.rows(view.ids[candidates].tolist(), ["sources", "source_vecs"])
        rescored: list[tuple[float, int, str]] = []
        for row in candidates:
            data = stored[int(view.ids[row])]
            sources = [tuple(s) for s in json.loads(data["sources"])]
            source_scores = _source_scores(sources, data["source_vecs"], qvec)
            score, best = ranking.combine(float(scores[row]), source_scores)
            matched = f"{sources[best][0]}: {sources[best][1]}" if best >= 0 else ""
            rescored.append((score, int(row), matched))
        rescored.sort(key=lambda t: -t[0])
        avoid = [int(view.phash[r]) for r in excluded]
        chosen = ranking.pick([r for _, r, _ in rescored], view, k, diverse, avoid)
        by_row = {r: (s, m) for s, r, m in rescored}
        details = self.store.rows(
            view.ids[chosen].tolist(), ["description", "alt", "sources", "format", "orientation"]
        )
        return [self._match(view, row, details[int(view.ids[row])], *by_row[row]) for row in chosen]

    def _match(self, view: View, row: int, data: dict, score: float, matched: str) -> Match:
        return Match(
            path=self._abs_path(view.roots[row], view.relpaths[row]),
            sha256=view.sha256[row],
            score=round(float(score), 6),
            description=data["description"],
            matched=matched,
            alt=data["alt"],
            width=int(view.width[row]),
            height=int(view.height[row]),
            sources=tuple(tuple(s) for s in json.loads(data["sources"])),
            relpath=view.relpaths[row],
            format=data["format"],
            orientation=data["orientation"],
        )

    # ------------------------------------------------------------- one entry

    def _entry_id(self, path_or_sha256: str | Path) -> int | None:
        text = str(path_or_sha256)
        keys = list(self._keys)
        if _SHA256.fullmatch(text):
            return self.store.find(keys, sha256=text)
        path = Path(text).expanduser()
        path = Path(os.path.abspath(path)) if path.is_symlink() else path.resolve()
        for key, root in self._keys.items():
            if path.is_relative_to(root):
                found = self.store.find([key], relpath=path.relative_to(root).as_posix())
                if found is not None:
                    return found
        return None

    def entry(self, path_or_sha256: str | Path) -> Match | None:
        """The indexed record of one image (by path or sha256), ``score`` 0; ``None`` if absent."""
        image_id = self._entry_id(path_or_sha256)
        if image_id is None:
            return None
        fields = ["root", "relpath", "sha256", "width", "height", "description", "alt",
                  "sources", "format", "orientation"]  # fmt: skip
        data = self.store.rows([image_id], fields)[image_id]
        sources = [tuple(s) for s in json.loads(data["sources"])]
        return Match(
            path=self._abs_path(data["root"], data["relpath"]),
            sha256=data["sha256"],
            score=0.0,
            description=data["description"],
            matched=f"{sources[0][0]}: {sources[0][1]}" if sources else "",
            alt=data["alt"],
            width=data["width"],
            height=data["height"],
            sources=tuple(sources),
            relpath=data["relpath"],
            format=data["format"],
            orientation=data["orientation"],
        )

    def thumbnail(self, path_or_sha256: str | Path) -> bytes | None:
        """The stored JPEG thumbnail (at most 160 px a side) of one image."""
        image_id = self._entry_id(path_or_sha256)
        if image_id is None:
            return None
        return self.store.rows([image_id], ["thumbnail"])[image_id]["thumbnail"]

    def fingerprint(self) -> str:
        """A digest of the indexed content (paths, bytes, descriptions, embedding model)."""
        version = (self.store.data_version(), self._generation)
        key = hash(version)
        if self._fingerprint is not None and self._fingerprint[0] == key:
            return self._fingerprint[1]
        digest = hashlib.sha256(self.text_embedder.model_id.encode("utf-8"))
        if self.image_embedder is not None:
            digest.update(self.image_embedder.model_id.encode("utf-8"))
        for row in self.store.content_rows(list(self._keys)):
            digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        value = digest.hexdigest()[:32]
        self._fingerprint = (key, value)
        return value
