"""Jobs: long model calls run on a queue, reported as progress events, polled and cancelled.

The server extension and the in-kernel fallback share this queue.  One worker
thread for local models (a llama.cpp or PyTorch model never runs two calls at
once); a remote backend gets as many workers as its configured concurrency.

A job stops when cancelled at the engine's next progress report: the report
raises :class:`JobCancelled`, which unwinds the engine's call.  A model call that
is already generating finishes first (llama.cpp cannot be interrupted midway).

A job may have an ``owner`` (``kernel:<id>`` or ``client:<id>``): the owner
renews it by following it, and :meth:`JobQueue.expire` cancels the jobs of an
owner that went away (a kernel restarted, a browser tab closed), so other
notebooks do not wait behind them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from xcomposer import Progress, XComposerError

from .errors import http_status

log = logging.getLogger("jupyter_xcomposer")

QUEUED, RUNNING, DONE, ERROR, CANCELLED = "queued", "running", "done", "error", "cancelled"
FINISHED = frozenset({DONE, ERROR, CANCELLED})
MAX_EVENTS = 500
CONTEXT_FULL = (
    "the text is longer than the model's context window; "
    "send a shorter text, or configure a model with a larger context (n_ctx)"
)


class JobCancelled(Exception):  # noqa: N818 - it is a signal, not an error
    """Raised from a job's progress callback to unwind the engine's call."""


@dataclass
class Job:
    """One queued model call and what it reported."""

    id: str
    op: str
    state: str = QUEUED
    events: list[dict[str, Any]] = field(default_factory=list)
    dropped_events: int = 0
    result: Any = None
    error: str | None = None
    status: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    owner: str | None = None
    seen: float = field(default_factory=time.monotonic)
    seq: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(
        default_factory=list, repr=False
    )

    # -- called from the worker thread -----------------------------------------------
    def report(self, progress: Progress) -> None:
        """The engine's progress callback: records the event, or stops a cancelled job."""
        if self.cancel_requested:
            raise JobCancelled(self.id)
        event = progress.to_dict()
        event["t"] = round(time.time() - (self.started or self.created), 3)
        with self._cond:
            self.events.append(event)
            if len(self.events) > MAX_EVENTS:
                del self.events[0]
                self.dropped_events += 1
        self._changed()

    def _set(self, **changes: Any) -> None:
        with self._cond:
            for key, value in changes.items():
                setattr(self, key, value)
        self._changed()

    def request_cancel(self) -> None:
        """Stop at the next progress report; a job still queued is cancelled at once."""
        with self._cond:
            if self.finished_state:
                return
            self.cancel_requested = True
            if self.state == QUEUED:
                self.state, self.finished = CANCELLED, time.time()
        self._changed()

    def begin(self) -> bool:
        """The worker takes the job: False when it was cancelled while queued."""
        with self._cond:
            if self.cancel_requested:
                self.state, self.finished = CANCELLED, self.finished or time.time()
            else:
                self.state, self.started = RUNNING, time.time()
        self._changed()
        return self.state == RUNNING

    def _changed(self) -> None:
        with self._cond:
            self.seq += 1
            self._cond.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed
                pass

    # -- called by readers -----------------------------------------------------------
    @property
    def finished_state(self) -> bool:
        return self.state in FINISHED

    def event_count(self) -> int:
        return self.dropped_events + len(self.events)

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        """The job as JSON-able data, with the events after the first ``since``."""
        with self._cond:
            skip = max(0, since - self.dropped_events)
            events = [dict(e) for e in self.events[skip:]]
            return {
                "id": self.id,
                "op": self.op,
                "state": self.state,
                "events": events,
                "next": self.dropped_events + len(self.events),
                "progress": dict(self.events[-1]) if self.events else None,
                "result": self.result if self.state == DONE else None,
                "error": self.error,
                "status": self.status,
                "created": self.created,
                "started": self.started,
                "finished": self.finished,
                "cancel_requested": self.cancel_requested,
            }

    def wait(self, since: int = 0, timeout: float | None = None) -> bool:
        """Block until the job finished or has more than ``since`` events; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self.finished_state and self.event_count() <= since:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    async def wait_async(self, since: int = 0, timeout: float = 0.0) -> None:
        """Like :meth:`wait` on the event loop (the HTTP long-poll), never blocking it."""
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while not self.finished_state and self.event_count() <= since:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            event = asyncio.Event()
            with self._cond:
                self._waiters.append((loop, event))
                seq = self.seq
            try:
                if self.seq == seq and not self.finished_state and self.event_count() <= since:
                    await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                return
            finally:
                with self._cond:
                    self._waiters.remove((loop, event))


class JobQueue:
    """Runs jobs on a fixed pool of worker threads, keeps the last ``keep`` finished ones."""

    def __init__(
        self, workers: int = 1, keep: int = 100, redact: Callable[[str], str] = str
    ) -> None:
        self.workers = max(1, workers)
        self.keep = keep
        self.redact = redact  # error messages go to clients: no absolute server paths
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="xcomposer-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def submit(
        self, op: str, work: Callable[[Callable[[Progress], None]], Any], owner: str | None = None
    ) -> Job:
        """Queue ``work(progress_callback)``; its return value becomes the job's result."""
        job = Job(id=f"{next(self._counter)}-{secrets.token_hex(12)}", op=op, owner=owner)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Callable[[Progress], None]], Any]) -> None:
        if not job.begin():
            return
        try:
            result = work(job.report)
        except JobCancelled:
            job._set(state=CANCELLED, finished=time.time())
        except XComposerError as err:
            job._set(
                state=ERROR,
                error=self.redact(str(err)),
                status=http_status(err),
                finished=time.time(),
            )
        except Exception as err:  # a bug: logged with its traceback, reported without it
            if "context window" in str(err):  # llama.cpp: the prompt outgrew the model's context
                job._set(state=ERROR, error=CONTEXT_FULL, status=413, finished=time.time())
                return
            log.exception("jupyter_xcomposer: job %s (%s) failed", job.id, job.op)
            job._set(
                state=ERROR,
                error=f"internal error in {job.op}; see the Jupyter server log and report it",
                status=500,
                finished=time.time(),
            )
        else:
            job._set(state=DONE, result=result, finished=time.time())

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def renew(self, job: Job) -> None:
        """The owner is still there (it follows the job)."""
        job.seen = time.monotonic()

    def cancel_owner(self, owner: str) -> list[Job]:
        """Cancel every unfinished job of ``owner`` (its kernel or browser tab went away)."""
        gone = [j for j in self.jobs() if j.owner == owner and not j.finished_state]
        for job in gone:
            job.request_cancel()
        if gone:
            log.info("jupyter_xcomposer: cancelled %d job(s) of %s", len(gone), owner)
        return gone

    def expire(self, lease: float, alive: Callable[[str], bool] = lambda _owner: True) -> None:
        """Cancel owned jobs not followed for ``lease`` seconds, or whose owner is not ``alive``."""
        now = time.monotonic()
        owners = {
            j.owner
            for j in self.jobs()
            if j.owner and not j.finished_state and (now - j.seen > lease or not alive(j.owner))
        }
        for owner in owners:
            self.cancel_owner(owner)

    def cancel(self, job_id: str) -> Job | None:
        """Ask a job to stop: a queued job never starts, a running one stops at its next report."""
        job = self.get(job_id)
        if job is not None:
            job.request_cancel()
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def pending(self) -> int:
        """Jobs queued or running."""
        return sum(1 for j in self.jobs() if not j.finished_state)

    def running(self) -> int:
        return sum(1 for j in self.jobs() if j.state == RUNNING)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished_state]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]

    def shutdown(self) -> None:
        for job in self.jobs():
            job.request_cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
