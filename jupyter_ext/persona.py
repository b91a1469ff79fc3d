"""XComposer in Jupyter AI's chat: a persona for the ``jupyter_ai.personas`` entry point.

Ask it in the chat (``@XComposer`` or the persona picker)::

    compose: Write a short article about lighthouses
    compose images=2 sections=3 words=60 library=images: Write about harbours
    illustrate library=images:
    My cat naps on the windowsill every morning. ...
    help

A message without ``compose:``/``illustrate:`` is a compose instruction.  The
request is checked exactly as the REST API checks it (the same request models,
the same root-confined paths), then runs on the server extension's job queue and
engine when that extension is loaded (one model per server, shared with the
notebooks), else on an engine of its own built from the same configuration.
The event loop never waits on the model: the persona follows the job (the engine's
``Job.wait_async``) and
updates one chat message with its progress, then replaces it by the article.

Figures are inlined as ``data:`` URIs, the same bytes a notebook cell gets as
attachments (scaled to at most 1024 px): a chat renders them without resolving
file URLs against the chat's folder, the library may lie outside the Jupyter
root where no ``/files/`` URL reaches it, and a shared ``.chat`` file keeps its
pictures.  Only this module imports jupyter-ai's persona manager.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_ai_persona_manager import BasePersona, PersonaDefaults
from jupyterlab_chat.models import Message, NewMessage
from xcomposer import InputError, Progress, XComposerError, load_config, markdown_line

from .cells import embedded_markdown
from .operations import prepare
from .paths import RootPaths
from .service import EngineService

AVATAR = Path(__file__).parent / "static" / "xcomposer-avatar.svg"
FOLLOW_SECONDS = 10.0
# "images" is the chat's word for the REST field n_images.
OPTIONS = {
    "images": "n_images",
    "sections": "sections",
    "words": "words",
    "library": "library",
    "language": "language",
    "seed": "seed",
    "candidates": "candidates",
}
NUMBERS = {"n_images", "sections", "words", "seed", "candidates"}
VERB = re.compile(
    r"^\s*(compose|illustrate|help)\b(?P<options>(?:[ \t]+[\w-]+=[^\s:]+)*)[ \t]*:?[ \t]*\n?", re.I
)
MENTION = re.compile(r"^\s*(@\S+\s*)+")

HELP = """**XComposer** writes illustrated articles with the server's model and your image folders.

- `compose: <instruction>`: an article, its figures chosen from the library
- `illustrate: <your text>`: your text, word for word, with figures added after its paragraphs
- options before the colon: `images=N|auto sections=N words=N library=FOLDER language=CODE seed=N`

Example: `compose images=1 sections=2 library=images: Write about cats and coffee`.
Folders are relative to the Jupyter root."""


@dataclass
class ChatRequest:
    """What a chat message asks for: an operation and its REST request body."""

    op: str
    body: dict[str, Any] = field(default_factory=dict)


def parse_chat_request(text: str) -> ChatRequest:
    """The operation and request body of a chat message; an InputError for a bad option."""
    text = MENTION.sub("", text or "")
    match = VERB.match(text)
    op = match.group(1).lower() if match else "compose"
    rest = text[match.end() :] if match else text
    if op == "help" or not rest.strip() and not match:
        return ChatRequest("help")
    body: dict[str, Any] = {}
    for token in (match.group("options") if match else "").split():
        key, sep, value = token.partition("=")
        name = OPTIONS.get(key.lower())
        if not sep or name is None or not value:
            raise InputError(
                f"'{token}' is not an option of {op}",
                f"write options as key=value before the colon: {', '.join(OPTIONS)}",
            )
        body[name] = int(value) if name in NUMBERS and re.fullmatch(r"-?\d+", value) else value
    field_name = "instruction" if op == "compose" else "text"
    body[field_name] = rest.strip() if op == "compose" else rest.strip("\n")
    body["cells"] = True
    return ChatRequest(op, body)


def chat_markdown(result: dict[str, Any]) -> str:
    """The result's notebook cells as one Markdown text, attachments as data URIs."""
    cells = [result["cell"]] if result.get("cell") else result.get("cells") or []
    parts = [embedded_markdown(cells).rstrip("\n")] if cells else []
    figures = (result.get("article") or {}).get("figures") or []
    if figures:
        # the library's own file names (relative to the root), shown as code: no escapes
        listed = ", ".join(
            f"`{' '.join(f['image'].replace('`', chr(39)).split())}` ({f['score']:.2f})"
            for f in figures
            if f.get("image")
        )
        parts.append(f"<sub>Figures: {listed}</sub>")
    return "\n\n".join(parts)


def progress_line(event: dict[str, Any]) -> str:
    return f"*XComposer: {markdown_line(Progress.from_dict(event).summary())}*"


_OWN_SERVICES: dict[str, EngineService] = {}  # root -> service, when no server extension runs


def _serverapp(start: Any) -> Any:
    """The Jupyter ServerApp above ``start`` in its traitlets parents (manager, extension)."""
    node, seen = start, 0
    while node is not None and seen < 8:
        app = getattr(node, "serverapp", None)
        if app is not None:
            return app
        node, seen = getattr(node, "parent", None), seen + 1
    return None


class XComposerPersona(BasePersona):
    """Compose and illustrate from Jupyter AI's chat, on the server's XComposer engine."""

    @property
    def defaults(self) -> PersonaDefaults:
        return PersonaDefaults(
            name="XComposer",
            description="Writes illustrated articles and illustrates your text with pictures "
            "from your image folders.",
            avatar_path=str(AVATAR),
            system_prompt="XComposer runs its own prompts; messages are compose or "
            "illustrate requests.",
        )

    # -- the engine: the server extension's when it is loaded --------------------------------
    def _service_and_paths(self) -> tuple[EngineService, RootPaths]:
        serverapp = _serverapp(self.parent)
        service: EngineService | None = None
        contents = getattr(serverapp, "contents_manager", None)
        if serverapp is not None:
            apps = serverapp.extension_manager.extension_apps.get("jupyter_xcomposer", ())
            service = next((a.service for a in apps if getattr(a, "service", None)), None)
        if contents is None:
            from jupyter_server.services.contents.filemanager import FileContentsManager

            contents = FileContentsManager(root_dir=str(self.parent.root_dir))
        if service is None:
            root = str(contents.root_dir)
            if root not in _OWN_SERVICES:
                self.log.info("XComposer persona: no server extension, starting an engine")
                _OWN_SERVICES[root] = EngineService(
                    lambda: load_config(None, search_dir=Path(root)), root=root
                )
            service = _OWN_SERVICES[root]
        return service, service.paths(contents)

    # -- messages ----------------------------------------------------------------------------
    async def process_message(self, message: Message) -> None:
        try:
            request = parse_chat_request(message.body)
            if request.op == "help":
                self.send_message(HELP)
                return
            service, paths = self._service_and_paths()
            prepared = await prepare(request.op, request.body, paths, service.limits())
        except XComposerError as err:
            self.send_message(f"**XComposer:** {markdown_line(str(err))}")
            return
        self._service = service
        self._job = service.submit_prepared(prepared)
        reply = self.chat.add_message(NewMessage(body="*XComposer: queued*", sender=self.id))
        self.set_status("is composing...")
        try:
            snapshot = await self._follow(self._job, reply)
        finally:
            self._job = None
            self.clear_status()
        if snapshot["state"] == "done":
            body = chat_markdown(snapshot["result"])
        elif snapshot["state"] == "cancelled":
            body = "*XComposer: cancelled*"
        else:
            body = f"**XComposer:** {markdown_line(snapshot.get('error') or 'the job failed')}"
        self._show(reply, body, final=True)

    async def _follow(self, job: Any, reply: str) -> dict[str, Any]:
        """Follow the job to its end off the event loop, showing each progress event."""
        since = 0
        while True:
            await job.wait_async(since, FOLLOW_SECONDS)
            snapshot = self._service.job_reply(job, since)
            if snapshot["events"]:
                self._show(reply, progress_line(snapshot["events"][-1]))
            since = snapshot["next"]
            # the snapshot's own state: the job may finish after it was taken
            if snapshot["state"] not in ("queued", "running"):
                return snapshot

    def _show(self, reply: str, body: str, final: bool = False) -> None:
        update = Message(id=reply, body=body, time=time.time(), sender=self.id, raw_time=False)
        # progress lines are not scanned for mentions; the final reply is, as any reply
        self.chat.update_message(update, append=False, trigger_actions=None if final else [])

    async def cancel_response(self) -> None:
        """The chat's stop button: the job stops after the model call in progress."""
        job = getattr(self, "_job", None)
        if job is not None:
            self._service.queue.cancel(job.id)
