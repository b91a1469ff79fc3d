"""JSON over HTTP to one OpenAI-compatible server, on httpx.

httpx does the pooling, keep-alive, chunked bodies and TLS.  What this adds:

* a **total** deadline per request: httpx's timeouts bound each connect and each
  read; a watchdog shuts the connection down when the wall-clock deadline passes,
  so a server that trickles its body or streams events forever cannot hold a call
  past ``timeout`` (the headers themselves are bounded by httpx's read timeout);
* a byte cap per answer (the caller derives it from ``max_tokens``), so a 20 MB
  answer stops at the cap instead of reaching the article and the cache;
* retries with exponential backoff and jitter on 429, 5xx and connection errors,
  ``Retry-After`` honoured; a timeout, a cut body and an oversized answer are not
  retried (they would only cost the same again);
* a bound on requests in flight across threads, adjustable once the server says
  how many slots it has;
* Server-Sent Events;
* one-line :class:`BackendError` messages naming the server and the fix, with the
  API key scrubbed from every message; headers are never logged.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from ..errors import BackendError, ConfigError, ModelError, TooLargeError, XComposerError
from ..json_input import load_json

try:
    import httpx
except ImportError:  # pragma: no cover - the openai extra brings it
    httpx = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MESSAGE_CHARS = 300
"""Longest server message quoted in an error."""
DEFAULT_MAX_BYTES = 8 << 20
"""Cap on answers whose size no ``max_tokens`` bounds (model lists, capabilities)."""
INSTALL_HINT = "install httpx: pip install 'mkdocs-xcomposer[openai]'"


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


def answer_byte_cap(max_tokens: int, streamed: bool) -> int:
    """Bytes an answer of ``max_tokens`` tokens may take on the wire, with headroom.

    A token is a few characters; JSON escapes of non-ASCII text take up to 12 bytes
    per character; a streamed token comes wrapped in an event of a few hundred
    bytes (llama.cpp's server repeats the model path in each).  64 KiB covers the
    envelope.
    """
    per_token = 1024 if streamed else 96
    return 65536 + per_token * max(1, max_tokens)


def server_message(body: bytes) -> str:
    """The human part of an error body: ``error.message``, ``detail``, ``message`` or the text."""
    text = body.decode("utf-8", "replace")
    try:
        data = load_json(text)
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
        return rejects_request(self.status, self.server_message)


# How servers refuse a prompt longer than the model's context: llama-server
# ("exceeds the available context size", exceed_context_size_error), vLLM and OpenAI
# ("maximum context length is", context_length_exceeded), vLLM's newer "too long to fit
# into the model", LMDeploy ("exceeds session_len").
_CONTEXT_OVERFLOW = re.compile(
    r"exceeds? the (available )?context|exceed_context_size|maximum context length"
    r"|context_length_exceeded|too long to fit into the model|session_len",
    re.IGNORECASE,
)


def overflows_context(status: int, body: str) -> bool:
    """Whether the server refused the request for the model's context length (``body``:
    its error body, whose message, type or code may say so)."""
    return status in (400, 413, 422) and bool(_CONTEXT_OVERFLOW.search(body))


def rejects_request(status: int, message: str) -> bool:
    return status in (400, 422) or (status == 500 and "validation error" in message.lower())


class _Retry(Exception):
    """An attempt that failed in a way worth retrying; ``error`` is raised if none are left."""

    def __init__(self, error: BackendError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


class _Slots:
    """A counting bound on requests in flight whose size can change while in use."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._busy = 0
        self._cond = threading.Condition()

    def resize(self, size: int) -> None:
        with self._cond:
            self.size = max(1, size)
            self._cond.notify_all()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._busy < self.size)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify()


class _Deadline:
    """Shuts a response's connection down when the wall-clock deadline passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self._timer: threading.Timer | None = None

    def watch(self, response: Any) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return

        def fire() -> None:
            self.fired = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), fire)
        self._timer.daemon = True
        self._timer.start()

    def check(self) -> None:
        if self.fired or time.monotonic() >= self.deadline:
            raise TimeoutError

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


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
        allow_insecure_remote: bool = False,
    ) -> None:
        if httpx is None:
            raise ModelError("the OpenAI-compatible backend needs httpx", INSTALL_HINT)
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{setting}.base_url '{base_url}' is not an http(s) URL",
                "give the server's API root, e.g. http://127.0.0.1:8080/v1",
            )
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise ConfigError(
                f"{setting}.base_url '{base_url}' has a bad port", "fix the port number"
            ) from None
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.server_root = f"{parts.scheme}://{parts.netloc}"
        """The server itself, above the API root (llama.cpp's ``/props``, Ollama's ``/api``)."""
        self.timeout = timeout
        self.max_retries = max_retries
        self.setting = setting
        self.allow_insecure_remote = allow_insecure_remote
        self._slots = _Slots(concurrency)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=16),
            # Loopback never goes through a proxy from the environment.
            trust_env=not is_loopback(self.host),
            follow_redirects=False,
        )

    # -- public -------------------------------------------------------------

    @property
    def concurrency(self) -> int:
        return self._slots.size

    def set_concurrency(self, size: int) -> None:
        self._slots.resize(size)

    def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        root: bool = False,
    ) -> Any:
        """Send ``body`` as JSON, return the decoded JSON answer.

        ``root``: ``path`` is below the server itself, not below the API root.
        """
        url = (self.server_root if root else self.base_url) + path

        def consume(resp: Any, deadline: _Deadline) -> Any:
            return self._decode(url, self._read(resp, deadline, max_bytes, url))

        return self._call(method, url, body, headers or {}, timeout, retries, consume)

    def stream_events(
        self,
        path: str,
        body: Any,
        headers: dict[str, str],
        on_event: Callable[[Any], None],
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Any:
        """POST ``body`` and hand each Server-Sent Event's JSON to ``on_event``.

        A server that answers with plain JSON instead of a stream gets that JSON
        returned; a streamed answer returns ``None``.  Once events have flowed, a
        failure is not retried (the caller has already seen part of the answer).
        """
        url = self.base_url + path

        def consume(resp: Any, deadline: _Deadline) -> Any:
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                return self._decode(url, self._read(resp, deadline, max_bytes, url))
            for data in self._sse(resp, deadline, max_bytes, url):
                on_event(self._decode(url, data))
            return None

        return self._call("POST", url, body, headers, None, None, consume)

    def url(self, path: str) -> str:
        return self.base_url + path

    def key_may_travel(self) -> bool:
        """A key goes over https, to this machine, or where the config allows plain http."""
        return self.scheme == "https" or is_loopback(self.host) or self.allow_insecure_remote

    def close(self) -> None:
        self._client.close()

    # -- the retry loop -----------------------------------------------------

    def _call(self, method, url, body, headers, timeout, retries, consume) -> Any:  # noqa: ANN001
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        send_headers = {"Accept": "application/json, text/event-stream", **headers}
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        secrets = secrets_in(headers)
        if secrets and not self.key_may_travel():
            raise ConfigError(
                f"refusing to send the API key over plain http to {self.host}",
                "use an https base_url, or set allow_insecure_remote = true on a trusted network",
            )
        retries = self.max_retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        attempt = 0
        while True:
            try:
                with self._slots.held():
                    return self._attempt(method, url, data, send_headers, timeout, consume)
            except _Retry as retry:
                if attempt >= retries:
                    raise scrubbed(retry.error, secrets) from None
                attempt += 1
                delay = retry.retry_after
                if delay is None:
                    delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                    delay *= 0.5 + random.random() / 2
                log.warning(
                    "%s; retry %d of %d in %.2f s",
                    scrub(retry.error.what, secrets),
                    attempt,
                    retries,
                    delay,
                )
                time.sleep(delay)
            except (BackendError, TooLargeError) as err:
                raise scrubbed(err, secrets) from None

    def _attempt(self, method, url, data, headers, timeout, consume) -> Any:  # noqa: ANN001
        deadline = _Deadline(time.monotonic() + timeout)
        request = self._client.build_request(
            method, url, content=data, headers=headers, timeout=httpx.Timeout(timeout)
        )
        try:
            resp = self._client.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise _Retry(self._unreachable(f"no connection within {timeout:g} s")) from None
        except httpx.ConnectError as err:  # refused, DNS failure, unreachable network
            raise _Retry(self._unreachable(_reason(err))) from None
        except httpx.TimeoutException:
            raise self._timeout_error(url, timeout) from None
        except (httpx.TransportError, OSError) as err:
            raise _Retry(
                BackendError(
                    f"{url} dropped the connection before answering ({_reason(err)})",
                    "check the server's log",
                )
            ) from None
        deadline.watch(resp)
        try:
            return self._answer(resp, url, deadline, timeout, consume)
        finally:
            deadline.cancel()
            resp.close()

    def _answer(self, resp, url, deadline, timeout, consume) -> Any:  # noqa: ANN001
        status = resp.status_code
        try:
            if 200 <= status < 300:
                return consume(resp, deadline)
            body = self._read(resp, deadline, 65536, url, cut=True)
        except (TimeoutError, httpx.TimeoutException):
            raise self._timeout_error(url, timeout) from None
        except (httpx.TransportError, OSError) as err:
            if deadline.fired:
                raise self._timeout_error(url, timeout) from None
            raise BackendError(
                f"the answer from {url} broke off before it was complete ({_reason(err)})",
                "check the server's log (it may have crashed or restarted); retry",
            ) from None
        message = server_message(body)
        if status == 429 or (status >= 500 and not rejects_request(status, message)):
            raise _Retry(
                HTTPStatusError(
                    f"{url} answered {status}: {message}",
                    "the server is overloaded or failing; check its log, "
                    f"lower {self.setting}.concurrency or raise {self.setting}.max_retries",
                    status,
                    message,
                ),
                _retry_after(resp.headers.get("Retry-After"), self.retry_after_max),
            )
        if overflows_context(status, body[:4000].decode("utf-8", errors="replace")):
            raise TooLargeError(
                f"{url} refused the request as longer than the model's context ({message})",
                "send a shorter text, or serve the model with a larger context "
                "(llama-server -c, vLLM --max-model-len, LMDeploy --session-len)",
            )
        if status in (401, 403):
            fix = f"check the API key in the variable named by {self.setting}.api_key_env"
        elif status == 404:
            fix = f"check {self.setting}.base_url (it usually ends in /v1) and {self.setting}.model"
        else:
            fix = "check the request options and the server's documentation"
        raise HTTPStatusError(f"{url} answered {status}: {message}", fix, status, message)

    # -- pieces -------------------------------------------------------------

    def _read(
        self, resp: Any, deadline: _Deadline, max_bytes: int, url: str, cut: bool = False
    ) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            deadline.check()
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                if cut:
                    break
                raise self._too_big(url, max_bytes)
        deadline.check()
        return b"".join(chunks)[: max_bytes if cut else None]

    def _sse(self, resp: Any, deadline: _Deadline, max_bytes: int, url: str) -> Iterator[bytes]:
        data: list[bytes] = []
        size = 0
        pending = b""
        for chunk in resp.iter_bytes():
            deadline.check()
            size += len(chunk)
            if size > max_bytes:
                raise self._too_big(url, max_bytes)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.rstrip(b"\r")
                if not line:
                    if data:
                        payload = b"\n".join(data)
                        data = []
                        if payload.strip() == b"[DONE]":
                            return
                        yield payload
                elif line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
        deadline.check()
        if data and b"\n".join(data).strip() != b"[DONE]":
            yield b"\n".join(data)

    def _decode(self, url: str, body: bytes) -> Any:
        try:
            return load_json(body)
        except ValueError:
            if not body.strip():
                what = f"{url} answered with an empty body"
            else:
                what = f"{url} answered with malformed JSON ({one_line(repr(body[:80]), 100)})"
            raise BackendError(
                what, f"check that {self.setting}.base_url points at an OpenAI-compatible API"
            ) from None

    def _too_big(self, url: str, max_bytes: int) -> BackendError:
        return BackendError(
            f"{url} answered more than {max_bytes // 1024} KiB, far beyond the token budget",
            "check the server (it ignores max_tokens or is misbehaving)",
        )

    def _unreachable(self, reason: str) -> BackendError:
        return BackendError(
            f"cannot reach {self.base_url} ({reason})",
            f"start the server or fix {self.setting}.base_url",
        )

    def _timeout_error(self, url: str, timeout: float) -> BackendError:
        return BackendError(
            f"{url} did not answer within {timeout:g} s",
            f"raise {self.setting}.timeout (seconds per request) or use a faster server",
        )


def _reason(err: BaseException) -> str:
    text = one_line(str(err), 120)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


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


def secrets_in(headers: dict[str, str]) -> list[str]:
    """The secret part of each ``Authorization`` header."""
    return [v.split()[-1] for k, v in headers.items() if k.lower() == "authorization" and v]


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def scrubbed(err: XComposerError, secrets: list[str]) -> XComposerError:
    if not any(s and s in str(err) for s in secrets):
        return err
    what, fix = scrub(err.what, secrets), scrub(err.fix or "", secrets) or None
    if isinstance(err, HTTPStatusError):
        return HTTPStatusError(what, fix, err.status, scrub(err.server_message, secrets))
    return type(err)(what, fix)
