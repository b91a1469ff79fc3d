"""The plugin's options (``plugins: - xcomposer: ...`` in mkdocs.yml).

Relative paths: ``config``, ``library`` and ``cache_dir`` are relative to
mkdocs.yml; a block's ``images:`` is relative to docs_dir.
"""

from __future__ import annotations

import os
from typing import Any

from mkdocs.config import config_options as c
from mkdocs.config.base import Config

#: The committed cache's default home, beside mkdocs.yml (outside ``.cache/``, which
#: Zensical's ``build --clean`` empties and its ``.gitignore`` hides from git).
DEFAULT_CACHE_DIR = "xcomposer-cache"
#: Where the cache lived before: a site that still has it there gets a migration notice.
OLD_CACHE_DIR = ".cache/xcomposer"


class OnOffChoice(c.Choice):
    """A choice whose "on" and "off" may be written as YAML booleans (``off`` is ``False``)."""

    def __init__(self, choices: tuple[str, ...], on: str, off: str, **kwargs: Any) -> None:
        super().__init__(choices, **kwargs)
        self.on, self.off = on, off

    def run_validation(self, value: Any) -> Any:
        if isinstance(value, bool):
            value = self.on if value else self.off
        return super().run_validation(value)


#: The engine's own backend keys that may be written directly in the plugin config.
BACKEND_KEYS = (
    "backend",
    "model",
    "model_file",
    "mmproj",
    "recipe",
    "base_url",
    "api_key_env",
    "n_ctx",
    "n_threads",
    "n_gpu_layers",
    "device",
    "dtype",
    "trust_remote_code",
)


class XComposerConfig(Config):
    """Options of the ``xcomposer`` plugin; every one has a default."""

    enabled = c.Type(bool, default=True)
    """Turn the plugin off without removing it (blocks are then left in the page as written)."""

    config = c.Optional(c.File(exists=True))
    """The engine's TOML config (the file ``xcomposer --config`` reads), relative to mkdocs.yml.

    Keys written directly in the plugin config override the file's ``[backend]`` keys."""

    # -- the engine's main backend, as in the [backend] table of the engine's TOML ----------
    # (their values are checked by the engine's BackendConfig, the one home of their choices)
    backend = c.Optional(c.Type(str))
    """Which runtime runs the model: ``llamacpp``, ``transformers`` or ``openai`` (a server).
    Default: the embedded SmolLM2 on llama.cpp."""
    model = c.Optional(c.Type(str))
    """A local model path, a Hugging Face repo id, or a served model's name."""
    model_file = c.Optional(c.Type(str))
    """With a repo id on llama.cpp: the GGUF file name (or glob) inside the repo."""
    mmproj = c.Optional(c.Type(str))
    """llama.cpp: the vision projector GGUF that gives the model eyes."""
    recipe = c.Optional(c.Type(str))
    """Prompt family; ``auto`` picks from the model name."""
    base_url = c.Optional(c.Type(str))
    """An OpenAI-compatible server, e.g. ``http://127.0.0.1:8080/v1``."""
    api_key_env = c.Optional(c.Type(str))
    """The environment variable that holds the server's API key (the key is never stored)."""
    n_ctx = c.Optional(c.Type(int))
    """llama.cpp context window in tokens."""
    n_threads = c.Optional(c.Type(int))
    """llama.cpp CPU threads."""
    n_gpu_layers = c.Optional(c.Type(int))
    """llama.cpp layers offloaded to the GPU (-1: all)."""
    device = c.Optional(c.Type(str))
    """transformers: ``cuda``, ``cpu``, ``mps`` or ``auto``."""
    dtype = c.Optional(c.Type(str))
    """transformers: the weights' dtype."""
    trust_remote_code = c.Optional(c.Type(bool))
    """transformers: allow the model's own code (InternLM-XComposer needs it)."""

    engine = c.Type(dict, default={})
    """Any other engine setting, as the engine's TOML would write it: ``backends`` (named
    backends a block picks with ``backend:``), ``roles``, ``generation``, ``library``
    (e.g. ``embeddings``, ``ocr``)."""

    # -- the plugin's own settings ------------------------------------------------------------
    library = c.ListOfItems(c.Type(str), default=[])
    """Image folders the blocks draw from when they give no ``images:``, relative to
    mkdocs.yml.  Folders outside docs_dir are fine: the images a page uses are copied
    into the site under ``assets/xcomposer/``."""

    cache_dir = c.Type(str, default=DEFAULT_CACHE_DIR)
    """Where results live, relative to mkdocs.yml.  Commit its ``blocks/`` folder: a machine
    without the model then builds the same pages (the folder's own .gitignore leaves out
    the rest).  Keep it out of ``.cache/``: Zensical's ``--clean`` deletes that folder."""

    frozen = c.Optional(c.Type(bool))
    """Never call a model: every block must come from the cache, and a block that is not
    there fails the build with the command that fills it.  Default: on when the ``CI``
    environment variable is set.  ``XCOMPOSER_FROZEN=0`` or ``=1`` overrides both."""

    concurrency = c.Deprecated(
        message="the 'concurrency' option of the xcomposer plugin is no longer used: blocks "
        "are composed as many at once as the backend takes (a server backend's "
        "'concurrency' setting under engine:); remove it"
    )

    alt_text = OnOffChoice(("off", "missing"), on="missing", off="off", default="off")
    """``missing``: Markdown images without alt text (``![](cat.png)``) get one, from the
    vision model or, without one, the library's description of the image.  Alt text a
    person wrote is never replaced.  ``off`` (or ``false``): pages are left exactly as
    written."""

    figure_class = c.Type(str, default="xcomposer-figure")
    """CSS class of each generated ``<figure>``."""

    figure_caption = OnOffChoice(
        ("model", "image", "none"), on="model", off="none", default="model"
    )
    """What a figure's caption says: ``model``, the caption the model wrote for the spot
    (what the picture should show there); ``image``, the image's own description (its
    alt text: the vision model's or the library's); ``none``, no caption."""

    image_width = c.Optional(c.Type(int))
    """Width in pixels given to each figure's ``<img>`` (its height follows).  Default: the
    image's own size, which themes shrink to the page's width."""

    publish_sidecars = c.Type(bool, default=False)
    """Publish the library's caption files (``NAME.txt``, ``NAME.md`` beside an image,
    ``captions.yml``) found under docs_dir.  Default: they stay out of the site."""

    prune = c.Type(bool, default=True)
    """Remove cache entries no page uses any more, at the end of a full, successful build."""


def resolve_frozen(option: bool | None) -> bool:
    """``XCOMPOSER_FROZEN`` (0/1) beats the ``frozen`` option, which beats ``CI`` being set."""
    env = os.environ.get("XCOMPOSER_FROZEN", "").strip().lower()
    if env:
        return env not in ("0", "false", "no", "off")
    if option is not None:
        return option
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
