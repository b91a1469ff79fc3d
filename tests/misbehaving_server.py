"""A scripted OpenAI-compatible server on loopback, for what a real model cannot be made to do.

Each request takes the next :class:`Reply` from the script (``server.script(...)``);
besides status, body and headers a reply can misbehave on the wire: trickle its body
a byte at a time, stream events forever, announce more than it sends, drop the
connection, or send megabytes (see :func:`trickle`, :func:`endless_stream`,
:func:`cut_body`, :func:`dropped`, :func:`huge`);
when the script is empty, ``default`` answers (by default ``"ok"``).  What the server
says about itself (``/props``, ``/api/show``, the ``/v1/models`` listing) comes from
``about`` instead, so capability discovery never takes a scripted reply.  Every request is recorded with its
headers and JSON body, and the server counts how many were in flight at once.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "test-model"


@dataclass
class Reply:
    """What the server does for one request."""

    status: int = 200
    body: Any = None
    """A dict or list (sent as JSON), str or bytes (sent as is)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (cut short when the server stops)."""
    events: list[Any] | None = None
    """Server-Sent Events: each a dict (sent as JSON) or a str; ``[DONE]`` is added."""
    event_delay: float = 0.0
    """Seconds between events."""
    endless: bool = False
    """With ``events``: send them again and again, never ``[DONE]``."""
    trickle: float = 0.0
    """Send the body one byte every ``trickle`` seconds."""
    cut_at: int | None = None
    """Announce the whole body's length, send this many bytes, then close the connection."""
    drop: bool = False
    """Close the connection without answering anything."""
    chunked: bool = False
    """Send the body with chunked transfer encoding (no Content-Length)."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: Any
    """Decoded JSON, or None."""
    arrived: float
    """time.monotonic() at arrival."""


def chat(
    text: str, prompt_tokens: int = 7, completion_tokens: int = 3, finish: str = "stop", **kw: Any
) -> Reply:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Reply(body=body, **kw)


def completion(text: str, **kw: Any) -> Reply:
    body = {"object": "text_completion", "choices": [{"index": 0, "text": text}], "usage": {}}
    return Reply(body=body, **kw)


def error(status: int, message: str, retry_after: str | None = None, **kw: Any) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"error": {"message": message, "type": "test_error", "code": status}}
    return Reply(status=status, body=body, headers=headers, **kw)


def stream(pieces: list[str], usage: dict | None = None, event_delay: float = 0.0) -> Reply:
    events: list[Any] = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    if usage:
        events.append({"choices": [], "usage": usage})
    return Reply(events=events, event_delay=event_delay)


def trickle(text: str = "a slow answer", every: float = 0.1) -> Reply:
    """A valid answer, one byte at a time."""
    return Reply(body=chat(text).body, trickle=every)


def endless_stream(piece: str = "more ", event_delay: float = 0.01) -> Reply:
    """An event stream that never ends."""
    return Reply(
        events=[{"choices": [{"index": 0, "delta": {"content": piece}}]}],
        event_delay=event_delay,
        endless=True,
    )


def huge(megabytes: int = 20, chunked: bool = True) -> Reply:
    """A valid answer of ``megabytes`` MB of text."""
    return Reply(body=chat("word " * (megabytes * 1_000_000 // 5)).body, chunked=chunked)


def cut_body(text: str = "an answer that breaks off halfway through") -> Reply:
    """A body that stops halfway (its Content-Length promised more)."""
    data = json.dumps(chat(text).body).encode()
    return Reply(body=data, cut_at=len(data) // 2)


def dropped() -> Reply:
    """The connection closes before any answer."""
    return Reply(drop=True)


def models(*names: str) -> Reply:
    return Reply(body={"object": "list", "data": [{"id": n, "object": "model"} for n in names]})


def embeddings(rows: list[list[float]], order: list[int] | None = None) -> Reply:
    order = order or list(range(len(rows)))
    data = [{"object": "embedding", "index": i, "embedding": rows[i]} for i in order]
    return Reply(body={"object": "list", "data": data})


def default_reply(request: Recorded) -> Reply:
    return chat("ok")


class MisbehavingServer:
    """``with MisbehavingServer() as server: server.base_url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(
        self,
        default: Callable[[Recorded], Reply] = default_reply,
        about: dict[str, Reply] | None = None,
    ) -> None:
        self.default = default
        self.about: dict[str, Reply] = dict(about or {})
        """What the server says about itself, by path (``/props``, ``/api/show``, ``/v1/models``);
        a path not named answers 404, ``/v1/models`` lists ``MODEL``."""
        self.requests: list[Recorded] = []
        """Requests to the API (generation, embeddings), in order."""
        self.discovery: list[Recorded] = []
        """Requests about the server itself; never answered from the script."""
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            listing = recorded.method == "GET" and recorded.path == "/v1/models"
            if listing or not recorded.path.startswith("/v1/"):
                self.discovery.append(recorded)
                if recorded.path in self.about:
                    return self.about[recorded.path]
                return models(MODEL) if listing else error(404, "File Not Found")
            self.requests.append(recorded)
            if self._script:
                return self._script.popleft()
        return self.default(recorded)

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                self._serve(b"")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, raw: bytes) -> None:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorded = Recorded(self.command, self.path, headers, body, time.monotonic())
                reply = server._next(recorded)
                try:
                    if reply.delay:
                        server._stopping.wait(reply.delay)
                    self._write(reply)
                except OSError:  # the client gave up (a timeout test): nothing to answer
                    self.close_connection = True
                finally:
                    server._done()

            def _write(self, reply: Reply) -> None:
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.events is not None:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    events = [*reply.events, "[DONE]"]
                    if reply.endless:
                        events = itertools.cycle(reply.events)
                    for event in events:
                        if server._stopping.is_set():
                            return
                        if reply.event_delay:
                            server._stopping.wait(reply.event_delay)
                        data = event if isinstance(event, str) else json.dumps(event)
                        self.wfile.write(f"data: {data}\n\n".encode())
                        self.wfile.flush()
                    return
                if isinstance(reply.body, bytes):
                    data, ctype = reply.body, "application/json"
                elif isinstance(reply.body, str):
                    data, ctype = reply.body.encode(), "text/plain; charset=utf-8"
                else:
                    data, ctype = json.dumps(reply.body).encode(), "application/json"
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if reply.cut_at is not None:
                    self.wfile.write(data[: reply.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif reply.trickle:
                    for i in range(len(data)):
                        if server._stopping.wait(reply.trickle):
                            return
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                elif reply.chunked:
                    step = 1 << 16
                    for i in range(0, len(data), step):
                        piece = data[i : i + step]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(data)

        return Handler
