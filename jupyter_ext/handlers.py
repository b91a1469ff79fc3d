"""REST handlers under ``/xcomposer/``: thin wrappers that validate, queue, and report jobs.

Every handler is a jupyter_server ``APIHandler`` guarded by ``@authorized`` on the
``xcomposer`` resource (GET: ``read``, POST and DELETE: ``write``), so the
server's authentication, authorizer and XSRF check (cookie-authenticated
state-changing calls need the ``_xsrf`` token) apply as to its own API.
Errors are ``{"error": "<what>; <fix>"}`` with a 4xx status, never a traceback.

Routes::

    GET    /xcomposer/status                 backend, model, loaded or not, queue length
    POST   /xcomposer/compose                {"instruction", "library", ...}      -> job
    POST   /xcomposer/illustrate             {"text", "library", ...}             -> job
    POST   /xcomposer/describe               {"path", ...}, or the image's bytes  -> job
    POST   /xcomposer/edit                   {"op", "article", ...}               -> job
    GET    /xcomposer/jobs/<id>?since=N&wait=S   state, progress events, result or error
    DELETE /xcomposer/jobs/<id>              cancel

A POST answers 202 with the job; ``?wait=S`` waits up to S seconds for it to finish first.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from xcomposer import XComposerError

from .errors import TooLarge, http_status
from .jobs import Job
from .operations import DescribeRequest, describe_work, parse_request, prepare, save_upload
from .paths import RootPaths

AUTH_RESOURCE = "xcomposer"
JOB_ID = r"(?P<job_id>[0-9]+-[0-9a-f]+)"


class XComposerHandler(ExtensionHandlerMixin, APIHandler):
    """Common parts: JSON errors, body limits, the service and the path resolver."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> Any:
        return self.extensionapp.service

    def paths(self) -> RootPaths:
        try:
            trusted = list(self.service.config.library.roots)
        except XComposerError:
            trusted = []
        return RootPaths(self.serverapp.contents_manager, trusted)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """``{"error": message}``: the HTTPError's message, never a traceback."""
        self.set_header("Content-Type", "application/json")
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info:
            err = exc_info[1]
            if isinstance(err, web.HTTPError):
                if err.log_message:
                    try:
                        message = err.log_message % err.args if err.args else err.log_message
                    except (TypeError, ValueError):
                        message = err.log_message
            else:
                message = "internal error; see the Jupyter server log"
        self.finish(json.dumps({"error": message}))

    def fail(self, err: XComposerError) -> web.HTTPError:
        return web.HTTPError(http_status(err), "%s", str(err))

    def json_body(self) -> Any:
        limit = self.extensionapp.max_body_bytes
        body = self.request.body or b""
        if len(body) > limit:
            raise self.fail(
                TooLarge(
                    f"the request body is {len(body):,} bytes, over the {limit:,} byte limit",
                    "send less (or raise XComposerApp.max_body_bytes)",
                )
            )
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise web.HTTPError(400, "%s", f"the request body is not valid JSON ({err})") from None

    def wait_seconds(self) -> float:
        try:
            wait = float(self.get_query_argument("wait", "0"))
        except ValueError:
            raise web.HTTPError(400, "%s", "wait must be a number of seconds") from None
        return max(0.0, min(wait, self.extensionapp.max_wait))

    def job_reply(self, job: Job, since: int = 0) -> dict[str, Any]:
        reply = job.snapshot(since)
        reply["url"] = self.base_url.rstrip("/") + f"/xcomposer/jobs/{job.id}"
        return reply

    async def start(self, job: Job) -> None:
        deadline = time.monotonic() + self.wait_seconds()
        while not job.finished_state and (left := deadline - time.monotonic()) > 0:
            await job.wait_async(job.event_count(), left)
        self.set_status(200 if job.finished_state else 202)
        self.finish(json.dumps(self.job_reply(job)))


class StatusHandler(XComposerHandler):
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(self.service.status()))


class OperationHandler(XComposerHandler):
    """POST /xcomposer/(compose|illustrate|edit): validate, resolve paths, queue."""

    op = ""

    @authorized
    async def post(self) -> None:
        data = self.json_body()
        try:
            _ = self.service.config  # a broken engine configuration is a 422 here
            prepared = await prepare(self.op, data, self.paths())
        except XComposerError as err:
            raise self.fail(err) from None
        await self.start(self.service.submit(prepared))


class ComposeHandler(OperationHandler):
    op = "compose"


class IllustrateHandler(OperationHandler):
    op = "illustrate"


class EditHandler(OperationHandler):
    op = "edit"


class DescribeHandler(XComposerHandler):
    """POST /xcomposer/describe: JSON with a path, or the image's bytes (``?question=&style=``)."""

    @authorized
    async def post(self) -> None:
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            _ = self.service.config
            if kind.startswith("image/") or kind == "application/octet-stream":
                prepared = self.upload()
            else:
                prepared = await prepare("describe", self.json_body(), self.paths())
        except XComposerError as err:
            raise self.fail(err) from None
        await self.start(self.service.submit(prepared))

    def upload(self) -> Any:
        args = {
            k: self.get_query_argument(k, "") for k in ("question", "style", "language", "name")
        }
        name = args.pop("name") or "upload"
        req = parse_request("describe", {k: v for k, v in args.items() if v})
        assert isinstance(req, DescribeRequest)
        path = save_upload(
            self.request.body or b"",
            self.service.upload_dir,
            self.extensionapp.max_upload_bytes,
            name=name,
        )
        return describe_work(req, path, f"upload:{path.stem[:16]}")


class JobHandler(XComposerHandler):
    def job(self, job_id: str) -> Job:
        job = self.service.queue.get(job_id)
        # Anyone the authorizer lets in may follow a job: token requests get a fresh anonymous
        # identity each, so ownership cannot be checked; job ids carry 96 random bits.
        if job is None:
            raise web.HTTPError(404, "%s", f"job {job_id} not found; it may have expired")
        return job

    @authorized
    async def get(self, job_id: str) -> None:
        job = self.job(job_id)
        try:
            since = max(0, int(self.get_query_argument("since", "0")))
        except ValueError:
            raise web.HTTPError(400, "%s", "since must be a number of events") from None
        wait = self.wait_seconds()
        if wait:
            await job.wait_async(since, wait)
        self.finish(json.dumps(self.job_reply(job, since)))

    @authorized
    async def delete(self, job_id: str) -> None:
        job = self.job(job_id)
        self.service.queue.cancel(job_id)
        self.finish(json.dumps(self.job_reply(job)))


def routes() -> list[tuple[str, type]]:
    """URL patterns (relative to the server's base URL) and their handlers."""
    return [
        (r"/xcomposer/status/?", StatusHandler),
        (r"/xcomposer/compose/?", ComposeHandler),
        (r"/xcomposer/illustrate/?", IllustrateHandler),
        (r"/xcomposer/describe/?", DescribeHandler),
        (r"/xcomposer/edit/?", EditHandler),
        (rf"/xcomposer/jobs/{JOB_ID}/?", JobHandler),
    ]
