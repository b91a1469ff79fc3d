"""IPython magics: ``%%compose`` writes an illustrated article, ``%describe`` describes an image.

::

    %load_ext jupyter_xcomposer

    %%compose --images figures -n 2
    Write a short introduction to lighthouses for children

    %describe plots/loss.png
    %describe _            # the last image this kernel displayed

They use the same client as the assistant (the server extension's shared engine,
else an in-kernel one), show progress on one updating line, and print a
problem as one line (no traceback).  The composed article is displayed as
Markdown with its images embedded, so it renders without the image files;
the last result is kept in ``_xcomposer`` (article, Markdown, cells).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from xcomposer import Progress

from .cells import embedded_markdown
from .client import Client, ClientError, connect
from .frontend import ImageCapture


class ProgressLine:
    """One output line that the job's progress events overwrite."""

    def __init__(self) -> None:
        self.handle = display({"text/plain": "xcomposer: queued"}, raw=True, display_id=True)

    def __call__(self, event: dict[str, Any]) -> None:
        line = f"xcomposer: {Progress.from_dict(event).summary()}"
        if self.handle is not None:
            self.handle.update({"text/plain": line}, raw=True)


@magics_class
class XComposerMagics(Magics):
    def __init__(self, shell: Any, client: Client | None = None) -> None:
        super().__init__(shell)
        self._client = client

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = connect()
            if self._client.notice:
                print(f"xcomposer: {self._client.notice}", file=sys.stderr)
        return self._client

    def _run(self, start: Any) -> dict[str, Any]:
        progress = ProgressLine()
        try:
            return start().wait(progress)
        except ClientError as err:
            raise UsageError(f"xcomposer: {err}") from None
        finally:  # the progress line goes, also above an error
            if progress.handle is not None:
                progress.handle.update({"text/plain": ""}, raw=True)

    @magic_arguments()
    @argument("--images", "-i", default=None, help="image folder (default: the configured library)")
    @argument("-n", "--n-images", default="auto", help="number of images, or auto")
    @argument("--sections", type=int, default=4, help="sections in the article")
    @argument("--words", type=int, default=80, help="words per section")
    @argument("--language", default=None, help="output language (default: the instruction's)")
    @argument("--seed", type=int, default=None, help="sampling seed")
    @cell_magic
    def compose(self, line: str, cell: str) -> None:
        """Write an illustrated article; the cell's body is the instruction."""
        args = parse_argstring(self.compose, line)
        n_images: int | str = args.n_images
        if n_images != "auto":
            try:
                n_images = int(n_images)
            except ValueError:
                raise UsageError(
                    f"xcomposer: -n takes a number or auto, not {n_images!r}"
                ) from None
        payload = {
            "instruction": cell.strip(),
            "library": args.images,
            "n_images": n_images,
            "sections": args.sections,
            "words": args.words,
            "language": args.language,
            "seed": args.seed,
            "cells": True,
        }
        result = self._run(lambda: self.client.start("compose", payload))
        self.shell.user_ns["_xcomposer"] = result
        cells = result.get("cells", [])
        # Markdown, as documented: each image once (a data URI), no HTML copy beside it.
        display(
            {"text/markdown": embedded_markdown(cells), "text/plain": result["markdown"]}, raw=True
        )

    @magic_arguments()
    @argument("image", nargs="?", default="_", help="an image file, or _ for the last image shown")
    @argument("--style", default="caption", help="caption, alt or explain")
    @argument("-q", "--question", nargs="+", default=None, help="a question about the image")
    @argument("--language", default=None, help="answer language")
    @line_magic
    def describe(self, line: str) -> None:
        """Describe an image file, or the last figure this kernel displayed (``_``)."""
        args = parse_argstring(self.describe, line)
        if args.image == "_":
            if ImageCapture.last is None:
                raise UsageError(
                    "xcomposer: no image was displayed since the extension was loaded; "
                    "show a figure first, or give a file: %describe path/to/image.png"
                )
            data, mime = ImageCapture.last
            name = "last figure"
        else:
            path = Path(args.image).expanduser()
            if not path.is_file():
                raise UsageError(f"xcomposer: image {args.image} not found; check the path")
            data, mime, name = path.read_bytes(), "application/octet-stream", path.name
        params = {
            "style": args.style,
            "question": " ".join(args.question) if args.question else None,
            "language": args.language,
            "name": name,
        }
        result = self._run(lambda: self.client.describe_bytes(data, mime, **params))
        self.shell.user_ns["_xcomposer"] = result
        print(result["text"])


def register(ipython: Any, client: Client | None = None) -> XComposerMagics:
    """Register the magics (``%load_ext jupyter_xcomposer``) and remember displayed images."""
    ImageCapture.install(ipython)
    magics = XComposerMagics(ipython, client)
    ipython.register_magics(magics)
    return magics
