"""The operations the REST API and the in-kernel fallback offer, as requests and results.

Each request is validated (unknown fields refused, one-line errors) and its paths
resolved *before* it is queued, so a bad request fails at once with a 4xx; the
prepared call then runs on the job queue against the shared Engine.  Results are
plain JSON data: articles with image paths relative to the Jupyter root, the
Markdown, and optionally the notebook cells with the images as attachments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from xcomposer import (
    Article,
    ComposeOptions,
    DescribeOptions,
    Edit,
    Engine,
    IllustrateOptions,
    InputError,
    ProgressCallback,
    check_edit,
    check_image,
    check_text_fits,
    store_image_bytes,
)

from .cells import article_cells, illustrated_in_place
from .paths import Paths

LibraryField = str | list[str] | None
# The option fields and their bounds are the engine's option models (one validation for
# the CLI, the plugin and this API); a request adds what only a REST body carries.
_Request = BaseModel


class ComposeRequest(ComposeOptions):
    instruction: str  # empty: refused by check_text_fits, in words
    library: LibraryField = None
    cells: bool = False


class IllustrateRequest(IllustrateOptions):
    text: str
    library: LibraryField = None
    cells: bool = False


class DescribeRequest(DescribeOptions):
    path: str | None = None


class EditRequest(Edit):
    article: dict[str, Any]
    text: str | None = None  # the person's text of an illustrated cell: the result's `cell`
    library: LibraryField = None
    cells: bool = False


REQUESTS: dict[str, type[_Request]] = {
    "compose": ComposeRequest,
    "illustrate": IllustrateRequest,
    "describe": DescribeRequest,
    "edit": EditRequest,
}

Work = Callable[[Engine, ProgressCallback], dict[str, Any]]


@dataclass
class Prepared:
    """A validated request, ready to run on the queue."""

    op: str
    work: Work


@dataclass
class Limits:
    """What the server knows before queueing: the model's context, a configured library."""

    context_tokens: int = 4096
    default_library: bool = False


def parse_request(op: str, data: Any) -> _Request:
    """The request model for ``op``, or an InputError naming the first bad field (a request
    model is the engine's option model plus the fields only a REST body carries)."""
    if not isinstance(data, dict):
        raise InputError("the request body is not a JSON object", "send a JSON object")
    return REQUESTS[op].parse(data)  # the engine's one-line OptionError, naming the field


NO_LIBRARY = (
    "no image library: the request names none and the server has none configured",
    "give 'library' (a folder relative to the Jupyter root) or set c.XComposerApp.library",
)


async def _library(library: LibraryField, paths: Paths, limits: Limits) -> list[Path] | None:
    if library is None or library == "" or library == []:
        if not limits.default_library:
            raise InputError(*NO_LIBRARY)
        return None
    folders = [library] if isinstance(library, str) else library
    return [await paths.folder(f) for f in folders]


def article_result(
    article: Article, paths: Paths, cells: bool, text: str | None = None
) -> dict[str, Any]:
    """An article as returned to clients: paths relative to the root, Markdown, cells.

    ``text`` (illustrate): the person's text, also returned as one ``cell`` with the
    figures inserted in place.
    """
    data = article.with_image_paths(paths.display).to_dict()
    result: dict[str, Any] = {
        "article": data,
        # the cells' Markdown as one text, the images at their paths
        "markdown": article.to_markdown(lambda f: paths.display(f.image), caption_paragraph=True),
        "placements": [
            {k: fig[k] for k in ("after", "image", "caption", "alt", "score")}
            for fig in data["figures"]
        ],
    }
    if cells:
        result["cells"] = article_cells(article)
        if text is not None:
            result["cell"] = illustrated_in_place(text, article)
    return result


def article_from_client(data: dict[str, Any], paths: Paths) -> Article:
    """An article sent back by a client, its figure paths confined like any other path."""
    return Article.parse(data).with_image_paths(lambda image: str(paths.figure_in(image)))


async def prepare(op: str, data: Any, paths: Paths, limits: Limits | None = None) -> Prepared:
    """Validate ``data`` for ``op`` and resolve its paths; the returned work runs the engine."""
    limits = limits or Limits()
    if op not in REQUESTS:
        raise InputError(f"unknown operation '{op}'", f"use one of: {', '.join(REQUESTS)}")
    req = parse_request(op, data)
    if isinstance(req, ComposeRequest):
        check_text_fits(req.instruction, "instruction", limits.context_tokens)
        library = await _library(req.library, paths, limits)

        def compose(engine: Engine, progress: ProgressCallback) -> dict[str, Any]:
            article = engine.compose(req.instruction, library, req, progress=progress)
            return article_result(article, paths, req.cells)

        return Prepared(op, compose)
    if isinstance(req, IllustrateRequest):
        check_text_fits(req.text, "text to illustrate", limits.context_tokens)
        library = await _library(req.library, paths, limits)

        def illustrate(engine: Engine, progress: ProgressCallback) -> dict[str, Any]:
            article = engine.illustrate(req.text, library, req, progress=progress)
            return article_result(article, paths, req.cells, text=req.text)

        return Prepared(op, illustrate)
    if isinstance(req, DescribeRequest):
        if not req.path:
            raise InputError(
                "the describe request needs 'path' (or an uploaded image)",
                "give a path relative to the Jupyter root, or POST the image bytes",
            )
        image = await paths.file(req.path)
        check_image(image, req.path)
        return describe_work(req, image, paths.display(image))
    assert isinstance(req, EditRequest)
    return await _prepare_edit(req, paths, limits)


def describe_work(req: DescribeRequest, image: Path, shown: str) -> Prepared:
    def describe(engine: Engine, progress: ProgressCallback) -> dict[str, Any]:
        text = engine.describe(image, options=req, progress=progress)
        return {"text": text, "image": shown, "style": req.style}

    return Prepared("describe", describe)


async def _prepare_edit(req: EditRequest, paths: Paths, limits: Limits) -> Prepared:
    article = article_from_client(req.article, paths)
    needs_library = req.op in ("insert_image", "replace_image")
    library = await _library(req.library, paths, limits) if needs_library else None
    if req.text is not None:
        check_text_fits(req.text, "text to illustrate", limits.context_tokens)
    if req.image is not None:
        req = req.model_copy(update={"image": str(paths.figure_in(req.image))})
    check_edit(article, req)  # before queueing: a missing or wrong target is a 400 now

    def edit(engine: Engine, progress: ProgressCallback) -> dict[str, Any]:
        new = engine.edit(article, req, library, progress=progress)
        return article_result(new, paths, req.cells, text=req.text)

    return Prepared(f"edit:{req.op}", edit)


def upload_work(data: bytes, query: dict[str, Any], folder: Path, max_bytes: int) -> Prepared:
    """A describe of uploaded image bytes (``query``: question, style, language, name),
    the bytes kept in ``folder`` by the engine once checked."""
    query = dict(query)
    name = query.pop("name", None) or "upload"
    req = parse_request("describe", {k: v for k, v in query.items() if v})
    assert isinstance(req, DescribeRequest)
    fix = "send a smaller image (or raise XComposerApp.max_upload_bytes)"
    path = store_image_bytes(data, folder, max_bytes, name=name, limit_fix=fix)
    return describe_work(req, path, f"upload:{path.stem[:16]}")
