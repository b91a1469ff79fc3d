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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs.plugins import get_plugin_logger

from .block_cache import BlockCache
from .engine_state import EngineFacts
from .fingerprint import Fingerprints
from .spec import BlockSpec, Folders

if TYPE_CHECKING:  # the engine is imported only when something is composed
    from xcomposer import Engine, JobRunner, Progress

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


@dataclass(frozen=True)
class BuildSettings:
    """What one build's jobs are made and answered with."""

    cache: BlockCache
    facts: EngineFacts
    live: Callable[[], Engines]
    """The live engines, created (and the engine imported) on the first composition."""
    folders: Folders
    fingerprints: Fingerprints
    frozen: bool
    fill_command: str


class Workshop:
    """Builds jobs from specs, answers them from the cache, composes the rest.

    ``settings`` change with each build; serve keeps the workshop and its background work.
    """

    def __init__(self, settings: BuildSettings) -> None:
        self.settings = settings
        self._background: JobRunner | None = None
        self._lock = threading.Lock()
        self._stale: set[str] = set()

    @property
    def cache(self) -> BlockCache:
        return self.settings.cache

    # -- jobs ---------------------------------------------------------------------------
    def job_for(self, spec: BlockSpec) -> Job:
        inputs = spec.key_inputs(self.settings.folders)
        if spec.kind == "describe":
            assert spec.image is not None
            inputs["content"] = self.settings.fingerprints.file(spec.image)
        else:
            inputs["content"] = self.settings.fingerprints.folders(
                spec.image_dirs, self.settings.facts.library_reads
            )
        inputs["engine"] = self.settings.facts.identity(spec.backend)
        return Job(
            digest=BlockCache.digest(inputs),
            inputs=inputs,
            where=spec.block.where,
            kind=spec.kind,
            backend=spec.backend,
            run=lambda engine, progress: run_spec(engine, spec, self.settings.folders, progress),
        )

    def alt_job(self, where: str, image: Path) -> Job:
        inputs = {
            "kind": "alt",
            "content": self.settings.fingerprints.file(image),
            "folder": self.settings.fingerprints.folder(
                image.parent, self.settings.facts.library_reads
            ),
            "engine": self.settings.facts.identity(None),
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
        key = BlockCache.key(job.inputs)
        entry = self.cache.get(key)
        if not isinstance(entry, dict) or "result" not in entry:
            return None
        current = self.settings.facts.models(job.backend)
        if current is not None and entry.get("models") not in (None, current):
            log.info("%s: cached for another model file; it is composed again", job.where)
            with self._lock:
                self._stale.add(job.digest)
            return None
        self.cache.mark_used(key)
        return entry["result"]

    def _store(self, job: Job, result: Any, models: Any) -> None:
        key = BlockCache.key(job.inputs)
        self.cache.put(key, {"models": models, "result": result})
        self.cache.mark_used(key)

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
            elif self.settings.frozen:
                outcomes[job.digest] = Outcome("missing", error=self.missing_message(job))
            else:
                todo[job.digest] = job
        if background:
            for job in todo.values():
                self.compose_in_background(job)
                outcomes[job.digest] = Outcome("pending")
        elif todo:
            from xcomposer import run_all

            engines = self.settings.live()
            workers = min(engines.get(job.backend).concurrency() for job in todo.values())
            works = [lambda report, job=job: self.compose(job, report) for job in todo.values()]
            outcomes |= dict(zip(todo, run_all(works, workers, name="block"), strict=True))
        return outcomes

    def missing_message(self, job: Job) -> str:
        what = "alt text of this image" if job.kind == "alt" else f"this {job.kind} block"
        with self._lock:
            stale = job.digest in self._stale
        state = "is cached for another model file" if stale else "is not in the cache"
        return (
            f"{job.where}: {what} {state} (frozen mode: no model is called); "
            f"fill the cache where the model runs with `{self.settings.fill_command}` and commit "
            f"{self.settings.folders.portable(self.cache.blocks)}/"
        )

    def compose(self, job: Job, report: Callable[[Progress], None] | None = None) -> Outcome:
        """Run one job now; a user-fixable failure becomes a failed outcome, never half a result.

        ``report`` (a job runner's) gets every progress report: it stops a cancelled job.
        """
        from xcomposer import XComposerError

        def progress(p: Progress) -> None:
            if report is not None:
                report(p)
            if p.stage != "done" and p.total and p.done == p.total:
                log.info("%s: %s %s", job.where, job.kind, p)

        try:
            engines = self.settings.live()
            result = job.run(engines.get(job.backend), progress)
        except XComposerError as err:
            return Outcome("failed", error=f"{job.where}: {err}")
        self._store(job, result, engines.models(job.backend))
        what = "alt text written" if job.kind == "alt" else f"{job.kind} block composed"
        log.info("%s: %s", job.where, what)
        return Outcome("composed", result)

    # -- serve: background composition --------------------------------------------------
    def compose_in_background(self, job: Job) -> None:
        """Compose ``job`` on the engine's job runner; the same block is never composed twice."""
        from xcomposer import JobRunner

        with self._lock:
            if self._background is None:
                live = self.settings.live
                self._background = JobRunner(
                    lambda: live().get(None).concurrency(), thread_name="xcomposer-serve"
                )
            runner = self._background
        if any(j.key == job.digest and not j.done for j in runner.jobs()):
            return
        log.info("%s: %s block is being composed in the background", job.where, job.kind)
        runner.submit(
            lambda report: self.compose(job, report),
            name=job.where,
            key=job.digest,
            on_done=_log_failure,
        )

    def pending(self) -> int:
        with self._lock:
            runner = self._background
        return runner.pending() if runner is not None else 0

    def shutdown(self) -> None:
        with self._lock:
            runner, self._background = self._background, None
        if runner is not None:
            runner.shutdown()


def _log_failure(done: Any) -> None:
    """A background job's end: its failure logged (the page shows it on the next build)."""
    if done.error is not None:
        log.error("composing failed: %s", done.message)
    elif done.result is not None and done.result.state == "failed":
        log.error("%s", done.result.error)


def run_spec(engine: Engine, spec: BlockSpec, folders: Folders, progress: Any) -> Any:
    """Compose one block; the result is stored as plain data with portable paths."""
    if spec.kind == "describe":
        return {"text": engine.describe(spec.image, options=spec.options, progress=progress)}
    run = engine.compose if spec.kind == "compose" else engine.illustrate
    article = run(spec.text, [str(d) for d in spec.image_dirs], spec.options, progress=progress)
    return article.with_image_paths(folders.portable).to_dict()


def _alt_text(engine: Engine, image: Path) -> dict[str, str]:
    text, how = engine.alt_text(image)
    return {"alt": text, "how": how}


def load_article(data: dict[str, Any], folders: Folders) -> dict[str, Any]:
    """A stored article with its figures' image paths made absolute again.

    (The candidates keep their stored, portable paths: nothing renders them.)
    """
    figures = [dict(fig, image=str(folders.absolute(fig["image"]))) for fig in data["figures"]]
    return dict(data, figures=figures)
