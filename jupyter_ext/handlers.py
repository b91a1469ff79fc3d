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
    DELETE /xcomposer/jobs?owner=OWNER       cancel every job of OWNER (a tab being closed)

A POST answers 202 with the job; ``?wait=S`` waits up to S seconds for it to finish first;
``?owner=kernel:<id>`` or ``?owner=client:<id>`` ties the job to its kernel or browser tab,
which cancels it when that goes.  Everything in a request is checked before a job is queued.
Anything else under ``/xcomposer/`` is a JSON 404.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from xcomposer import Job, JSONTooDeepError, ModelError, TooLargeError, XComposerError, load_json

from .errors import http_status
from .operations import Limits, prepare, upload_work
from .paths import RootPaths

AUTH_RESOURCE = "xcomposer"
JOB_ID_SHAPE = re.compile(r"^[0-9]{1,12}-[0-9a-f]{24}$")
OWNER_SHAPE = re.compile(r"^(kernel|client):[A-Za-z0-9_-]{1,64}$")
NO_VISION = (
    "describe needs a vision model, and no vision model is configured",
    "set c.XComposerApp.mmproj (with a GGUF model) or a vision-language model",
)


class XComposerHandler(ExtensionHandlerMixin, APIHandler):
    """Common parts: JSON errors, body limits, the service and the path resolver."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> Any:
        return self.extensionapp.service

    def paths(self) -> RootPaths:
        return self.service.paths(self.serverapp.contents_manager)

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
                TooLargeError(
                    f"the request body is {len(body):,} bytes, over the {limit:,} byte limit",
                    "send less (or raise XComposerApp.max_body_bytes)",
                )
            )
        if not body.strip():
            return {}
        try:
            return load_json(body)
        except JSONTooDeepError as err:
            raise web.HTTPError(
                400, "%s", f"the request body {err}; send the fields documented in docs/jupyter.md"
            ) from None
        except ValueError as err:  # not JSON, or not UTF-8
            raise web.HTTPError(400, "%s", f"the request body is not valid JSON ({err})") from None

    def wait_seconds(self) -> float:
        raw = self.get_query_argument("wait", "0")
        try:
            wait = float(raw)
        except ValueError:
            wait = float("nan")
        if wait != wait or wait < 0:  # NaN or negative
            raise web.HTTPError(400, "%s", "wait must be a number of seconds (0 or more)")
        return min(wait, self.extensionapp.max_wait)

    def owner(self) -> str | None:
        """The kernel or browser tab a new job belongs to (``?owner=``), checked."""
        owner = self.get_query_argument("owner", None)
        if owner is None:
            return None
        if not OWNER_SHAPE.match(owner):
            raise web.HTTPError(
                400, "%s", "owner must be kernel:<kernel id> or client:<id> (letters, digits, -)"
            )
        if not self.extensionapp.kernel_alive(owner):
            raise web.HTTPError(
                400, "%s", f"owner {owner} is not a running kernel of this server; restart it"
            )
        return owner

    def limits(self) -> Limits:
        try:
            return self.service.limits()  # a broken engine configuration is a 422 here
        except XComposerError as err:
            raise self.fail(err) from None

    def job_reply(self, job: Job, since: int = 0) -> dict[str, Any]:
        reply = self.service.job_reply(job, since)
        reply["url"] = self.base_url.rstrip("/") + f"/xcomposer/jobs/{job.id}"
        return reply

    async def start(self, job: Job, wait: float) -> None:
        deadline = time.monotonic() + wait
        while not job.done and (left := deadline - time.monotonic()) > 0:
            await job.wait_async(job.event_count(), left)
        self.set_status(200 if job.done else 202)
        self.finish(json.dumps(self.job_reply(job)))


class StatusHandler(XComposerHandler):
    @authorized
    async def get(self) -> None:
        # The model's health looks at files (or asks a server): off the event loop.
        self.finish(json.dumps(await asyncio.to_thread(self.service.status)))


class OperationHandler(XComposerHandler):
    """POST /xcomposer/(compose|illustrate|edit): validate, resolve paths, queue."""

    op = ""

    @authorized
    async def post(self) -> None:
        wait, owner, limits = self.wait_seconds(), self.owner(), self.limits()
        data = self.json_body()
        try:
            prepared = await prepare(self.op, data, self.paths(), limits)
        except XComposerError as err:
            raise self.fail(err) from None
        await self.start(self.service.submit_prepared(prepared, owner), wait)


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
        wait, owner, limits = self.wait_seconds(), self.owner(), self.limits()
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            if kind.startswith("image/") or kind == "application/octet-stream":
                prepared = self.upload()
            else:
                prepared = await prepare("describe", self.json_body(), self.paths(), limits)
            if not await asyncio.to_thread(self.service.can_describe):
                raise ModelError(*NO_VISION)
        except XComposerError as err:
            raise self.fail(err) from None
        await self.start(self.service.submit_prepared(prepared, owner), wait)

    def upload(self) -> Any:
        args = {
            k: self.get_query_argument(k, "") for k in ("question", "style", "language", "name")
        }
        body, folder = self.request.body or b"", self.service.upload_dir
        return upload_work(body, args, folder, self.extensionapp.max_upload_bytes)


class JobHandler(XComposerHandler):
    def job(self, job_id: str) -> Job:
        # Anyone the authorizer lets in may follow a job: token requests get a fresh anonymous
        # identity each, so users cannot be told apart; job ids carry 96 random bits.
        job = self.service.queue.get(job_id) if JOB_ID_SHAPE.match(job_id) else None
        if job is None:
            shown = job_id if len(job_id) <= 40 else job_id[:40] + "..."
            raise web.HTTPError(404, "%s", f"job {shown} not found; it may have expired")
        self.service.queue.renew(job)  # its owner is still following it
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


class OwnerJobsHandler(XComposerHandler):
    """DELETE /xcomposer/jobs?owner=OWNER: a closing tab or a stopping kernel cancels its jobs."""

    @authorized
    async def delete(self) -> None:
        owner = self.get_query_argument("owner", "")
        if not OWNER_SHAPE.match(owner):
            raise web.HTTPError(400, "%s", "give ?owner=kernel:<kernel id> or ?owner=client:<id>")
        cancelled = self.service.queue.cancel_owner(owner)
        self.finish(json.dumps({"owner": owner, "cancelled": [j.id for j in cancelled]}))


class NotFoundHandler(XComposerHandler):
    """Anything else under /xcomposer/: a JSON 404 rather than Jupyter's HTML page."""

    def not_found(self, *_args: Any) -> None:
        raise web.HTTPError(
            404, "%s", "no such xcomposer route; see docs/jupyter.md for the REST API"
        )

    get = post = put = patch = delete = authorized(not_found)


def routes() -> list[tuple[str, type]]:
    """URL patterns (relative to the server's base URL) and their handlers."""
    return [
        (r"/xcomposer/status/?", StatusHandler),
        (r"/xcomposer/compose/?", ComposeHandler),
        (r"/xcomposer/illustrate/?", IllustrateHandler),
        (r"/xcomposer/describe/?", DescribeHandler),
        (r"/xcomposer/edit/?", EditHandler),
        (r"/xcomposer/jobs/?", OwnerJobsHandler),
        (r"/xcomposer/jobs/(?P<job_id>[^/]+)/?", JobHandler),
        (r"/xcomposer(?:/.*)?", NotFoundHandler),
    ]
