"""Reproducible results: tasks named by their inputs, answered from a committed store.

A task's inputs are everything that decides its result: what a page (or any other
caller) asks, the content fingerprint of the files it reads
(:class:`~.library.fingerprint.FolderFingerprints`), and the engine's identity
(settings and recipe versions, :meth:`Engine.identity`).  Their SHA-256 names the
task's entry in a :class:`ResultStore`, a folder meant to be committed, so a fresh
clone shows the same results without a model.  An entry also records the model
files' fingerprints, checked whenever the model is there: a result made by another
model file is made again.

:class:`Workshop` answers tasks from the store and runs the missing ones on the
engine: all at once (:func:`run_all`, as many at a time as the backends take), or
one by one in the background on a :class:`JobRunner` while a preview server keeps
serving.  Frozen (CI, a machine without the model), a missing task is reported with
the command that fills the store.  Nothing here imports pydantic or a model until a
task has to run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import ResultCache, cache_key
from .errors import XComposerError
from .jobs import Job, JobRunner, run_all

if TYPE_CHECKING:
    from .engine import Engine
    from .engines import Engines
    from .progress import Progress
    from .remembered import EngineFacts

STORE_FORMAT = 2
GITIGNORE = "# Written by xcomposer: commit blocks/, the rest is local.\nanswers/\nindex/\n"

Run = Callable[["Engine", Callable[["Progress"], None]], Any]
Logger = logging.Logger | logging.LoggerAdapter


class ResultStore(ResultCache):
    """A project's cache folder; thread-safe.  Its layout::

    blocks/ab/ab12....json   finished results, named by their inputs (commit this folder)
    answers/                 the engine's cache of single model answers (local speed-up)
    index/                   the image library's index (local)
    .gitignore               leaves answers/ and index/ out of git
    """

    def __init__(self, cache_dir: Path, readonly: bool = False) -> None:
        self.cache_dir = Path(cache_dir)
        self.results = self.cache_dir / "blocks"
        self.answers_dir = self.cache_dir / "answers"
        self.index_dir = self.cache_dir / "index"
        super().__init__(self.results, readonly)

    @staticmethod
    def key(inputs: dict[str, Any]) -> dict[str, Any]:
        return {"format": STORE_FORMAT, **inputs}

    @staticmethod
    def digest(inputs: dict[str, Any]) -> str:
        """The name of the entry for ``inputs``: the SHA-256 of them as canonical JSON."""
        return cache_key(ResultStore.key(inputs))

    def ensure_layout(self) -> None:
        self.results.mkdir(parents=True, exist_ok=True)
        ignore = self.cache_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text(GITIGNORE, encoding="utf-8")

    def put(self, key: Any, value: Any) -> None:
        self.ensure_layout()
        super().put(key, value)


@dataclass
class Task:
    """One unit of reproducible work: a page's block, the alt text of an image."""

    digest: str
    inputs: dict[str, Any]
    where: str
    """Where it is asked for, as messages name it (``page.md:LINE``)."""
    kind: str
    subject: str
    """What it makes, for messages: ``this compose block``, ``alt text of this image``."""
    backend: str | None
    run: Run = field(repr=False)


@dataclass
class Outcome:
    """What became of a task in this run."""

    state: str
    """``cached``, ``composed``, ``pending`` (running in the background), ``missing``
    (frozen, not in the store) or ``failed``."""
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class WorkshopSettings:
    """What one run's tasks are named and answered with (a preview server renews them)."""

    store: ResultStore
    facts: EngineFacts
    live: Callable[[], Engines]
    """The live engines, created (and the engine imported) when the first task runs."""
    frozen: bool
    fill_command: str
    """The command that fills the store where the model runs (for frozen misses)."""
    shown_store: str
    """The results folder as messages show it (relative to the project)."""


class Workshop:
    """Answers tasks from the store and runs the missing ones; keeps its background work
    across runs (``settings`` are replaced with each run)."""

    def __init__(self, settings: WorkshopSettings, log: Logger | None = None) -> None:
        self.settings = settings
        self.log: Logger = log or logging.getLogger("xcomposer.reproducible")
        self._background: JobRunner | None = None
        self._lock = threading.Lock()
        self._stale: set[str] = set()

    @property
    def store(self) -> ResultStore:
        return self.settings.store

    def task(
        self,
        inputs: dict[str, Any],
        *,
        where: str,
        kind: str,
        subject: str,
        backend: str | None,
        run: Run,
    ) -> Task:
        """A task over ``inputs`` (what it asks and the fingerprints of what it reads), named
        with the engine's identity for ``backend`` too."""
        inputs = {**inputs, "engine": self.settings.facts.identity(backend)}
        return Task(ResultStore.digest(inputs), inputs, where, kind, subject, backend, run)

    # -- the store ----------------------------------------------------------------------
    def cached(self, task: Task) -> Any | None:
        """The task's stored result if it is there and was made by the model we have."""
        key = ResultStore.key(task.inputs)
        entry = self.store.get(key)
        if not isinstance(entry, dict) or "result" not in entry:
            return None
        current = self.settings.facts.models(task.backend)
        if current is not None and entry.get("models") not in (None, current):
            self.log.info("%s: cached for another model file; it is composed again", task.where)
            with self._lock:
                self._stale.add(task.digest)
            return None
        self.store.mark_used(key)
        return entry["result"]

    def _keep(self, task: Task, result: Any, models: Any) -> None:
        key = ResultStore.key(task.inputs)
        self.store.put(key, {"models": models, "result": result})
        self.store.mark_used(key)

    def missing_message(self, task: Task) -> str:
        with self._lock:
            stale = task.digest in self._stale
        state = "is cached for another model file" if stale else "is not in the cache"
        return (
            f"{task.where}: {task.subject} {state} (frozen mode: no model is called); "
            f"fill the cache where the model runs with `{self.settings.fill_command}` and "
            f"commit {self.settings.shown_store}/"
        )

    # -- running ------------------------------------------------------------------------
    def resolve(self, tasks: Iterable[Task], background: bool = False) -> dict[str, Outcome]:
        """Every task's outcome by digest: from the store, run now, or (``background``) pending."""
        outcomes: dict[str, Outcome] = {}
        todo: dict[str, Task] = {}
        for task in tasks:
            if task.digest in outcomes or task.digest in todo:
                continue
            result = self.cached(task)
            if result is not None:
                outcomes[task.digest] = Outcome("cached", result)
            elif self.settings.frozen:
                outcomes[task.digest] = Outcome("missing", error=self.missing_message(task))
            else:
                todo[task.digest] = task
        if background:
            for task in todo.values():
                self.run_in_background(task)
                outcomes[task.digest] = Outcome("pending")
        elif todo:
            engines = self.settings.live()
            workers = min(engines.get(task.backend).concurrency() for task in todo.values())
            works = [lambda report, task=task: self.run(task, report) for task in todo.values()]
            outcomes |= dict(zip(todo, run_all(works, workers, name="task"), strict=True))
        return outcomes

    def run(self, task: Task, report: Callable[[Progress], None] | None = None) -> Outcome:
        """Run one task now; a user-fixable failure becomes a failed outcome, never half a result.

        ``report`` (a job runner's) gets every progress report: it stops a cancelled task.
        """

        def progress(p: Progress) -> None:
            if report is not None:
                report(p)
            if p.stage != "done" and p.total and p.done == p.total:
                self.log.info("%s: %s %s", task.where, task.kind, p)

        try:
            engines = self.settings.live()
            result = task.run(engines.get(task.backend), progress)
        except XComposerError as err:
            return Outcome("failed", error=f"{task.where}: {err}")
        self._keep(task, result, engines.models(task.backend))
        self.log.info("%s: %s: done", task.where, task.subject)
        return Outcome("composed", result)

    def run_in_background(self, task: Task) -> None:
        """Run ``task`` on the workshop's job runner; the same task never runs twice at once."""
        with self._lock:
            if self._background is None:
                live = self.settings.live
                self._background = JobRunner(
                    lambda: live().get(None).concurrency(), thread_name="xcomposer-background"
                )
            runner = self._background
        if any(j.key == task.digest and not j.done for j in runner.jobs()):
            return
        self.log.info("%s: %s is being composed in the background", task.where, task.subject)
        runner.submit(
            lambda report: self.run(task, report),
            name=task.where,
            key=task.digest,
            on_done=self._log_failure,
        )

    def _log_failure(self, done: Job) -> None:
        """A background task's end: its failure logged (the next run shows it)."""
        if done.error is not None:
            self.log.error("composing failed: %s", done.message)
        elif done.result is not None and done.result.state == "failed":
            self.log.error("%s", done.result.error)

    def pending(self) -> int:
        with self._lock:
            runner = self._background
        return runner.pending() if runner is not None else 0

    def shutdown(self) -> None:
        with self._lock:
            runner, self._background = self._background, None
        if runner is not None:
            runner.shutdown()
