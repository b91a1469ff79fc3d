"""Blocks as jobs: their cache keys, the cache lookup, and composing the ones that are missing.

A job's inputs are what the page says (instruction or text, options, portable
paths), the content fingerprint of the image folders it draws from (or of the
one image it describes), and the engine's settings and recipe versions.  Its
result is stored with image paths relative to mkdocs.yml, so a committed cache
works on any machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs.plugins import get_plugin_logger

from .block_cache import BlockCache
from .engine_state import EngineFacts
from .fingerprint import Fingerprints
from .spec import BlockSpec, Folders

if TYPE_CHECKING:  # the engine is imported only when something is composed
    from xcomposer import Article, Engine, Progress

    from .engines import Engines

log = get_plugin_logger(__name__)

Runner = Callable[["Engine", Callable[["Progress"], None]], Any]


@dataclass
class Job:
    """One unit of cached work: a block, or the alt text of one image."""

    digest: str
    inputs: dict[str, Any]
    where: str
    """``page.md:LINE``."""
    kind: str
    """``compose``, ``illustrate``, ``describe`` or ``alt``."""
    backend: str | None
    run: Runner = field(repr=False)


@dataclass
class Outcome:
    """What became of a job in this build."""

    state: str
    """``cached``, ``composed``, ``pending`` (serve: composing in the background), ``missing``
    (frozen, not in the cache) or ``failed``."""
    result: Any = None
    error: str | None = None


class Workshop:
    """Builds jobs from specs, answers them from the cache, composes the rest."""

    def __init__(
        self,
        cache: BlockCache,
        facts: EngineFacts,
        live: Callable[[], Engines],
        folders: Folders,
        fingerprints: Fingerprints,
        frozen: bool,
        concurrency: int,
        fill_command: str,
    ) -> None:
        self._background: ThreadPoolExecutor | None = None
        self._in_flight: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._stale: set[str] = set()
        self.reconfigure(
            cache, facts, live, folders, fingerprints, frozen, concurrency, fill_command
        )

    def reconfigure(
        self,
        cache: BlockCache,
        facts: EngineFacts,
        live: Callable[[], Engines],
        folders: Folders,
        fingerprints: Fingerprints,
        frozen: bool,
        concurrency: int,
        fill_command: str,
    ) -> None:
        """New settings for the next build (serve keeps the workshop and its background work)."""
        self.cache = cache
        self.facts = facts
        self.live = live
        """The live engines, created (and the engine imported) on the first composition."""
        self.folders = folders
        self.fingerprints = fingerprints
        self.frozen = frozen
        self.concurrency = max(1, concurrency)
        self.fill_command = fill_command

    # -- jobs ---------------------------------------------------------------------------
    def job_for(self, spec: BlockSpec) -> Job:
        inputs = spec.key_inputs(self.folders)
        if spec.kind == "describe":
            assert spec.image is not None
            inputs["content"] = self.fingerprints.file(spec.image)
        else:
            inputs["content"] = self.fingerprints.folders(spec.image_dirs)
        inputs["engine"] = self.facts.identity(spec.backend)
        return Job(
            digest=BlockCache.digest(inputs),
            inputs=inputs,
            where=spec.block.where,
            kind=spec.kind,
            backend=spec.backend,
            run=lambda engine, progress: _run_spec(engine, spec, self.folders, progress),
        )

    def alt_job(self, where: str, image: Path) -> Job:
        inputs = {
            "kind": "alt",
            "content": self.fingerprints.file(image),
            "folder": self.fingerprints.folder(image.parent),
            "engine": self.facts.identity(None),
        }
        return Job(
            digest=BlockCache.digest(inputs),
            inputs=inputs,
            where=where,
            kind="alt",
            backend=None,
            run=lambda engine, progress: _alt_text(engine, image),
        )

    # -- the cache ----------------------------------------------------------------------
    def cached(self, job: Job) -> Any | None:
        """The job's stored result if it is there and was made by the model we have."""
        entry = self.cache.get(job.digest)
        if entry is None:
            return None
        current = self.facts.models(job.backend)
        if current is not None and entry.get("models") not in (None, current):
            log.info("%s: cached for another model file; it is composed again", job.where)
            with self._lock:
                self._stale.add(job.digest)
            return None
        self.cache.mark_used(job.digest)
        return entry["result"]

    def _store(self, job: Job, result: Any, models: Any) -> None:
        self.cache.put(job.digest, job.inputs, models, result)
        self.cache.mark_used(job.digest)

    # -- running ------------------------------------------------------------------------
    def resolve(self, jobs: Iterable[Job], background: bool = False) -> dict[str, Outcome]:
        """Every job's outcome: from the cache, composed now, or (``background``) pending."""
        outcomes: dict[str, Outcome] = {}
        todo: dict[str, Job] = {}
        for job in jobs:
            if job.digest in outcomes or job.digest in todo:
                continue
            result = self.cached(job)
            if result is not None:
                outcomes[job.digest] = Outcome("cached", result)
            elif self.frozen:
                outcomes[job.digest] = Outcome("missing", error=self.missing_message(job))
            else:
                todo[job.digest] = job
        if background:
            for job in todo.values():
                self.compose_in_background(job)
                outcomes[job.digest] = Outcome("pending")
            return outcomes
        if self.concurrency == 1 or len(todo) <= 1:
            for job in todo.values():
                outcomes[job.digest] = self.compose(job)
            return outcomes
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="xcomposer") as pool:
            futures = {digest: pool.submit(self.compose, job) for digest, job in todo.items()}
            for digest, future in futures.items():
                outcomes[digest] = future.result()
        return outcomes

    def missing_message(self, job: Job) -> str:
        what = "alt text of this image" if job.kind == "alt" else f"this {job.kind} block"
        with self._lock:
            stale = job.digest in self._stale
        state = "is cached for another model file" if stale else "is not in the cache"
        return (
            f"{job.where}: {what} {state} (frozen mode: no model is called); "
            f"fill the cache where the model runs with `{self.fill_command}` and commit "
            f"{self.folders.portable(self.cache.blocks)}/"
        )

    def compose(self, job: Job) -> Outcome:
        """Run one job now; a user-fixable failure becomes a failed outcome, never half a result."""
        from xcomposer import XComposerError

        try:
            engines = self.live()
            engine = engines.get(job.backend)
            result = job.run(engine, _progress_logger(job))
        except XComposerError as err:
            return Outcome("failed", error=f"{job.where}: {err}")
        self._store(job, result, engines.models(job.backend))
        what = "alt text written" if job.kind == "alt" else f"{job.kind} block composed"
        log.info("%s: %s", job.where, what)
        return Outcome("composed", result)

    # -- serve: background composition --------------------------------------------------
    def compose_in_background(self, job: Job, on_done: Callable[[], None] | None = None) -> None:
        with self._lock:
            if job.digest in self._in_flight:
                return
            if self._background is None:
                self._background = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="xcomposer-serve"
                )
            log.info("%s: %s block is being composed in the background", job.where, job.kind)
            future = self._background.submit(self.compose, job)
            self._in_flight[job.digest] = future

        def finished(done: Future) -> None:
            with self._lock:
                self._in_flight.pop(job.digest, None)
            outcome = done.result() if done.exception() is None else None
            if outcome is None:
                log.error("%s: composing failed: %s", job.where, done.exception())
            elif outcome.state == "failed":
                log.error("%s", outcome.error)

        future.add_done_callback(finished)

    def pending(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._background = self._background, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _progress_logger(job: Job) -> Callable[[Progress], None]:
    def report(p: Progress) -> None:
        if p.stage == "done" or p.total == 0 or p.done != p.total:
            return
        log.info("%s: %s %s", job.where, job.kind, p)

    return report


def _run_spec(
    engine: Engine, spec: BlockSpec, folders: Folders, progress: Callable[[Progress], None]
) -> Any:
    """Compose one block; the result is stored as plain data with portable paths."""
    if spec.kind == "describe":
        assert spec.image is not None
        text = engine.describe(
            spec.image, spec.question, style=spec.style, language=spec.language, progress=progress
        )
        return {"text": text}
    dirs = [str(d) for d in spec.image_dirs]
    if spec.kind == "compose":
        article = engine.compose(
            spec.text,
            dirs,
            n_images=spec.n_images,
            candidates=spec.candidates,
            language=spec.language,
            sections=spec.sections,
            words=spec.words,
            seed=spec.seed,
            title=spec.title,
            progress=progress,
        )
    else:
        article = engine.illustrate(
            spec.text,
            dirs,
            n_images=spec.n_images,
            candidates=spec.candidates,
            seed=spec.seed,
            progress=progress,
        )
    return portable_article(article, folders)


def _alt_text(engine: Engine, image: Path) -> dict[str, str]:
    from xcomposer import InputError

    if engine.has_vision("describe"):
        return {"alt": engine.describe(image, style="alt"), "how": "model"}
    match = engine.open_library([image.parent]).entry(image)
    text = ""
    if match is not None:
        # A person's words first; a description made only of the file name is no alt text.
        described = any(source != "filename" for source, _ in match.sources)
        text = (match.alt or match.description).strip() if described else ""
    if not text:
        raise InputError(
            f"no description of image {image.name} to write its alt text from",
            f"write the alt text, add a sidecar {image.stem}.txt, or configure a vision model",
        )
    return {"alt": text, "how": "library"}


def portable_article(article: Article, folders: Folders) -> dict[str, Any]:
    """The article as stored: image paths relative to mkdocs.yml's folder, pixel sizes kept."""
    data = article.to_dict()
    for fig in data["figures"]:
        fig["size"] = _pixel_size(Path(fig["image"]))
        fig["image"] = folders.portable(fig["image"])
        for cand in fig.get("candidates", []):
            cand["image"] = folders.portable(cand["image"])
    return data


def load_article(data: dict[str, Any], folders: Folders) -> dict[str, Any]:
    """A stored article with its figures' image paths made absolute again.

    (The candidates keep their stored, portable paths: nothing renders them.)
    """
    figures = [dict(fig, image=str(folders.absolute(fig["image"]))) for fig in data["figures"]]
    return dict(data, figures=figures)


def _pixel_size(image: Path) -> list[int] | None:
    from PIL import Image

    try:
        with Image.open(image) as img:
            return list(img.size)
    except (OSError, ValueError):
        return None
