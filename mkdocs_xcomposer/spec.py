"""What a block asks for: its options checked, its paths resolved and confined, defaults filled.

Every path a page names must stay inside docs_dir or a configured library folder
(``../../etc/passwd`` is refused, symlinks included), and must exist.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .blocks import Block


@dataclass(frozen=True)
class Folders:
    """Where a site's files are: what block paths are resolved against and confined to."""

    config_dir: Path
    """The folder of mkdocs.yml."""
    docs_dir: Path
    library: tuple[Path, ...]
    """The configured library folders (resolved); a block without ``images:`` uses them."""

    def allowed(self, path: Path) -> bool:
        return any(path.is_relative_to(root) for root in (self.docs_dir, *self.library))

    def portable(self, path: Path | str) -> str:
        """``path`` relative to mkdocs.yml's folder, with ``/``: what cache entries store."""
        return Path(os.path.relpath(path, self.config_dir)).as_posix()

    def absolute(self, portable: str) -> Path:
        return Path(os.path.normpath(self.config_dir / portable))


@dataclass(frozen=True)
class BlockSpec:
    """A block, checked and ready to run."""

    block: Block
    text: str
    """The instruction (compose) or the writer's text (illustrate); empty for describe."""
    options: Any
    """The engine's options for the block's kind (``ComposeOptions``, ``IllustrateOptions``,
    ``DescribeOptions``), checked by the engine's models: the one home of their bounds."""
    image_dirs: tuple[Path, ...] = ()
    image: Path | None = None
    """The image a describe block is about."""
    backend: str | None = None
    show_image: bool = False
    title_level: int | None = None

    @property
    def kind(self) -> str:
        return self.block.kind

    def key_inputs(self, folders: Folders) -> dict[str, Any]:
        """Everything the page says that changes the result, with portable paths."""
        return {
            "kind": self.kind,
            "text": self.text,
            "image": folders.portable(self.image) if self.image else None,
            "images": [folders.portable(d) for d in self.image_dirs],
            "options": self.options.model_dump() | {"backend": self.backend},
        }


def build_spec(block: Block, folders: Folders, backends: set[str]) -> BlockSpec:
    """Check ``block``'s options and paths; raise :class:`BlockError` with ``page.md:LINE``."""
    opts = dict(block.options)
    if "title" in opts and block.kind == "compose":
        raise block.error("a compose block's title goes in its header: /// compose | Title")
    image_dirs = opts.pop("images", None) if block.kind != "describe" else None
    if block.kind == "compose":
        opts["title"] = block.argument or None
    checked = _checked(block, opts)
    backend = checked.backend
    if backend is not None and backend not in backends:
        known = ", ".join(sorted(backends)) or "none are configured"
        raise block.error(
            f"backend '{backend}' is not configured (named backends: {known}); "
            "add it under the plugin's engine: backends: or remove the option"
        )
    options = _engine_options(block, checked)
    if block.kind == "describe":
        return _describe_spec(block, folders, options, backend, checked.show_image)
    text = block.body.strip()
    if not text:
        what = "instruction" if block.kind == "compose" else "text to illustrate"
        raise block.error(
            f"the {block.kind} block's {what} is empty; write it between the header and "
            "the closing ///"
        )
    return BlockSpec(
        block,
        text,
        options,
        image_dirs=_image_dirs(block, folders, image_dirs),
        backend=backend,
        title_level=getattr(checked, "title_level", None),
    )


# The engine's option names that a block spells its own way.
_BLOCK_NAMES = {"n_images": "max_images"}


@functools.cache
def block_options(kind: str) -> Any:
    """The options a ``kind`` block accepts: the engine's option model for it (the one home
    of the bounds) with the fields only a block has.  Built on first use (pydantic)."""
    from typing import Annotated

    from pydantic import Field
    from xcomposer import ComposeOptions, DescribeOptions, IllustrateOptions, Switch

    Text = Annotated[str, Field(strict=True)] | None

    class ComposeBlock(ComposeOptions):
        backend: Text = None
        title_level: Annotated[int, Field(strict=True, ge=1, le=5)] | None = None

    class IllustrateBlock(IllustrateOptions):
        backend: Text = None

    class DescribeBlock(DescribeOptions):
        backend: Text = None
        show_image: Switch = False

    return {"compose": ComposeBlock, "illustrate": IllustrateBlock}.get(kind, DescribeBlock)


def _checked(block: Block, values: dict[str, Any]) -> Any:
    """The block's options checked (unknown ones refused with a did-you-mean), a failure
    reported at the block's ``page.md:LINE`` in the block's own option names."""
    from xcomposer import OptionError

    for engine_name, block_name in _BLOCK_NAMES.items():
        if engine_name in values:
            raise block.error(f"unknown option '{engine_name}'; did you mean '{block_name}'?")
        if block_name in values:
            values[engine_name] = values.pop(block_name)
    try:
        return block_options(block.kind).parse(values)
    except OptionError as err:
        message = str(err)
        for engine_name, block_name in _BLOCK_NAMES.items():
            message = message.replace(f"'{engine_name}'", f"'{block_name}'")
            message = message.replace(f"{engine_name} must", f"{block_name} must")
        raise block.error(message) from None


def _engine_options(block: Block, checked: Any) -> Any:
    """The engine's own options of a checked block (what names its result)."""
    from xcomposer import ComposeOptions, DescribeOptions, IllustrateOptions

    model = {"compose": ComposeOptions, "illustrate": IllustrateOptions}.get(
        block.kind, DescribeOptions
    )
    return model.parse(checked)


def _describe_spec(
    block: Block, folders: Folders, options: Any, backend: str | None, show_image: bool
) -> BlockSpec:
    from xcomposer import IMAGE_SUFFIXES

    if not block.argument:
        raise block.error(
            "a describe block names its image in the header: /// describe | images/chart.png "
            "(relative to docs_dir)"
        )
    image = _confined(block, folders, block.argument, "image")
    if not image.is_file():
        raise block.error(
            f"image '{block.argument}' not found; give its path relative to docs_dir "
            f"({folders.docs_dir})"
        )
    if image.suffix.lower() not in IMAGE_SUFFIXES:
        raise block.error(f"'{block.argument}' is not an image file (by its extension)")
    return BlockSpec(block, "", options, image=image, backend=backend, show_image=show_image)


def _image_dirs(block: Block, folders: Folders, images: Any) -> tuple[Path, ...]:
    if images is None:
        if not folders.library:
            raise block.error(
                "this block has no images: give it an 'images: FOLDER' option (relative to "
                "docs_dir) or set 'library:' in the plugin config"
            )
        return folders.library
    names = [images] if isinstance(images, str) else images
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise block.error("images must be a folder or a list of folders (relative to docs_dir)")
    dirs = []
    for name in names:
        folder = _confined(block, folders, name, "image folder")
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise block.error(
                f"image folder '{name}' {what}; give a folder relative to docs_dir "
                f"({folders.docs_dir}); a single image goes in a describe block"
            )
        dirs.append(folder)
    return tuple(dirs)


def _confined(block: Block, folders: Folders, name: str, what: str) -> Path:
    path = (folders.docs_dir / name).resolve()
    if not folders.allowed(path):
        raise block.error(
            f"{what} '{name}' is outside docs_dir and the library folders; use a path inside "
            "docs_dir (relative to it) or add its folder to the plugin's library:"
        )
    return path
