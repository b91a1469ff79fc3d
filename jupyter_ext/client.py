"""The kernel's way to the model: the server extension over HTTP, or an engine in the kernel.

:func:`connect` finds the Jupyter server that started this kernel (its parent
process, through ``list_running_servers()``; or ``XCOMPOSER_SERVER_URL`` and
``XCOMPOSER_SERVER_TOKEN``) and uses its shared engine.  Where the extension is
not enabled there, it falls back to an engine inside the kernel and says so in
``client.notice``.  Both clients start jobs and follow their progress the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xcomposer import Engine, EngineConfig, XComposerError, load_config

ProgressHandler = Callable[[dict[str, Any]], None]
POLL_SECONDS = 10.0


class ClientError(Exception):
    """A failed call: the server's one-line message and HTTP status (``None``: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Cancelled(ClientError):
    """The job was cancelled."""


def _follow(
    snapshot: dict[str, Any],
    poll: Callable[[int], dict[str, Any]],
    on_progress: ProgressHandler | None,
) -> dict[str, Any]:
    """Report a job's events until it ends; its result, or ClientError with its message."""
    while True:
        for event in snapshot.get("events", []):
            if on_progress is not None:
                on_progress(event)
        state = snapshot["state"]
        if state == "done":
            return snapshot["result"]
        if state == "error":
            raise ClientError(snapshot.get("error") or "the job failed", snapshot.get("status"))
        if state == "cancelled":
            raise Cancelled("cancelled", None)
        snapshot = poll(snapshot["next"])


# -- the server extension ----------------------------------------------------------------------
@dataclass
class ServerInfo:
    url: str
    token: str = ""
    root_dir: str = ""


def find_server() -> ServerInfo | None:
    """The Jupyter server this kernel belongs to, or ``None``."""
    url = os.environ.get("XCOMPOSER_SERVER_URL")
    if url:
        return ServerInfo(url, os.environ.get("XCOMPOSER_SERVER_TOKEN", ""))
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    servers = [s for s in list_running_servers() if s.get("url") and not s.get("sock")]
    parent = os.getppid()
    chosen = next((s for s in servers if s.get("pid") == parent), None)
    if chosen is None:
        cwd = Path.cwd().resolve()
        inside = [
            s
            for s in servers
            if s.get("root_dir") and cwd.is_relative_to(Path(s["root_dir"]).resolve())
        ]
        chosen = inside[0] if len(inside) == 1 else None
    if chosen is None:
        return None
    return ServerInfo(chosen["url"], chosen.get("token", ""), chosen.get("root_dir", ""))


def kernel_owner() -> str | None:
    """``kernel:<id>`` of the kernel this runs in: the server cancels its jobs when it restarts."""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:  # noqa: BLE001 - not in a kernel (a script, a test)
        return None
    return f"kernel:{name.removeprefix('kernel-')}" if name.startswith("kernel-") else None


class ServerClient:
    """The server extension's REST API, with the server's token (no cookies, so no XSRF)."""

    kind = "server"

    def __init__(
        self, url: str, token: str = "", timeout: float = 60.0, owner: str | None = None
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.owner = owner
        self.notice = ""

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        data: bytes | None = None,
        content_type: str = "application/json",
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = self.url + path.lstrip("/")
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                message = json.loads(body).get("error") or err.reason
            except (ValueError, AttributeError):
                message = f"HTTP {err.code} {err.reason}"
            raise ClientError(str(message), err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ClientError(f"cannot reach the Jupyter server at {self.url} ({reason})") from None

    def status(self) -> dict[str, Any]:
        return self.call("GET", "xcomposer/status")

    def start(self, op: str, payload: dict[str, Any]) -> RemoteJob:
        """POST an operation (``compose``, ``illustrate``, ``describe``, ``edit``); returns its job."""
        params = {"owner": self.owner} if self.owner else None
        return RemoteJob(self, self.call("POST", f"xcomposer/{op}", payload, params=params))

    def describe_bytes(self, data: bytes, mime: str = "image/png", **params: Any) -> RemoteJob:
        snapshot = self.call(
            "POST",
            "xcomposer/describe",
            data=data,
            content_type=mime,
            params={**params, "owner": self.owner},
        )
        return RemoteJob(self, snapshot)


class RemoteJob:
    def __init__(self, client: ServerClient, snapshot: dict[str, Any]) -> None:
        self.client = client
        self.id = snapshot["id"]
        self.snapshot = snapshot

    def poll(self, since: int) -> dict[str, Any]:
        self.snapshot = self.client.call(
            "GET", f"xcomposer/jobs/{self.id}", params={"since": since, "wait": POLL_SECONDS}
        )
        return self.snapshot

    def wait(self, on_progress: ProgressHandler | None = None) -> dict[str, Any]:
        return _follow(self.snapshot, self.poll, on_progress)

    def cancel(self) -> None:
        self.client.call("DELETE", f"xcomposer/jobs/{self.id}")


# -- the in-kernel fallback ---------------------------------------------------------------------
class LocalClient:
    """The same operations on an engine inside this kernel (paths relative to its folder)."""

    kind = "local"

    def __init__(
        self,
        config: EngineConfig | None = None,
        engine: Engine | None = None,
        base: str | Path | None = None,
        notice: str = "",
    ) -> None:
        from .paths import LocalPaths
        from .service import EngineService

        self.base = Path(base or os.getcwd())
        cfg = config or (engine.config if engine else None)
        self.service = EngineService(
            lambda: cfg or load_config(None, search_dir=self.base),
            (lambda _cfg: engine) if engine is not None else None,
        )
        self.paths = LocalPaths(self.base)
        self.notice = notice

    def status(self) -> dict[str, Any]:
        return self.service.status()

    def _submit(self, make: Callable[[], Any]) -> LocalJob:
        try:
            prepared = make()
            return LocalJob(self, self.service.submit_prepared(prepared))
        except XComposerError as err:
            from .errors import http_status

            raise ClientError(str(err), http_status(err)) from None

    def start(self, op: str, payload: dict[str, Any]) -> LocalJob:
        from .operations import prepare

        def make() -> Any:
            # The path checks are coroutines (the server awaits its contents manager); here
            # they never wait, and a kernel's own loop may be running: use a separate thread.
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, prepare(op, payload, self.paths)).result()

        return self._submit(make)

    def describe_bytes(self, data: bytes, mime: str = "image/png", **params: Any) -> LocalJob:
        from .operations import upload_work

        def make() -> Any:
            return upload_work(data, params, self.service.upload_dir, 50_000_000)

        return self._submit(make)

    def close(self) -> None:
        self.service.close()


class LocalJob:
    def __init__(self, client: LocalClient, job: Any) -> None:
        self.client = client
        self.job = job
        self.id = job.id

    def poll(self, since: int) -> dict[str, Any]:
        self.job.wait(since, POLL_SECONDS)
        return self.client.service.job_reply(self.job, since)

    def wait(self, on_progress: ProgressHandler | None = None) -> dict[str, Any]:
        return _follow(self.client.service.job_reply(self.job), self.poll, on_progress)

    def cancel(self) -> None:
        self.client.service.queue.cancel(self.id)


Client = ServerClient | LocalClient


def connect() -> Client:
    """The server extension of the Jupyter server running this kernel, else an in-kernel engine."""
    info = find_server()
    if info is None:
        reason = "no Jupyter server was found for this kernel"
    else:
        # A server named by XCOMPOSER_SERVER_URL may not be the one running this kernel.
        owner = None if os.environ.get("XCOMPOSER_SERVER_URL") else kernel_owner()
        client = ServerClient(info.url, info.token, owner=owner)
        try:
            client.status()
            return client
        except ClientError as err:
            if err.status == 404:
                reason = (
                    "the jupyter_xcomposer server extension is not enabled on this Jupyter server"
                )
            else:
                reason = f"the Jupyter server's xcomposer API did not answer ({err})"
    return LocalClient(
        notice=f"{reason}, so the model runs inside this kernel "
        "(one copy per notebook; enable it with: jupyter server extension enable jupyter_xcomposer)"
    )
