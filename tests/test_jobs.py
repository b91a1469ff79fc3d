"""The engine's job primitive: progress, cancel between model calls, concurrency, results.

No assertion rests on timing: jobs are held on events and barriers, and every
wait has a generous limit that only a broken runner reaches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from scripted import ScriptedBackend, default_answer
from xcomposer import (
    Engine,
    EngineConfig,
    InputError,
    JobCancelled,
    JobRunner,
    Progress,
    run_all,
)
from xcomposer.backends.base import GenerateRequest

LIMIT = 30  # seconds: reached only when the behaviour under test is broken


def held(release: threading.Event, started: threading.Event | None = None, result: object = 1):
    """Work that reports once, then waits for ``release``."""

    def work(progress) -> object:  # noqa: ANN001
        progress(Progress("write", 0, 1))
        if started is not None:
            started.set()
        assert release.wait(LIMIT)
        progress(Progress("write", 1, 1))
        return result

    return work


def test_a_job_reports_progress_and_returns_its_result() -> None:
    runner = JobRunner(1)
    release, started = threading.Event(), threading.Event()
    job = runner.submit(held(release, started, result={"text": "done"}), name="compose")
    assert started.wait(LIMIT)
    assert job.state == "running" and job.event_count() == 1
    assert job.last_progress() == Progress("write", 0, 1)
    release.set()
    assert job.wait(timeout=LIMIT)
    assert job.state == "done" and job.result == {"text": "done"} and job.outcome() == job.result
    assert [e.progress.done for e in job.events()] == [0, 1]
    assert [e.progress.done for e in job.events(since=1)] == [1]
    assert set(job.events()[0].to_dict()) >= {"stage", "done", "total", "t"}
    runner.shutdown()


def test_one_worker_runs_one_job_at_a_time_and_a_queued_job_can_be_cancelled() -> None:
    runner = JobRunner(lambda: 1)  # a local backend's concurrency, asked on first use
    release, started = threading.Event(), threading.Event()
    first = runner.submit(held(release, started))
    ran = []
    second = runner.submit(lambda progress: ran.append("second"))
    assert started.wait(LIMIT)
    assert second.state == "queued" and runner.pending() == 2 and runner.running() == 1
    assert second.cancel() and second.state == "cancelled"
    release.set()
    assert first.wait(timeout=LIMIT) and first.state == "done"
    runner.shutdown(wait=True)
    assert ran == []  # the cancelled job never started
    with pytest.raises(JobCancelled):
        second.outcome()


def test_a_running_job_stops_at_its_next_progress_report() -> None:
    runner = JobRunner(1)
    release, started = threading.Event(), threading.Event()
    after = []

    def work(progress) -> None:  # noqa: ANN001
        held(release, started)(progress)  # its second report raises JobCancelled
        after.append("went on")

    job = runner.submit(work)
    assert started.wait(LIMIT)
    job.cancel()
    release.set()
    assert job.wait(timeout=LIMIT)
    assert job.state == "cancelled" and after == [] and job.error is None
    runner.shutdown()


def test_workers_run_jobs_at_once() -> None:
    runner = JobRunner(2)
    both = threading.Barrier(2, timeout=LIMIT)  # broken unless two jobs run at the same time
    jobs = [runner.submit(lambda progress: both.wait()) for _ in range(2)]
    for job in jobs:
        assert job.wait(timeout=LIMIT)
    assert [job.state for job in jobs] == ["done", "done"]
    runner.shutdown()


def test_the_same_key_is_the_same_job() -> None:
    runner = JobRunner(2)
    release = threading.Event()
    calls = []

    def work(progress) -> str:  # noqa: ANN001
        calls.append(1)
        assert release.wait(LIMIT)
        return "page"

    first = runner.submit(work, key="digest-1")
    again = runner.submit(work, key="digest-1")
    other = runner.submit(lambda progress: "other", key="digest-2")
    assert again is first and other is not first
    release.set()
    assert first.outcome() == "page" and calls == [1]
    runner.shutdown()


def test_errors_are_one_line_and_bugs_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    runner = JobRunner(1)

    def user_error(progress) -> None:  # noqa: ANN001
        raise InputError("image folder pics has no usable images", "add PNG files")

    def bug(progress) -> None:  # noqa: ANN001
        raise ZeroDivisionError("division by zero")

    done = []
    fixable = runner.submit(user_error, name="compose", on_done=done.append)
    with caplog.at_level(logging.ERROR, logger="xcomposer.jobs"):
        broken = runner.submit(bug, name="illustrate")
        assert broken.wait(timeout=LIMIT)
    assert fixable.wait(timeout=LIMIT) and done == [fixable]
    assert fixable.state == "error" and isinstance(fixable.error, InputError)
    assert fixable.message == "image folder pics has no usable images; add PNG files"
    assert broken.state == "error" and "Traceback" not in broken.message
    assert broken.message.startswith("internal error in illustrate (ZeroDivisionError)")
    assert "ZeroDivisionError" in caplog.text  # the traceback goes to the log
    with pytest.raises(InputError):
        fixable.outcome()
    runner.shutdown()


def test_waiting_for_the_next_report_from_a_thread_and_from_an_event_loop() -> None:
    runner = JobRunner(1)
    release, started = threading.Event(), threading.Event()
    job = runner.submit(held(release, started))
    assert started.wait(LIMIT)
    assert job.wait(since=0, timeout=LIMIT)  # one report is there already

    async def long_poll() -> tuple[bool, bool]:
        more = asyncio.ensure_future(job.wait_async(since=1, timeout=LIMIT))
        await asyncio.sleep(0)
        assert not more.done()  # nothing new yet: the poll waits
        release.set()  # the job's second report, then the end, wake it
        return await more, await job.wait_async(timeout=LIMIT)

    assert asyncio.run(long_poll()) == (True, True)
    assert job.state == "done"
    runner.shutdown()


def test_run_all_keeps_the_order_and_the_first_failure_cancels_the_rest() -> None:
    assert run_all([lambda p, i=i: i * i for i in range(5)], workers=3) == [0, 1, 4, 9, 16]
    reports = []
    failed, stopped = threading.Event(), threading.Event()

    def long(progress) -> None:  # noqa: ANN001
        progress(Progress("write", 0, 1))
        assert failed.wait(LIMIT)
        try:
            for _ in range(10**7):  # reports until cancelled: it stops at a report
                progress(Progress("write", 0, 1))
        except JobCancelled:
            stopped.set()
            raise

    def failing(progress) -> None:  # noqa: ANN001
        failed.set()
        raise InputError("the instruction is empty", "say what to write")

    with pytest.raises(InputError, match="instruction is empty"):
        run_all([long, failing], workers=2, progress=reports.append)
    assert stopped.is_set() and reports  # the other job was cancelled; reports were forwarded


def test_compose_many_runs_at_the_backends_concurrency(
    tmp_path: Path, captioned_images: Path
) -> None:
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    overlapped = threading.Event()

    def answer(req: GenerateRequest) -> str:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            if state["now"] >= 2:
                overlapped.set()
        overlapped.wait(LIMIT)  # the first call waits for a second one to be in flight
        with lock:
            state["now"] -= 1
        return default_answer(req)

    backend = ScriptedBackend(answer)
    backend.concurrency = 3  # a remote backend's bound
    engine = Engine(EngineConfig(cache_dir=str(tmp_path / "c")), backends={"main": backend})
    topics = ["lighthouses", "coffee", "cats", "rockets", "the sea"]
    articles = engine.compose_many(
        [f"Write about {t}" for t in topics], captioned_images, n_images=1, sections=2
    )
    assert [a.instruction for a in articles] == [f"Write about {t}" for t in topics]
    assert overlapped.is_set() and 2 <= state["most"] <= 3


def test_an_owner_that_goes_cancels_only_its_own_jobs() -> None:
    runner = JobRunner(1)
    release, started = threading.Event(), threading.Event()
    try:
        mine = runner.submit(held(release, started), name="compose", owner="kernel:a")
        assert started.wait(LIMIT)
        queued = runner.submit(held(release), owner="kernel:a")
        other = runner.submit(held(release), owner="kernel:b")
        assert {j.id for j in runner.cancel_owner("kernel:a")} == {mine.id, queued.id}
        release.set()
        assert mine.wait(timeout=LIMIT) and other.wait(timeout=LIMIT)
        assert (mine.state, queued.state, other.state) == ("cancelled", "cancelled", "done")
    finally:
        release.set()
        runner.shutdown(wait=True)


def test_expire_cancels_jobs_whose_owner_is_gone_or_stopped_following() -> None:
    runner = JobRunner(1)
    release = threading.Event()
    try:
        gone = runner.submit(held(release), owner="kernel:gone")
        followed = runner.submit(held(release), owner="kernel:here")
        unowned = runner.submit(held(release))
        runner.expire(lease=3600, alive=lambda owner: owner != "kernel:gone")
        assert gone.cancel_requested and not followed.cancel_requested
        followed.seen -= 7200  # nobody has followed it for two hours
        runner.expire(lease=3600)
        assert followed.cancel_requested and not unowned.cancel_requested
    finally:
        release.set()
        runner.shutdown(wait=True)


def test_a_job_as_data_has_its_reports_since_a_point_and_its_one_line_error() -> None:
    runner = JobRunner(1)

    def failing(progress) -> None:  # noqa: ANN001
        progress(Progress("write", 0, 2))
        progress(Progress("write", 1, 2))
        raise InputError("the instruction is empty", "say what to write")

    job = runner.submit(failing, name="compose")
    assert job.wait(timeout=LIMIT)
    data = job.to_dict(since=1)
    assert data["state"] == "error" and data["name"] == "compose" and data["next"] == 2
    assert [e["done"] for e in data["events"]] == [1]
    assert data["error"] == "the instruction is empty; say what to write"
    assert data["result"] is None
    runner.shutdown(wait=True)
