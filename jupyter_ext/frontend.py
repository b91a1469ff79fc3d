"""The open notebook, seen from the kernel: the lab extension's comm, and the last image shown.

A kernel cannot edit the notebook it runs in: the notebook lives in the browser.
The small JupyterLab extension shipped with this package (``labextension/``)
registers the comm target ``jupyter_xcomposer`` on every notebook's kernel; the
assistant opens a comm there for each request: insert Markdown cells (then save),
give the text of the cell the person selected, or the last image output.
Answers arrive as comm messages, so every request here takes callbacks.

Where the extension is absent (another frontend, or not installed), the frontend
closes the comm at once and the request fails with a message saying so.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("jupyter_xcomposer")
TARGET = "jupyter_xcomposer"
Reply = Callable[[dict[str, Any]], None]
Failure = Callable[[str], None]
ABSENT = (
    "the jupyter-xcomposer JupyterLab extension is not active in this frontend, so cells "
    "cannot be inserted here: the preview shows the result and the assistant's .cells hold "
    "the cells (install the package in JupyterLab's environment and reload the page)"
)
NO_ANSWER = (
    "the notebook did not answer within the time limit (is the jupyter-xcomposer JupyterLab "
    "extension active in this browser tab?)"
)


def current_cell_id() -> str | None:
    """The id of the notebook cell being executed (JupyterLab sends it with each request)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except TypeError:
        parent = kernel.get_parent()
    return ((parent or {}).get("metadata") or {}).get("cellId")


def in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


class Frontend:
    """Requests to the JupyterLab extension, one comm each; replies come to callbacks.

    A comm per request survives page reloads and kernel reconnections: the request
    travels in the comm's opening message, the extension answers on the comm, and the
    kernel closes it.  No answer within ``timeout`` seconds counts as a failure.
    """

    def __init__(self, anchor: str | None = None, timeout: float = 30.0) -> None:
        self.anchor = anchor
        self.timeout = timeout
        self.state = "unknown"  # "ready" once the extension answered, "absent" once refused
        self.path: str | None = None

    def request(self, action: str, payload: dict[str, Any], ok: Reply, fail: Failure) -> None:
        if not in_kernel():
            self.state = "absent"
            fail(ABSENT)
            return
        from comm import create_comm

        lock = threading.Lock()
        settled: list[bool] = []

        def settle(callback: Callable[[Any], None], value: Any) -> None:
            with lock:
                if settled:
                    return
                settled.append(True)
            timer.cancel()
            callback(value)

        def on_msg(msg: dict[str, Any]) -> None:
            data = msg.get("content", {}).get("data", {}) or {}
            self.state = "ready"
            self.path = data.get("path", self.path)
            comm.close()
            if data.get("ok"):
                settle(ok, data)
            else:
                settle(fail, str(data.get("error") or "the JupyterLab extension failed"))

        def on_close(_msg: Any) -> None:
            if not settled:
                self.state = "absent"
            settle(fail, ABSENT)

        timer = threading.Timer(self.timeout, lambda: settle(fail, NO_ANSWER))
        timer.daemon = True
        comm = create_comm(
            target_name=TARGET, data={"action": action, "anchor": self.anchor, **payload}
        )
        comm.on_msg(on_msg)
        comm.on_close(on_close)
        timer.start()

    def insert(self, cells: list[dict], after: str | None, ok: Reply, fail: Failure) -> None:
        """Insert Markdown cells after cell ``after`` (default: the assistant's cell), then save."""
        self.request("insert", {"cells": cells, "after": after or self.anchor}, ok, fail)

    def selection(self, ok: Reply, fail: Failure) -> None:
        """The text of the cell the person selected last (not the assistant's own)."""
        self.request("selection", {"exclude": [self.anchor] if self.anchor else []}, ok, fail)

    def last_image(self, ok: Reply, fail: Failure) -> None:
        self.request("last_image", {}, ok, fail)


# -- the last image this kernel displayed -----------------------------------------------------
class ImageCapture:
    """Remembers the last PNG/JPEG the kernel displayed (plots, ``display(Image(...))``, ``Out``)."""

    last: tuple[bytes, str] | None = None
    _installed: set[int] = set()

    @classmethod
    def install(cls, ipython: Any = None) -> None:
        if ipython is None:
            try:
                from IPython import get_ipython

                ipython = get_ipython()
            except ImportError:
                return
        if ipython is None or id(ipython) in cls._installed:
            return
        cls._installed.add(id(ipython))
        publisher = ipython.display_pub
        publish = publisher.publish

        def publish_and_remember(data: dict, *args: Any, **kwargs: Any) -> Any:
            cls.remember(data)
            return publish(data, *args, **kwargs)

        publisher.publish = publish_and_remember
        hook = ipython.displayhook
        write = hook.write_format_data

        def write_and_remember(format_dict: dict, *args: Any, **kwargs: Any) -> Any:
            cls.remember(format_dict)
            return write(format_dict, *args, **kwargs)

        hook.write_format_data = write_and_remember

    @classmethod
    def remember(cls, data: Any) -> None:
        if not isinstance(data, dict):
            return
        for mime in ("image/png", "image/jpeg"):
            value = data.get(mime)
            if isinstance(value, bytes):
                cls.last = (value, mime)
                return
            if isinstance(value, str):
                try:
                    cls.last = (base64.b64decode(value), mime)
                except ValueError:
                    log.debug("jupyter_xcomposer: an %s output was not base64", mime)
                return
