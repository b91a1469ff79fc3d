"""The open notebook, seen from the kernel: the lab extension's comm, and the last image shown.

A kernel cannot edit the notebook it runs in: the notebook lives in the browser.
The small JupyterLab extension shipped with this package (``labextension/``)
registers the comm target ``jupyter_xcomposer`` on every notebook's kernel; the
assistant opens a comm there and asks it to insert Markdown cells (then save),
to give the text of the cell the person selected, or the last image output.
Answers arrive as comm messages, so every request here takes callbacks.

Where the extension is absent (another frontend, or not installed), the comm is
closed at once and :attr:`Frontend.state` becomes ``"absent"``.
"""

from __future__ import annotations

import base64
import itertools
import logging
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
    """Requests to the JupyterLab extension over one comm; replies come to callbacks."""

    def __init__(self, anchor: str | None = None) -> None:
        self.anchor = anchor
        self.state = "closed"
        self.path: str | None = None
        self.on_state: Callable[[str], None] | None = None
        self._comm: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Reply, Failure]] = {}

    @classmethod
    def for_current_cell(cls) -> Frontend:
        frontend = cls(current_cell_id())
        frontend.open()
        return frontend

    def open(self) -> None:
        if not in_kernel():
            self._set_state("absent")
            return
        from comm import create_comm

        self._set_state("connecting")
        self._comm = create_comm(
            target_name=TARGET, data={"action": "hello", "anchor": self.anchor}
        )
        self._comm.on_msg(self._on_msg)
        self._comm.on_close(self._on_close)

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.on_state is not None:
            self.on_state(state)

    def _on_msg(self, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data", {}) or {}
        if data.get("action") == "ready":
            self.path = data.get("path")
            self._set_state("ready")
            return
        callbacks = self._pending.pop(data.get("request"), None)
        if callbacks is None:
            return
        ok, fail = callbacks
        if data.get("ok"):
            ok(data)
        else:
            fail(str(data.get("error") or "the JupyterLab extension failed"))

    def _on_close(self, _msg: Any) -> None:
        self._comm = None
        self._set_state("absent")
        pending, self._pending = self._pending, {}
        for _, fail in pending.values():
            fail(ABSENT)

    def request(self, action: str, payload: dict[str, Any], ok: Reply, fail: Failure) -> None:
        if self.state == "absent" or self._comm is None:
            fail(ABSENT)
            return
        number = next(self._ids)
        self._pending[number] = (ok, fail)
        self._comm.send({"request": number, "action": action, **payload})

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
