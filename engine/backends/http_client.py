"""A small JSON-over-HTTP client for OpenAI-compatible servers, standard library only.

What it adds to :mod:`http.client`: a per-request deadline (not just a per-read socket
timeout), retries with exponential backoff and jitter on 429, 5xx and connection
errors (``Retry-After`` honoured), a bound on requests in flight across threads,
kept-alive connections, Server-Sent Events, and one-line :class:`BackendError`
messages that name the server and the fix.  Secrets passed in headers are scrubbed
from every message it produces; headers are never logged.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from ..errors import BackendError, ConfigError

log = logging.getLogger(__name__)

MESSAGE_CHARS = 300
"""Longest server message quoted in an error."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ::1), without DNS."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def server_message(body: bytes) -> str:
    """The human part of an error body: ``error.message``, ``detail``, ``message`` or the text."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text) or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return one_line(err["message"])
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return one_line(value)
            if value:
                return one_line(json.dumps(value, ensure_ascii=False))
    return one_line(text)


class HTTPStatusError(BackendError):
    """The server answered with an error status (after any retries)."""

    def __init__(self, what: str, fix: str | None, status: int, message: str) -> None:
        super().__init__(what, fix)
        self.status = status
        self.server_message = message

    @property
    def rejected_request(self) -> bool:
        """The server refused the request itself (repeating it will not help).

        llama-cpp-python's server answers 500 to a body that fails its validation.
        """
        return _rejects_request(self.status, self.server_message)


def _rejects_request(status: int, message: str) -> bool:
    return status in (400, 422) or (status == 500 and "validation error" in message.lower())


class _Retry(Exception):
    """An attempt that failed in a way worth retrying; ``error`` is raised if none are left."""

    def __init__(self, error: BackendError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


class _Stale(Exception):
    """A kept-alive connection the server had already closed: try again at once, fresh."""


class HttpClient:
    """JSON requests to one base URL.  Thread-safe; at most ``concurrency`` in flight."""

    backoff_base = 0.5
    """Seconds before the first retry (doubled each time, with jitter)."""
    backoff_max = 30.0
    retry_after_max = 120.0
    """A longer ``Retry-After`` is cut to this."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        max_retries: int,
        concurrency: int,
        setting: str = "backend",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{setting}.base_url '{base_url}' is not an http(s) URL",
                "give the server's API root, e.g. http://127.0.0.1:8080/v1",
            )
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError(
                f"{setting}.base_url '{base_url}' has a bad port", "fix the port number"
            ) from None
        self.root = parts.path.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.setting = setting
        self._slots = threading.BoundedSemaphore(concurrency)
        self._idle: list[http.client.HTTPConnection] = []
        self._idle_lock = threading.Lock()
        self._max_idle = concurrency

    # -- public -------------------------------------------------------------

    def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> Any:
        """Send ``body`` as JSON, return the decoded JSON answer."""

        def consume(resp: http.client.HTTPResponse, deadline: float) -> Any:
            return self._decode(path, self._read(resp, deadline))

        return self._call(method, path, body, headers or {}, timeout, retries, consume)

    def stream_events(
        self,
        path: str,
        body: Any,
        headers: dict[str, str],
        on_event: Callable[[dict], None],
    ) -> Any:
        """POST ``body`` and hand each Server-Sent Event's JSON to ``on_event``.

        A server that answers with plain JSON instead of a stream gets that JSON
        returned; a streamed answer returns ``None``.  Once events have flowed, a
        failure is not retried (the caller has already seen part of the answer).
        """

        def consume(resp: http.client.HTTPResponse, deadline: float) -> Any:
            ctype = resp.getheader("Content-Type", "")
            if "text/event-stream" not in ctype:
                return self._decode(path, self._read(resp, deadline))
            for data in self._sse(resp, deadline):
                on_event(self._decode(path, data))
            return None

        return self._call("POST", path, body, headers, None, None, consume)

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- the retry loop -----------------------------------------------------

    def _call(self, method, path, body, headers, timeout, retries, consume) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        send_headers = {"Accept": "application/json, text/event-stream", **headers}
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        secrets = [v.split()[-1] for k, v in headers.items() if k.lower() == "authorization" and v]
        retries = self.max_retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        attempt = 0
        while True:
            try:
                with self._slots:
                    return self._attempt(method, path, data, send_headers, timeout, consume)
            except _Retry as retry:
                if attempt >= retries:
                    raise _scrubbed(retry.error, secrets) from None
                attempt += 1
                delay = retry.retry_after
                if delay is None:
                    delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                    delay *= 0.5 + random.random() / 2
                log.warning(
                    "%s; retry %d of %d in %.2f s",
                    _scrub(retry.error.what, secrets),
                    attempt,
                    retries,
                    delay,
                )
                time.sleep(delay)
            except BackendError as err:
                raise _scrubbed(err, secrets) from None

    def _attempt(self, method, path, data, headers, timeout, consume) -> Any:
        for reused in (True, False):
            conn, was_idle = self._connection(timeout, fresh=not reused)
            try:
                return self._exchange(conn, was_idle, method, path, data, headers, timeout, consume)
            except _Stale:
                continue
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, conn, was_idle, method, path, data, headers, timeout, consume) -> Any:
        deadline = time.monotonic() + timeout
        url = self.url(path)
        if conn.sock is None:
            try:
                conn.connect()
            except TimeoutError:
                conn.close()
                raise _Retry(self._unreachable(f"no connection within {timeout:g} s")) from None
            except OSError as err:  # refused, DNS failure, unreachable network
                conn.close()
                raise _Retry(self._unreachable(err.strerror or type(err).__name__)) from None
        try:
            conn.request(method, self.root + path, body=data, headers=headers)
            _arm(conn, deadline)
            resp = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise self._timeout_error(path) from None
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            if was_idle:
                raise _Stale from None
            raise _Retry(
                BackendError(
                    f"{url} dropped the connection ({type(err).__name__})",
                    "check the server's log",
                )
            ) from None

        status = resp.status
        if 200 <= status < 300:
            try:
                result = consume(resp, deadline)
            except TimeoutError:
                conn.close()
                raise self._timeout_error(path) from None
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                raise BackendError(
                    f"the answer from {url} broke off ({type(err).__name__})",
                    "check the server's log; retry",
                ) from None
            except BaseException:
                conn.close()
                raise
            self._release(conn, resp)
            return result

        try:
            body = self._read(resp, deadline)
        except (OSError, http.client.HTTPException):
            body = b""
        self._release(conn, resp)
        message = server_message(body)
        if status == 429 or (status >= 500 and not _rejects_request(status, message)):
            raise _Retry(
                HTTPStatusError(
                    f"{url} answered {status}: {message}",
                    "the server is overloaded or failing; check its log, "
                    f"lower {self.setting}.concurrency or raise {self.setting}.max_retries",
                    status,
                    message,
                ),
                _retry_after(resp.getheader("Retry-After"), self.retry_after_max),
            )
        if status in (401, 403):
            fix = f"check the API key in the variable named by {self.setting}.api_key_env"
        elif status == 404:
            fix = f"check {self.setting}.base_url (it usually ends in /v1) and {self.setting}.model"
        else:
            fix = "check the request options and the server's documentation"
        raise HTTPStatusError(f"{url} answered {status}: {message}", fix, status, message)

    # -- pieces -------------------------------------------------------------

    def _connection(self, timeout: float, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        if not fresh:
            with self._idle_lock:
                if self._idle:
                    return self._idle.pop(), True
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout), False

    def _release(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        if resp.will_close or not resp.isclosed():
            conn.close()
            return
        with self._idle_lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _read(self, resp: http.client.HTTPResponse, deadline: float) -> bytes:
        chunks = []
        while True:
            _arm_response(resp, deadline)
            chunk = resp.read(1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _sse(self, resp: http.client.HTTPResponse, deadline: float) -> Iterator[bytes]:
        data: list[bytes] = []
        while True:
            _arm_response(resp, deadline)
            line = resp.readline()
            if not line:
                return
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    payload = b"\n".join(data)
                    data = []
                    if payload.strip() == b"[DONE]":
                        resp.read()
                        return
                    yield payload
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))

    def _decode(self, path: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise BackendError(
                f"{self.url(path)} answered with malformed JSON ({one_line(repr(body[:80]), 100)})",
                f"check that {self.setting}.base_url points at an OpenAI-compatible API",
            ) from None

    def _unreachable(self, reason: str) -> BackendError:
        return BackendError(
            f"cannot reach {self.base_url} ({reason})",
            f"start the server or fix {self.setting}.base_url",
        )

    def _timeout_error(self, path: str) -> BackendError:
        return BackendError(
            f"{self.url(path)} did not answer within {self.timeout:g} s",
            f"raise {self.setting}.timeout (seconds per request) or use a faster server",
        )


def _arm(conn: http.client.HTTPConnection, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    if conn.sock is not None:
        conn.sock.settimeout(remaining)


def _arm_response(resp: http.client.HTTPResponse, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(remaining)


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(cap, seconds))


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _scrubbed(err: BackendError, secrets: list[str]) -> BackendError:
    if not any(s and s in str(err) for s in secrets):
        return err
    what, fix = _scrub(err.what, secrets), _scrub(err.fix or "", secrets) or None
    if isinstance(err, HTTPStatusError):
        return HTTPStatusError(what, fix, err.status, _scrub(err.server_message, secrets))
    return type(err)(what, fix)
