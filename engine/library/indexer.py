"""One indexing run: find what changed under the roots, describe it, embed it, store it.

Per file, the cheapest test that settles it wins: same size and mtime and the
same sidecar texts -> unchanged (no read); same bytes (hash) -> only the
stored state is refreshed; otherwise the image is decoded and described again.
Work is written in small transactions, so a Ctrl-C keeps everything before the
two batches in flight (one being embedded while the next is read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import ResultCache
from ..config import LibraryConfig
from ..errors import BackendError, CacheMissError, ImageError, ModelError, XComposerError
from ..images import file_sha256, flatten, open_image
from ..progress import Progress, ProgressCallback
from .docs_refs import collect_references
from .embeddings import ImageEmbedder, TextEmbedder
from .features import analyse
from .index import IndexStore, StoredState, dumps, indexer_lock, to_signed64
from .records import IndexReport
from .row_vectors import RowVectors
from .scan import Found, ScanCounts, Skip, scan_root
from .sources import (
    Source,
    assemble,
    captions_entry,
    captions_file_sources,
    choose_alt,
    filename_source,
    load_folder_captions,
    metadata_sources,
    order_sources,
    sidecar_names,
    sidecar_sources,
)

log = logging.getLogger("xcomposer.library")

#: Files per write and per embedding call; the embedder splits a call into chunks for its
#: workers, and one batch is embedded while the next is read (docs/library.md).
BATCH_FILES = 256
BATCH_SECONDS = 2.0
IMAGE_EMBED_SIDE = 512
OCR_KIND = "ocr:rapidocr"


@dataclass
class Work:
    """One file's pending write."""

    found: Found
    root_key: str
    kind: str  # "added" | "updated" | "unchanged"
    row: dict[str, Any] = field(default_factory=dict)
    state: StoredState | None = None
    needs_text: bool = False
    image_for_embedding: Any = None


def short_reason(err: XComposerError, path: Path) -> str:
    """An error message without the full path (the report prints the path already)."""
    text = str(err).replace(str(path), path.name)
    return text.replace(f"image {path.name} ", "").replace(f"{path.name} ", "", 1)


class Indexer:
    """Runs :meth:`Library.update`; holds what one run needs."""

    def __init__(
        self,
        store: IndexStore,
        roots: dict[str, Path],
        index_dir: Path,
        config: LibraryConfig,
        text_embedder: TextEmbedder,
        image_embedder: ImageEmbedder | None,
        cache: ResultCache | None,
        describe_image: Callable[[Path], str] | None,
        describer_id: str | None,
    ) -> None:
        self.store = store
        self.roots = roots
        self.index_dir = index_dir
        self.config = config
        self.text = text_embedder
        self.image = image_embedder
        self.cache = cache
        self.describe_image = describe_image
        self.describer_id = describer_id
        self._captions: dict[str, dict[str, Any]] = {}
        self._refs: dict[str, list[Source]] = {}
        self.vectors = RowVectors(text_embedder)
        self._in_flight: list[tuple[list[Work], Callable[[], None] | None]] = []

    # ------------------------------------------------------------------ run

    def run(self, progress: ProgressCallback, embed: bool) -> IndexReport:
        started = time.perf_counter()
        report = IndexReport(index_path=self.store.path)

        def waiting() -> None:
            progress(Progress("index", 0, 0, detail="waiting for another indexing run to finish"))

        with indexer_lock(self.index_dir, on_wait=waiting):
            self._refs = collect_references(
                Path(self.config.docs_dir) if self.config.docs_dir else None
            )
            states = self.store.states()
            counts = ScanCounts()
            found: list[tuple[str, Found]] = []
            unlisted: list[str] = []
            for key, root in self.roots.items():
                others = {r for r in self.roots.values() if r != root and r.is_relative_to(root)}
                for item in scan_root(
                    root,
                    follow_symlinks_out=self.config.follow_symlinks_out,
                    skip_dirs=frozenset({*others, self.index_dir}),
                    counts=counts,
                ):
                    if isinstance(item, Skip):
                        report.skipped.append((item.path, item.reason))
                        if item.path.is_dir() and not item.path.is_symlink():
                            unlisted.append(str(item.path))
                    else:
                        found.append((key, item))
            report.ignored = counts.ignored
            seen: set[tuple[str, str]] = set()
            try:
                self._index_found(found, states, seen, report, progress, embed)
            finally:
                self._in_flight.clear()  # batches not written when this stopped early
                self.vectors.close()
            self._remove_missing(states, seen, unlisted, report)
            with self.store.transaction() as db:
                for key in self.roots:
                    self.store.set_meta(f"indexed:{key}", str(time.time()), db)
            if embed:
                report.embedded += self.embed_pending(progress)
            else:
                report.pending = len(self.store.pending(list(self.roots), self.text.model_id))
        report.seconds = time.perf_counter() - started
        progress(Progress("index", len(found), len(found), detail="done"))
        return report

    def _index_found(
        self,
        found: list[tuple[str, Found]],
        states: dict[tuple[str, str], StoredState],
        seen: set[tuple[str, str]],
        report: IndexReport,
        progress: ProgressCallback,
        embed: bool,
    ) -> None:
        """Plan, describe and embed every file found; write them batch by batch."""
        batch: list[Work] = []
        last_flush = time.perf_counter()
        for done, (key, item) in enumerate(found, 1):
            progress(Progress("index", done, len(found), detail=item.relpath))
            state = states.get((key, item.relpath))
            work = self._plan(key, item, state, report, embed)
            if work is None:
                continue
            seen.add((key, item.relpath))
            if work.kind == "unchanged" and not work.row and not work.needs_text:
                report.unchanged += 1
                continue
            batch.append(work)
            if len(batch) >= BATCH_FILES or time.perf_counter() - last_flush > BATCH_SECONDS:
                self._flush(batch, report, embed)
                batch, last_flush = [], time.perf_counter()
        self._flush(batch, report, embed, wait=True)

    def _remove_missing(
        self,
        states: dict[tuple[str, str], StoredState],
        seen: set[tuple[str, str]],
        unlisted: list[str],
        report: IndexReport,
    ) -> None:
        gone = []
        for (key, relpath), state in states.items():
            if key not in self.roots or (key, relpath) in seen:
                continue
            path = self.roots[key] / relpath
            if any(str(path).startswith(folder + os.sep) for folder in unlisted):
                continue  # its folder could not be listed this time: keep what we know
            gone.append(state.id)
            report.removed.append(path)
        if gone:
            with self.store.transaction() as db:
                self.store.delete(db, gone)

    # ----------------------------------------------------------------- plan

    def intrinsic_flags(self) -> list[str]:
        flags = []
        if self.config.ocr:
            flags.append("ocr")
        if self.describe_image is not None:
            flags.append(f"vision:{self.describer_id}")
        return flags

    def _folder_captions(self, item: Found) -> dict[str, Any]:
        folder = str(item.path.parent)
        if folder not in self._captions:
            self._captions[folder] = load_folder_captions(item.path.parent, item.folder_files)
        return self._captions[folder]

    def _page_refs(self, item: Found) -> list[Source]:
        return self._refs.get(os.path.realpath(item.path), []) if self._refs else []

    def external_signature(self, item: Found) -> str:
        """What the description depends on besides the image's bytes, without reading sidecars.

        Sidecars count by size and modification time; the folder's captions entry,
        the Markdown references, the relative path and the OCR switch by value.
        """
        sidecars = [
            [n, item.text_stats[n]] for n in sidecar_names(item.path) if n in item.text_stats
        ]
        entry = captions_entry(item.path, self._folder_captions(item))
        key = [sidecars, entry, self._page_refs(item), item.relpath, self.config.ocr]
        return hashlib.sha1(dumps(key).encode("utf-8")).hexdigest()

    def external_sources(self, item: Found) -> list[Source]:
        sources = sidecar_sources(item.path, item.folder_files)
        sources += captions_file_sources(item.path, self._folder_captions(item))
        sources += self._page_refs(item)
        sources += filename_source(item.relpath)
        return sources

    def _plan(
        self, key: str, item: Found, state: StoredState | None, report: IndexReport, embed: bool
    ) -> Work | None:
        flags = self.intrinsic_flags()
        work = Work(item, key, "updated" if state else "added", state=state)
        same_stat = state and state.size == item.size and state.mtime_ns == item.mtime_ns
        if not same_stat:
            try:
                sha = file_sha256(item.path)
            except OSError as err:
                report.skipped.append((item.path, f"cannot read the file ({err.strerror})"))
                return None
        else:
            sha = state.sha256
        stored_flags = json.loads(state.intrinsic_flags) if state else []
        if state and state.sha256 == sha and set(flags) <= set(stored_flags):
            if embed and self.image is not None and state.image_model != self.image.model_id:
                return self._full(work, item, sha, report)  # decoded for its pixels
            work.kind = "unchanged"
            if not same_stat:
                work.row.update(size=item.size, mtime_ns=item.mtime_ns)
            signature = self.external_signature(item)
            if state.external_sig != signature:
                texts, same = self._describe_again(state, item, signature)
                work.row.update(texts)
                if same:  # e.g. a sidecar saved again, or a page edit elsewhere
                    del work.row["sources"], work.row["description"], work.row["alt"]
                else:
                    work.kind = "updated"
                    work.needs_text = True
            if embed and state.text_model != self.text.model_id:
                work.needs_text = True
            return work
        return self._full(work, item, sha, report)

    def _describe_again(
        self, state: StoredState, item: Found, signature: str
    ) -> tuple[dict[str, Any], bool]:
        """New texts from the external sources and the stored intrinsic ones; and if unchanged."""
        stored = self.store.rows([state.id], ["intrinsic", "sources", "alt"])[state.id]
        intrinsic = [tuple(s) for s in json.loads(stored["intrinsic"])]
        texts = self._texts(intrinsic, self.external_sources(item), state.relpath, signature)
        same = texts["sources"] == stored["sources"] and texts["alt"] == stored["alt"]
        return texts, same

    def _texts(
        self, intrinsic: list, external: list[Source], relpath: str, signature: str
    ) -> dict[str, Any]:
        usable = [s for s in intrinsic if self.config.ocr or s[0] != "ocr"]
        sources = order_sources([*external, *usable])
        return {
            "sources": dumps(sources),
            "external_sig": signature,
            "description": assemble(sources),
            "alt": choose_alt(sources, relpath),
        }

    # ----------------------------------------------------------- describe

    def _full(self, work: Work, item: Found, sha: str, report: IndexReport) -> Work | None:
        try:
            img = open_image(
                item.path,
                max_pixels=self.config.max_image_pixels,
                max_bytes=self.config.max_file_bytes,
            )
        except ImageError as err:
            report.skipped.append((item.path, short_reason(err, item.path)))
            return None
        try:
            features, upright = analyse(img)
            intrinsic = metadata_sources(img)
            derived, flags = self._derived_sources(item.path, sha, upright, report)
            intrinsic += derived
        except XComposerError:
            raise
        except Exception as err:  # a file Pillow opened but cannot process further
            report.skipped.append((item.path, f"cannot be processed ({type(err).__name__}: {err})"))
            return None
        if self.image is not None:
            small = flatten(upright)
            small.thumbnail((IMAGE_EMBED_SIDE, IMAGE_EMBED_SIDE))
            work.image_for_embedding = small
        work.row.update(
            root=work.root_key,
            relpath=item.relpath,
            size=item.size,
            mtime_ns=item.mtime_ns,
            sha256=sha,
            format=features.format,
            width=features.width,
            height=features.height,
            orientation=features.orientation,
            phash=to_signed64(features.phash),
            thumbnail=features.thumbnail,
            intrinsic=dumps(intrinsic),
            intrinsic_flags=dumps(flags),
            text_model=None,
            text_vec=None,
            source_vecs=None,
            image_model=None,
            image_vec=None,
            indexed_at=time.time(),
            **self._texts(
                intrinsic, self.external_sources(item), item.relpath, self.external_signature(item)
            ),
        )
        work.needs_text = True
        return work

    def _derived_sources(
        self, path: Path, sha: str, upright: Any, report: IndexReport
    ) -> tuple[list[Source], list[str]]:
        """OCR text and a vision caption (as configured), and the flags of what was done."""
        out: list[Source] = []
        flags = self.intrinsic_flags()
        if self.config.ocr:
            text = self._remembered(sha, OCR_KIND, lambda: _ocr(upright))
            if text:
                out.append(("ocr", text))
        if self.describe_image is not None:
            kind = f"vision:{self.describer_id}"
            try:
                text = self._remembered(sha, kind, lambda: self.describe_image(path))
            except (ModelError, BackendError, CacheMissError):
                raise  # the model itself is broken or absent: every image would fail the same way
            except XComposerError as err:  # this image only
                report.warnings.append(f"no vision caption for {path}: {err}")
                flags.remove(kind)  # so that the next run asks again
                text = self.store.any_vision_caption(sha)
        else:
            text = self.store.any_vision_caption(sha)
        if text:
            out.append(("vision", text))
        return out, flags

    def _remembered(self, sha: str, kind: str, compute: Callable[[], str]) -> str:
        """A per-image text (OCR, vision caption): from the index, the result cache, or computed."""
        text = self.store.get_derived(sha, kind)
        if text is not None:
            return text
        key = {"xcomposer.library": kind, "sha256": sha}
        cached = self.cache.get(key) if self.cache is not None else None
        if isinstance(cached, str):
            text = cached
        else:
            text = " ".join(str(compute() or "").split())
            if self.cache is not None:
                self.cache.put(key, text)
        self.store.put_derived(sha, kind, text)
        return text

    # --------------------------------------------------------------- write

    def _flush(
        self, batch: list[Work], report: IndexReport, embed: bool, wait: bool = False
    ) -> None:
        """Start embedding ``batch``; write the batch started before it (and this one if ``wait``).

        A batch's texts are embedded in the background while the next batch is
        read and decoded (:mod:`.row_vectors`).
        """
        if batch:
            finish = self._start_embedding(batch) if embed else None
            self._in_flight.append((batch, finish))
        while len(self._in_flight) > (0 if wait else 1):
            done, finish = self._in_flight.pop(0)
            if finish is not None:
                finish()
                report.embedded += sum(1 for w in done if w.needs_text)
            self._write(done, report)

    def _write(self, batch: list[Work], report: IndexReport) -> None:
        with self.store.transaction() as db:
            for work in batch:
                if work.state is None or "relpath" in work.row:
                    self.store.write(db, work.row)
                elif work.row:
                    self.store.update_fields(db, work.state.id, **work.row)
        for work in batch:
            if work.kind == "added":
                report.added.append(work.found.path)
            elif work.kind == "updated":
                report.updated.append(work.found.path)
            else:
                report.unchanged += 1

    def _start_embedding(self, batch: list[Work]) -> Callable[[], None]:
        """Text vectors start in the background; the returned function completes the rows."""
        todo = [w for w in batch if w.needs_text]
        finish_text = None
        if todo:
            need_sources = [w for w in todo if "sources" not in w.row]
            stored = self.store.rows([w.state.id for w in need_sources], ["sources", "description"])
            entries = []
            for w in todo:
                got = w.row if "sources" in w.row else stored[w.state.id]
                entries.append((got["description"], json.loads(got["sources"])))
            finish_text = self.vectors.start(entries)

        def finish() -> None:
            if finish_text is not None:
                for w, fields in zip(todo, finish_text(), strict=True):
                    w.row.update(fields)
            self._embed_images(batch)

        return finish

    def _embed_images(self, batch: list[Work]) -> None:
        with_images = [w for w in batch if w.image_for_embedding is not None]
        if with_images and self.image is not None:
            vectors = self.image.embed_images([w.image_for_embedding for w in with_images])
            for w, vec in zip(with_images, vectors, strict=True):
                w.row["image_vec"] = vec.astype(np.float32).tobytes()
                w.row["image_model"] = self.image.model_id
                w.image_for_embedding = None

    def embed_pending(self, progress: ProgressCallback) -> int:
        """Embed images indexed with ``embed=False`` (or by another text model)."""
        ids = self.store.pending(list(self.roots), self.text.model_id)
        for start in range(0, len(ids), 256):
            chunk = ids[start : start + 256]
            rows = self.store.rows(chunk, ["sources", "description"])
            entries = [(rows[i]["description"], json.loads(rows[i]["sources"])) for i in chunk]
            vectors = self.vectors.now(entries)
            with self.store.transaction() as db:
                for i, fields in zip(chunk, vectors, strict=True):
                    self.store.update_fields(db, i, **fields)
            progress(Progress("index", start + len(chunk), len(ids), detail="embedding"))
        return len(ids)


def _ocr(img: Any) -> str:
    from .ocr import read_text

    return read_text(img)
