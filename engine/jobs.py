"""Jobs: long engine calls on worker threads, with progress, cancel, results and errors.

Every long-lived front end runs its work through a :class:`JobRunner`: the MkDocs
plugin composes blocks in the background under ``serve``, the Jupyter server
queues REST requests, and :meth:`xcomposer.Engine.compose_many` runs several
articles at once.  A job's work is ``work(progress)``: it calls the engine with
``progress`` as its progress callback.

Concurrency comes from the backend (:attr:`Backend.concurrency`: 1 for a local
model, which answers one call at a time; a server's slots for a remote one), so
the runner takes ``workers`` as a number or as a function asked on first use.

Cancel is cooperative, between model calls: a queued job never starts; a running
job stops at the engine's next progress report, which raises :class:`JobCancelled`
and unwinds the call.  A model call that is already generating finishes first.

A job may have an ``owner`` (a notebook's kernel, a browser tab): the owner renews
it by following it, and :meth:`JobRunner.expire` cancels the jobs of an owner that
went away, so other work does not wait behind them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import XComposerError
from .progress import Progress, ProgressCallback

log = logging.getLogger("xcomposer.jobs")
T = TypeVar("T")
Work = Callable[[ProgressCallback], Any]

QUEUED, RUNNING, DONE, ERROR, CANCELLED = "queued", "running", "done", "error", "cancelled"
FINISHED = frozenset({DONE, ERROR, CANCELLED})


class JobCancelled(Exception):  # noqa: N818 - a signal that unwinds the work, not an error
    """Raised from a cancelled job's progress callback."""


@dataclass(frozen=True)
class JobEvent:
    """One progress report of a job, ``seconds`` after it started."""

    progress: Progress
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return self.progress.to_dict() | {"t": round(self.seconds, 3)}


class Job:
    """One unit of work and what became of it.  Thread-safe; read it from anywhere."""

    def __init__(
        self,
        job_id: str,
        name: str,
        key: str | None = None,
        owner: str | None = None,
        max_events: int = 500,
    ):
        self.id = job_id
        self.name = name
        """What the work is (``compose``, ``edit:rewrite``, ``page.md:12`` ...)."""
        self.key = key
        """Jobs with the same key are the same work: a runner never runs two at once."""
        self.owner = owner
        """Who the job is for (``kernel:<id>``, ``client:<id>``): cancelled when it goes."""
        self.seen = time.monotonic()
        """When the owner last followed the job (:meth:`JobRunner.renew`)."""
        self.state = QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        """The XComposerError (a user can fix it) or the bug that ended the job."""
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.cancel_requested = False
        self.dropped_events = 0
        self._events: list[JobEvent] = []
        self._max_events = max_events
        self._cond = threading.Condition()
        self._listeners: list[Callable[[Job], None]] = []
        self._done_callbacks: list[Callable[[Job], None]] = []

    # -- the worker's side -----------------------------------------------------------
    def report(self, progress: Progress) -> None:
        """The engine's progress callback: records the report, or stops a cancelled job."""
        if self.cancel_requested:
            raise JobCancelled(self.id)
        with self._cond:
            self._events.append(JobEvent(progress, time.time() - (self.started or self.created)))
            if len(self._events) > self._max_events:
                del self._events[0]
                self.dropped_events += 1
        self._changed()

    def _transition(self, state: str, *, only_from: frozenset[str], **fields: Any) -> bool:
        with self._cond:
            if self.state not in only_from:
                return False
            self.state = state
            now = time.time()
            if state == RUNNING:
                self.started = now
            if state in FINISHED:
                self.finished = now
            for name, value in fields.items():
                setattr(self, name, value)
            callbacks = list(self._done_callbacks) if state in FINISHED else []
        self._changed()
        for callback in callbacks:
            _call_safely(callback, self)
        return True

    def _finish(self, state: str, **fields: Any) -> bool:
        return self._transition(state, only_from=frozenset({QUEUED, RUNNING}), **fields)

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            _call_safely(listener, self)

    # -- everyone else's side ----------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state in FINISHED

    @property
    def message(self) -> str | None:
        """The error as one line: the user's fix, or (a bug) where to look."""
        if self.error is None:
            return None
        if isinstance(self.error, XComposerError):
            return str(self.error)
        return f"internal error in {self.name} ({type(self.error).__name__}); see the log and report it"

    def cancel(self) -> bool:
        """Ask the job to stop: queued, it never starts; running, it stops at its next report."""
        with self._cond:
            if self.done:
                return False
            self.cancel_requested = True
        if not self._transition(CANCELLED, only_from=frozenset({QUEUED})):
            self._changed()  # running: it stops at its next report
        return True

    def add_done_callback(self, callback: Callable[[Job], None]) -> None:
        """``callback(job)`` once the job finished (at once if it has)."""
        with self._cond:
            if not self.done:
                self._done_callbacks.append(callback)
                return
        _call_safely(callback, self)

    def event_count(self) -> int:
        """Reports so far, those dropped from the front included."""
        with self._cond:
            return self.dropped_events + len(self._events)

    def events(self, since: int = 0) -> list[JobEvent]:
        """The reports after the first ``since`` (as counted by :meth:`event_count`)."""
        with self._cond:
            return self._events[max(0, since - self.dropped_events) :]

    def last_progress(self) -> Progress | None:
        with self._cond:
            return self._events[-1].progress if self._events else None

    def wait(self, since: int | None = None, timeout: float | None = None) -> bool:
        """Block until the job finished (or, with ``since``, has more reports); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._ready(since):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    async def wait_async(self, since: int | None = None, timeout: float | None = None) -> bool:
        """:meth:`wait` on an event loop (an HTTP long-poll), never blocking it."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake(_: Job) -> None:
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # that loop is closed
                pass

        with self._cond:
            self._listeners.append(wake)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._ready(since):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                changed.clear()
                if self._ready(since):
                    break
                try:
                    await asyncio.wait_for(changed.wait(), left)
                except TimeoutError:
                    return False
            return True
        finally:
            with self._cond:
                self._listeners.remove(wake)

    def outcome(self) -> Any:
        """The result of a finished job; its error raised; :class:`JobCancelled` if cancelled."""
        self.wait()
        if self.state == CANCELLED:
            raise JobCancelled(self.id)
        if self.error is not None:
            raise self.error
        return self.result

    def to_dict(self, since: int = 0) -> dict[str, Any]:
        """The job as JSON-able data, with the progress reports after the first ``since``."""
        with self._cond:
            events = [e.to_dict() for e in self.events(since)]
            return {
                "id": self.id,
                "name": self.name,
                "state": self.state,
                "events": events,
                "next": self.event_count(),
                "progress": events[-1] if events else _last(self._events),
                "result": self.result if self.state == DONE else None,
                "error": self.message,
                "created": self.created,
                "started": self.started,
                "finished": self.finished,
                "cancel_requested": self.cancel_requested,
            }

    def _ready(self, since: int | None) -> bool:
        return self.done or (since is not None and self.event_count() > since)


class JobRunner:
    """Runs jobs on ``workers`` threads and keeps the last ``keep`` finished ones."""

    def __init__(
        self,
        workers: int | Callable[[], int] = 1,
        *,
        keep: int = 100,
        thread_name: str = "xcomposer-job",
    ) -> None:
        self._workers = workers
        self.keep = keep
        self._thread_name = thread_name
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    @property
    def workers(self) -> int:
        """How many jobs run at once (asked of ``workers`` on first use)."""
        if callable(self._workers):
            self._workers = self._workers()
        return max(1, int(self._workers))

    def submit(
        self,
        work: Work,
        *,
        name: str = "job",
        key: str | None = None,
        owner: str | None = None,
        on_done: Callable[[Job], None] | None = None,
    ) -> Job:
        """Queue ``work(progress)``; its return value becomes the job's result.

        With ``key``, an unfinished job of the same key is returned instead of a new one;
        ``owner`` says who it is for (:meth:`cancel_owner`, :meth:`expire`).
        """
        with self._lock:
            same = key is not None and next(
                (j for j in self._jobs.values() if j.key == key and not j.done), None
            )
            if same:
                job = same
            else:
                job = Job(f"{next(self._counter)}-{secrets.token_hex(12)}", name, key, owner)
                self._jobs[job.id] = job
                self._forget_old()
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self.workers, thread_name_prefix=self._thread_name
                    )
                self._pool.submit(_run, job, work)
        if on_done is not None:
            job.add_done_callback(on_done)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None:
            job.cancel()
        return job

    def renew(self, job: Job) -> None:
        """The job's owner is still there (it follows the job)."""
        job.seen = time.monotonic()

    def cancel_owner(self, owner: str) -> list[Job]:
        """Cancel every unfinished job of ``owner`` (its kernel or browser tab went away)."""
        gone = [j for j in self.jobs() if j.owner == owner and not j.done]
        for job in gone:
            job.cancel()
        if gone:
            log.info("xcomposer: cancelled %d job(s) of %s", len(gone), owner)
        return gone

    def expire(self, lease: float, alive: Callable[[str], bool] = lambda _owner: True) -> None:
        """Cancel owned jobs not followed for ``lease`` seconds, or whose owner is not ``alive``."""
        now = time.monotonic()
        owners = {
            j.owner
            for j in self.jobs()
            if j.owner and not j.done and (now - j.seen > lease or not alive(j.owner))
        }
        for owner in owners:
            self.cancel_owner(owner)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def pending(self) -> int:
        """Jobs queued or running."""
        return sum(1 for j in self.jobs() if not j.done)

    def running(self) -> int:
        return sum(1 for j in self.jobs() if j.state == RUNNING)

    def shutdown(self, wait: bool = False) -> None:
        """Cancel every unfinished job; with ``wait``, until the running ones stopped."""
        for job in self.jobs():
            job.cancel()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.done]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]


def run_all(
    works: Sequence[Work], workers: int, name: str = "job", progress: ProgressCallback | None = None
) -> list[Any]:
    """Run ``works`` at most ``workers`` at once; their results in order.

    Every report also goes to ``progress``.  The first failure cancels the rest (they
    stop at their next progress report) and is raised once all have stopped.
    """
    forward = progress or _ignore
    if workers <= 1 or len(works) <= 1:
        return [work(forward) for work in works]
    runner = JobRunner(min(workers, len(works)), thread_name=f"xcomposer-{name}")
    jobs: list[Job] = []
    failing = threading.Event()

    def stop_the_rest(job: Job) -> None:
        if job.state == ERROR:
            failing.set()
            for other in list(jobs):
                other.cancel()

    def reporting(work: Work) -> Work:
        return lambda report: work(lambda p: (report(p), forward(p))[0])

    try:
        for work in works:
            if failing.is_set():
                break
            jobs.append(runner.submit(reporting(work), name=name, on_done=stop_the_rest))
        for job in jobs:
            job.wait()
        failed = [job for job in jobs if job.state == ERROR]
        if failed:
            raise failed[0].error  # type: ignore[misc]
        return [job.outcome() for job in jobs]
    finally:
        runner.shutdown(wait=True)


def _run(job: Job, work: Work) -> None:
    if not job._transition(RUNNING, only_from=frozenset({QUEUED})):
        return  # cancelled while queued
    try:
        result = work(job.report)
    except JobCancelled:
        job._finish(CANCELLED)
    except XComposerError as err:
        job._finish(ERROR, error=err)
    except Exception as err:  # a bug: logged with its traceback, reported without it
        log.exception("xcomposer: job %s (%s) failed", job.id, job.name)
        job._finish(ERROR, error=err)
    else:
        job._finish(DONE, result=result)


def _last(events: list[JobEvent]) -> dict[str, Any] | None:
    return events[-1].to_dict() if events else None


def _ignore(_: Progress) -> None:
    pass


def _call_safely(callback: Callable[[Job], None], job: Job) -> None:
    try:
        callback(job)
    except Exception:  # a listener's bug must not kill the worker
        log.exception("xcomposer: a callback of job %s failed", job.id)
