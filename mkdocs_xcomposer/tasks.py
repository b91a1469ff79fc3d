"""Blocks as the engine's reproducible tasks (``xcomposer.Workshop``): their inputs and their work.

A task's inputs are what the page says (instruction or text, options, portable
paths) and the content fingerprint of the image folders it draws from (or of the
one image it describes); the workshop adds the engine's identity and answers it
from the committed block cache.  A result is stored with image paths relative to
mkdocs.yml, so a committed cache works on any machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from xcomposer import file_fingerprint  # the package is lazy: no pydantic

from .spec import BlockSpec, Folders

if TYPE_CHECKING:  # the engine's pipeline is imported only when something is composed
    from xcomposer import Engine, FolderFingerprints, Task, Workshop


def block_task(
    workshop: Workshop, spec: BlockSpec, folders: Folders, prints: FolderFingerprints
) -> Task:
    """The task of one compose, illustrate or describe block."""
    inputs = spec.key_inputs(folders)
    reads = workshop.settings.facts.library_reads
    if spec.kind == "describe":
        assert spec.image is not None
        inputs["content"] = file_fingerprint(spec.image)
    else:
        inputs["content"] = prints.folders(spec.image_dirs, reads)
    return workshop.task(
        inputs,
        where=spec.block.where,
        kind=spec.kind,
        subject=f"this {spec.kind} block",
        backend=spec.backend,
        run=lambda engine, progress: run_spec(engine, spec, folders, progress),
    )


def alt_task(workshop: Workshop, where: str, image: Path, prints: FolderFingerprints) -> Task:
    """The task of writing the alt text of one image a page shows without it."""
    inputs = {
        "kind": "alt",
        "content": file_fingerprint(image),
        "folder": prints.folder(image.parent, workshop.settings.facts.library_reads),
    }
    return workshop.task(
        inputs,
        where=where,
        kind="alt",
        subject="alt text of this image",
        backend=None,
        run=lambda engine, progress: _alt_text(engine, image),
    )


def run_spec(engine: Engine, spec: BlockSpec, folders: Folders, progress: Any) -> Any:
    """Compose one block; the result is stored as plain data with portable paths."""
    if spec.kind == "describe":
        return {"text": engine.describe(spec.image, options=spec.options, progress=progress)}
    run = engine.compose if spec.kind == "compose" else engine.illustrate
    article = run(spec.text, [str(d) for d in spec.image_dirs], spec.options, progress=progress)
    return article.with_image_paths(folders.portable).to_dict()


def _alt_text(engine: Engine, image: Path) -> dict[str, str]:
    text, how = engine.alt_text(image)
    return {"alt": text, "how": how}


def load_article(data: dict[str, Any], folders: Folders) -> dict[str, Any]:
    """A stored article with its figures' image paths made absolute again.

    (The candidates keep their stored, portable paths: nothing renders them.)
    """
    figures = [dict(fig, image=str(folders.absolute(fig["image"]))) for fig in data["figures"]]
    return dict(data, figures=figures)
