"""The assistant widget: draft, illustrate, describe and edit, then insert the result as cells.

``Assistant()`` in a notebook shows the form.  Every button starts a job on the
server extension's shared engine (or on an in-kernel engine, with a notice,
where the extension is not enabled) in a background thread, so the kernel stays
free for the progress updates and the Cancel button.  The result is previewed
(escaped HTML) and "Insert" puts it into the open notebook as Markdown cells
whose images are cell attachments, through the JupyterLab extension.

Everything is reachable from Python: ``a.draft_button.click()``, ``a.wait()``,
``a.result`` (article, Markdown, cells), ``a.cells``, ``a.events``, ``a.error``.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from xcomposer import Progress

from .cells import image_cell, preview_html, text_preview
from .client import Cancelled, Client, ClientError, connect
from .frontend import Frontend, ImageCapture, current_cell_id

log = logging.getLogger("jupyter_xcomposer")
IMAGE_CHOICES = ["auto", "0", "1", "2", "3", "4", "5", "6"]
WIDE = widgets.Layout(width="98%")


def _button(label: str, icon: str, tip: str, style: str = "") -> widgets.Button:
    return widgets.Button(
        description=label,
        icon=icon,
        tooltip=tip,
        button_style=style,
        layout=widgets.Layout(width="auto", min_width="110px"),
    )


class Assistant(widgets.VBox):
    """Illustrated writing in the notebook, on the Jupyter server's shared model."""

    def __init__(
        self,
        instruction: str = "",
        *,
        library: str = "",
        n_images: int | str = "auto",
        language: str = "",
        text: str = "",
        sections: int = 4,
        words: int = 80,
        candidates: int = 4,
        client: Client | None = None,
        frontend: Frontend | Any | None = None,
    ) -> None:
        ImageCapture.install()
        self.client = client if client is not None else connect()
        self.frontend = frontend if frontend is not None else Frontend(current_cell_id())
        self.sections, self.words, self.candidates = sections, words, candidates
        self._build_inputs(instruction, library, n_images, language, text)
        self._build_controls()
        self.result: dict[str, Any] | None = None
        self.cells: list[dict] = []
        self.events: list[dict[str, Any]] = []
        self.error: str | None = None
        self.inserted: list[str] = []
        self._job: Any = None
        self._thread: threading.Thread | None = None
        self._busy = False
        super().__init__(children=self._layout())
        self._wire()
        if self.client.notice:
            self._notice(self.client.notice, "#8a6d00")

    def _build_inputs(
        self, instruction: str, library: str, n_images: int | str, language: str, text: str
    ) -> None:
        """The form: what to write or illustrate, and with which images."""
        self.instruction = widgets.Textarea(
            value=instruction,
            description="Instruction",
            placeholder="What to write, e.g. Write a short article about lighthouses",
            layout=WIDE,
        )
        self.library = widgets.Text(
            value=str(library), description="Library", placeholder="image folder (relative)"
        )
        if str(n_images) not in IMAGE_CHOICES:
            raise ValueError(f"n_images must be 'auto' or 0-6, not {n_images!r}")
        self.n_images = widgets.Dropdown(
            options=IMAGE_CHOICES, value=str(n_images), description="Images"
        )
        self.language = widgets.Text(value=language, description="Language", placeholder="auto")
        self.text = widgets.Textarea(
            value=text,
            description="Cell text",
            placeholder="Text to illustrate (empty: the cell you selected last)",
            layout=WIDE,
        )

    def _build_controls(self) -> None:
        """The buttons, the progress line, the preview and the insert button."""
        self.draft_button = _button("Draft", "pencil", "Write an illustrated article", "primary")
        self.illustrate_button = _button("Illustrate cell", "image", "Add images to the text")
        self.describe_button = _button("Describe last image", "eye", "Describe the last figure")
        self.paragraph = widgets.BoundedIntText(value=1, min=0, max=999, description="Paragraph")
        self.how = widgets.Text(description="How", placeholder="optional, e.g. for beginners")
        self.rewrite_button = _button("Rewrite", "refresh", "Rewrite the paragraph")
        self.expand_button = _button("Expand", "expand", "Make the paragraph longer")
        self.shorten_button = _button("Shorten", "compress", "Make the paragraph shorter")
        self.progress = widgets.IntProgress(value=0, min=0, max=100, description="idle")
        self.stage = widgets.Label("")
        self.cancel_button = _button("Cancel", "stop", "Stop the running job", "warning")
        self.cancel_button.disabled = True
        self.notice = widgets.HTML("")
        self.preview = widgets.HTML("", layout=widgets.Layout(max_height="420px", overflow="auto"))
        self.insert_button = _button("Insert", "plus", "Insert as Markdown cells", "success")
        self.insert_button.disabled = True
        self.status = widgets.Label("")
        self._action_buttons = [
            self.draft_button,
            self.illustrate_button,
            self.describe_button,
            self.rewrite_button,
            self.expand_button,
            self.shorten_button,
        ]

    def _layout(self) -> list[widgets.Widget]:
        return [
            widgets.HTML("<b>XComposer assistant</b>"),
            self.notice,
            self.instruction,
            widgets.HBox([self.library, self.n_images, self.language]),
            self.text,
            widgets.HBox([self.draft_button, self.illustrate_button, self.describe_button]),
            widgets.HBox([self.paragraph, self.how]),
            widgets.HBox([self.rewrite_button, self.expand_button, self.shorten_button]),
            widgets.HBox([self.progress, self.stage, self.cancel_button]),
            self.preview,
            widgets.HBox([self.insert_button, self.status]),
        ]

    def _wire(self) -> None:
        self.draft_button.on_click(lambda _: self.draft())
        self.illustrate_button.on_click(lambda _: self.illustrate())
        self.describe_button.on_click(lambda _: self.describe())
        self.rewrite_button.on_click(lambda _: self.edit("rewrite"))
        self.expand_button.on_click(lambda _: self.edit("expand"))
        self.shorten_button.on_click(lambda _: self.edit("shorten"))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.insert_button.on_click(lambda _: self.insert())

    # -- the actions ---------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        images = self.n_images.value
        return {
            "library": self.library.value.strip() or None,
            "n_images": images if images == "auto" else int(images),
            "candidates": self.candidates,
        }

    def draft(self) -> None:
        """Write an illustrated article for the instruction."""
        payload = {
            "instruction": self.instruction.value,
            "language": self.language.value.strip() or None,
            "sections": self.sections,
            "words": self.words,
            "cells": True,
            **self._options(),
        }
        self._run("draft", lambda: self.client.start("compose", payload), self._show_article)

    def illustrate(self) -> None:
        """Images for the Markdown cell the person selected last, else the text box.

        The selected cell wins: the text box only stands in where the lab extension is
        absent (it is refreshed with each selected cell's text, never reused stale).
        """

        def got(reply: dict[str, Any]) -> None:
            self.text.value = reply.get("text", "")
            self._illustrate(self.text.value)

        def fallback(why: str) -> None:
            if self.text.value.strip() and self.frontend.state == "absent":
                self._illustrate(self.text.value)
            else:
                self._fail(f"no Markdown cell to illustrate: {why}")

        self.frontend.selection(got, fallback)

    def _illustrate(self, text: str) -> None:
        payload = {"text": text, "cells": True, **self._options()}

        def show(result: dict[str, Any]) -> None:
            self._show_article(result)
            # One cell: the person's text exactly as written (blank lines too), figures added.
            self.cells = [result["cell"]] if result.get("cell") else self.cells

        self._run("illustrate", lambda: self.client.start("illustrate", payload), show)

    def describe(self) -> None:
        """Describe the last image this kernel displayed (else the notebook's last image output)."""
        if ImageCapture.last is not None:
            self._describe(*ImageCapture.last)
            return

        def got(reply: dict[str, Any]) -> None:
            import base64

            self._describe(base64.b64decode(reply["data"]), reply.get("mime", "image/png"))

        self.frontend.last_image(got, lambda why: self._fail(f"no image to describe ({why})"))

    def _describe(self, data: bytes, mime: str) -> None:
        language = self.language.value.strip() or None

        def start() -> Any:
            return self.client.describe_bytes(data, mime, style="caption", language=language)

        def show(result: dict[str, Any]) -> None:
            self.cells = [image_cell(data, mime, result["text"], "figure" + _ext(mime))]
            self.preview.value = text_preview(result["text"], "Description")

        self._run("describe", start, show)

    def edit(self, op: str) -> None:
        """Rewrite, expand or shorten paragraph ``self.paragraph.value`` of the current article."""
        if not self.result or "article" not in self.result:
            self._fail("draft or illustrate something first: the edits work on its paragraphs")
            return
        payload = {
            "op": op,
            "article": self.result["article"],
            "index": self.paragraph.value,
            "cells": True,
        }
        if op == "rewrite" and self.how.value.strip():
            payload["how"] = self.how.value.strip()
        self._run(op, lambda: self.client.start("edit", payload), self._show_article)

    def cancel(self) -> None:
        job = self._job
        if job is not None:
            try:
                job.cancel()
                self.stage.value = "cancelling (after the current model call)"
            except ClientError as err:
                self._fail(str(err))

    def insert(self) -> None:
        """Put the result into the open notebook as Markdown cells (images as attachments)."""
        if not self.cells:
            self._fail("nothing to insert yet")
            return
        after = self.inserted[-1] if self.inserted else None

        self.insert_button.disabled = True  # one result, one insert: a second click adds nothing
        cells, self.cells = self.cells, []

        def failed(message: str) -> None:
            self.cells = cells  # not inserted: the person may try again
            self.insert_button.disabled = False
            self._fail(message)

        def done(reply: dict[str, Any]) -> None:
            self.inserted.extend(reply.get("inserted", []))
            saved = " and saved" if reply.get("saved") else ""
            self.status.value = (
                f"inserted {len(reply.get('inserted', []))} cell(s) into {reply.get('path')}{saved}"
            )

        self.status.value = "inserting..."
        self.frontend.insert(cells, after, done, failed)

    # -- running jobs --------------------------------------------------------------------------
    def _run(self, label: str, start: Callable[[], Any], show: Callable[[dict], None]) -> None:
        if self._busy:
            self._fail("a job is already running: wait for it or cancel it")
            return
        self._set_busy(True)
        self.error = None
        self.notice.value = self._client_notice()
        self.events = []
        self.status.value = ""
        self.progress.value = 0
        self.progress.description = "queued"
        self.stage.value = f"{label}: waiting for the model"

        def work() -> None:
            try:
                self._job = start()
                result = self._job.wait(self._on_progress)
                self.result = result if "article" in result else self.result
                show(result)
                self.progress.value = 100
                self.progress.description = "done"
                self.stage.value = f"{label}: done"
                self.insert_button.disabled = not self.cells
            except Cancelled:
                self.progress.description = "cancelled"
                self.stage.value = f"{label}: cancelled"
            except ClientError as err:
                self._fail(str(err))
            except Exception as err:  # a bug: keep the kernel alive, say what happened
                log.exception("jupyter_xcomposer: the assistant's %s failed", label)
                self._fail(f"unexpected error in {label}: {err}")
            finally:
                self._job = None
                self._set_busy(False)

        self._thread = threading.Thread(target=work, name=f"xcomposer-{label}", daemon=True)
        self._thread.start()

    def _on_progress(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        report = Progress.from_dict(event)
        self.progress.value = max(0, min(100, round(100 * report.done / max(1, report.total))))
        self.progress.description = report.stage
        self.stage.value = report.summary()

    def _show_article(self, result: dict[str, Any]) -> None:
        self.cells = list(result.get("cells") or [])
        self.preview.value = preview_html(result["article"], self.cells)
        text_paragraphs = [
            i for i, p in enumerate(result["article"]["paragraphs"]) if p.get("kind") == "text"
        ]
        if text_paragraphs and self.paragraph.value not in text_paragraphs:
            self.paragraph.value = text_paragraphs[0]

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        for button in self._action_buttons:
            button.disabled = busy
        self.cancel_button.disabled = not busy
        if busy:
            self.insert_button.disabled = True

    def _client_notice(self) -> str:
        notice = getattr(self.client, "notice", "")
        return _notice_html(notice, "#8a6d00") if notice else ""

    def _notice(self, message: str, color: str) -> None:
        self.notice.value = _notice_html(message, color)

    def _fail(self, message: str) -> None:
        self.error = message
        self._notice(message, "#b00020")
        self.progress.description = "error" if self._busy else self.progress.description

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) ended: for scripts and tests."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


def _notice_html(message: str, color: str) -> str:
    return f'<div style="color:{color};white-space:pre-wrap">{html.escape(message)}</div>'


def _ext(mime: str) -> str:
    return {"image/jpeg": ".jpg", "image/gif": ".gif"}.get(mime, ".png")
