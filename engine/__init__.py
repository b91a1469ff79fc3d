"""xcomposer: interleaved text-image composition with a vision-language model.

The public API, and the only names the MkDocs plugin and the Jupyter extension import::

    from xcomposer import Engine, load_config
    engine = Engine(load_config("xcomposer.toml"))
    article = engine.compose("Write a short article about lighthouses", "images/", n_images=2)
    print(article.to_markdown())
"""

from .article import Article, Candidate, Figure, Paragraph
from .cache import ResultCache, cache_key, write_atomic
from .config import (
    BackendConfig,
    EngineConfig,
    GenerationConfig,
    LibraryConfig,
    config_from_dict,
    load_config,
)
from .describe import STYLES as DESCRIBE_STYLES
from .engine import CallStats, Engine
from .errors import (
    BackendError,
    CacheMissError,
    ConfigError,
    ImageError,
    InputError,
    ModelError,
    XComposerError,
)
from .images import IMAGE_SUFFIXES, file_sha256, open_image
from .progress import Progress, ProgressCallback

__version__ = "0.1.0"

__all__ = [
    "DESCRIBE_STYLES",
    "IMAGE_SUFFIXES",
    "Article",
    "BackendConfig",
    "BackendError",
    "CacheMissError",
    "CallStats",
    "Candidate",
    "ConfigError",
    "Engine",
    "EngineConfig",
    "Figure",
    "GenerationConfig",
    "ImageError",
    "InputError",
    "LibraryConfig",
    "ModelError",
    "Paragraph",
    "Progress",
    "ProgressCallback",
    "ResultCache",
    "XComposerError",
    "cache_key",
    "config_from_dict",
    "file_sha256",
    "load_config",
    "open_image",
    "write_atomic",
]
