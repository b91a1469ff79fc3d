"""jupyter_xcomposer: illustrated writing in Jupyter, on the xcomposer engine.

- A server extension (:class:`~jupyter_xcomposer.app.XComposerApp`): one engine per
  Jupyter server, shared by every notebook, behind a REST API under ``/xcomposer/``.
- A widget assistant in the kernel: ``from jupyter_xcomposer import Assistant; Assistant()``.
- IPython magics: ``%load_ext jupyter_xcomposer``, then ``%%compose`` and ``%describe``.

Importing this package is cheap: Jupyter server, ipywidgets and the engine's
models are imported only by the parts that use them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Assistant", "__version__", "connect"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import XComposerApp

    return [{"module": "jupyter_xcomposer", "app": XComposerApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The small JupyterLab extension that inserts the assistant's cells into the open notebook."""
    return [{"src": "labextension", "dest": "jupyter-xcomposer"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_xcomposer``: the ``%%compose`` and ``%describe`` magics."""
    from .magics import register

    register(ipython)


def __getattr__(name: str) -> Any:
    if name == "Assistant":
        from .assistant import Assistant

        return Assistant
    if name == "connect":
        from .client import connect

        return connect
    raise AttributeError(f"module 'jupyter_xcomposer' has no attribute {name!r}")
