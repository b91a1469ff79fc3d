"""xcomposer: interleaved text-image composition with a vision-language model.

The public API, and the only names the MkDocs plugin and the Jupyter extension import::

    from xcomposer import Engine, load_config
    engine = Engine(load_config("xcomposer.toml"))
    article = engine.compose("Write a short article about lighthouses", "images/", n_images=2)
    print(article.to_markdown())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names load on first use (PEP 562), so `from xcomposer import file_sha256` in an adapter
# costs only the module that defines it, not pydantic or the pipeline.
_EXPORTS = {
    "article": ("Article", "Candidate", "Figure", "Paragraph"),
    "cache": ("ResultCache", "cache_key", "write_atomic"),
    "compose": ("PIPELINE_VERSION", "insert_figures"),
    "config": (
        "BackendConfig",
        "EngineConfig",
        "GenerationConfig",
        "LibraryConfig",
        "config_from_dict",
        "load_config",
    ),
    "describe": ("DESCRIBE_STYLES",),
    "engine": ("CallStats", "Engine"),
    "errors": (
        "BackendError",
        "CacheMissError",
        "ConfigError",
        "ImageError",
        "InputError",
        "ModelError",
        "TooLargeError",
        "XComposerError",
    ),
    "identity": (
        "ROLES",
        "engine_identity",
        "identity_digest",
        "local_model_files",
        "serving_every_role",
    ),
    "json_input": ("JSONTooDeepError", "MAX_JSON_DEPTH", "json_depth", "load_json"),
    "jobs": ("Job", "JobCancelled", "JobEvent", "JobRunner", "run_all"),
    "options": (
        "ComposeOptions",
        "DescribeOptions",
        "Edit",
        "EDIT_OPS",
        "EditOptions",
        "IllustrateOptions",
        "OptionError",
        "Switch",
        "check_text_fits",
    ),
    "images": (
        "EVERY_FORMAT",
        "IMAGE_SUFFIXES",
        "check_image",
        "display_size",
        "encode_image",
        "file_sha256",
        "image_bytes",
        "image_data_uri",
        "is_svg",
        "load_image",
        "open_image",
        "store_image_bytes",
    ),
    "library.fingerprint": (
        "FolderFingerprints",
        "describes_an_image",
        "file_fingerprint",
        "library_fingerprint",
        "library_reads",
        "FolderFingerprints",
        "describes_an_image",
        "file_fingerprint",
        "Engines",
        "EngineHost",
        "EngineFacts",
        "RememberedFacts",
        "facts_signature",
        "recall_facts",
        "remember_facts",
        "Outcome",
        "ResultStore",
        "Task",
        "Workshop",
        "WorkshopSettings",
        "library_reads",
    ),
    "engines": ("Engines",),
    "host": ("EngineHost",),
    "remembered": (
        "EngineFacts",
        "ProjectEngines",
        "RememberedFacts",
        "facts_signature",
        "recall_facts",
        "remember_facts",
    ),
    "reproducible": ("Outcome", "ResultStore", "Task", "Workshop", "WorkshopSettings"),
    "svg": ("safe_svg_bytes",),
    "progress": ("Progress", "ProgressCallback"),
    "safe_text": (
        "LINK_SCHEMES",
        "MAX_BLOCK_CHARS",
        "MAX_LINE_CHARS",
        "bounded",
        "figure_html",
        "html_attribute",
        "html_text",
        "json_safe",
        "markdown_figure",
        "markdown_heading",
        "markdown_line",
        "markdown_paragraphs",
        "markdown_text",
        "model_text",
        "sanitise_html",
        "terminal_safe",
        "url_path",
    ),
    "edit": ("check_edit",),
    "page_images": (
        "HiddenLines",
        "markdown_images",
        "MarkdownImage",
        "MissingAlt",
        "images_without_alt",
        "resolve_src",
        "with_alt",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:
    from .article import Article, Candidate, Figure, Paragraph
    from .cache import ResultCache, cache_key, write_atomic
    from .compose import PIPELINE_VERSION, insert_figures
    from .config import (
        BackendConfig,
        EngineConfig,
        GenerationConfig,
        LibraryConfig,
        config_from_dict,
        load_config,
    )
    from .describe import DESCRIBE_STYLES
    from .edit import check_edit
    from .engine import CallStats, Engine
    from .engines import Engines
    from .errors import (
        BackendError,
        CacheMissError,
        ConfigError,
        ImageError,
        InputError,
        ModelError,
        TooLargeError,
        XComposerError,
    )
    from .host import EngineHost
    from .identity import (
        ROLES,
        engine_identity,
        identity_digest,
        local_model_files,
        serving_every_role,
    )
    from .images import (
        EVERY_FORMAT,
        IMAGE_SUFFIXES,
        check_image,
        display_size,
        encode_image,
        file_sha256,
        image_bytes,
        image_data_uri,
        is_svg,
        load_image,
        open_image,
        store_image_bytes,
    )
    from .jobs import Job, JobCancelled, JobEvent, JobRunner, run_all
    from .json_input import MAX_JSON_DEPTH, JSONTooDeepError, json_depth, load_json
    from .library.fingerprint import (
        FolderFingerprints,
        describes_an_image,
        file_fingerprint,
        library_fingerprint,
        library_reads,
    )
    from .options import (
        EDIT_OPS,
        ComposeOptions,
        DescribeOptions,
        Edit,
        EditOptions,
        IllustrateOptions,
        OptionError,
        Switch,
        check_text_fits,
    )
    from .page_images import (
        HiddenLines,
        MarkdownImage,
        MissingAlt,
        images_without_alt,
        markdown_images,
        resolve_src,
        with_alt,
    )
    from .progress import Progress, ProgressCallback
    from .remembered import (
        EngineFacts,
        ProjectEngines,
        RememberedFacts,
        facts_signature,
        recall_facts,
        remember_facts,
    )
    from .reproducible import Outcome, ResultStore, Task, Workshop, WorkshopSettings
    from .safe_text import (
        LINK_SCHEMES,
        MAX_BLOCK_CHARS,
        MAX_LINE_CHARS,
        bounded,
        figure_html,
        html_attribute,
        html_text,
        json_safe,
        markdown_figure,
        markdown_heading,
        markdown_line,
        markdown_paragraphs,
        markdown_text,
        model_text,
        sanitise_html,
        terminal_safe,
        url_path,
    )
    from .svg import safe_svg_bytes


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'xcomposer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])


__version__ = "0.1.0"

__all__ = [
    "LINK_SCHEMES",
    "JSONTooDeepError",
    "MAX_JSON_DEPTH",
    "json_depth",
    "load_json",
    "HiddenLines",
    "resolve_src",
    "MissingAlt",
    "images_without_alt",
    "with_alt",
    "describes_an_image",
    "markdown_images",
    "MarkdownImage",
    "check_edit",
    "check_text_fits",
    "EDIT_OPS",
    "Edit",
    "TooLargeError",
    "MAX_BLOCK_CHARS",
    "MAX_LINE_CHARS",
    "PIPELINE_VERSION",
    "insert_figures",
    "DESCRIBE_STYLES",
    "IMAGE_SUFFIXES",
    "ROLES",
    "Article",
    "BackendConfig",
    "BackendError",
    "CacheMissError",
    "CallStats",
    "Candidate",
    "ComposeOptions",
    "ConfigError",
    "DescribeOptions",
    "EditOptions",
    "Engine",
    "EngineConfig",
    "Figure",
    "GenerationConfig",
    "IllustrateOptions",
    "ImageError",
    "InputError",
    "Job",
    "JobCancelled",
    "JobEvent",
    "JobRunner",
    "LibraryConfig",
    "ModelError",
    "OptionError",
    "Paragraph",
    "Progress",
    "ProgressCallback",
    "ResultCache",
    "Switch",
    "XComposerError",
    "cache_key",
    "config_from_dict",
    "engine_identity",
    "file_sha256",
    "identity_digest",
    "display_size",
    "encode_image",
    "image_bytes",
    "EVERY_FORMAT",
    "image_data_uri",
    "is_svg",
    "library_fingerprint",
    "library_reads",
    "FolderFingerprints",
    "file_fingerprint",
    "Engines",
    "EngineHost",
    "EngineFacts",
    "ProjectEngines",
    "RememberedFacts",
    "facts_signature",
    "recall_facts",
    "remember_facts",
    "Outcome",
    "ResultStore",
    "Task",
    "Workshop",
    "WorkshopSettings",
    "load_config",
    "local_model_files",
    "load_image",
    "open_image",
    "store_image_bytes",
    "check_image",
    "run_all",
    "serving_every_role",
    "safe_svg_bytes",
    "write_atomic",
    "bounded",
    "figure_html",
    "html_attribute",
    "html_text",
    "json_safe",
    "markdown_figure",
    "markdown_heading",
    "markdown_line",
    "markdown_paragraphs",
    "markdown_text",
    "model_text",
    "sanitise_html",
    "terminal_safe",
    "url_path",
]
