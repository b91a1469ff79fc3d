"""Backends: llama.cpp, transformers and OpenAI-compatible servers behind one interface."""

from __future__ import annotations

from ..config import BackendConfig
from .base import Backend, GenerateRequest, Generation, Health, ImageRef, Message

__all__ = [
    "Backend",
    "GenerateRequest",
    "Generation",
    "Health",
    "ImageRef",
    "Message",
    "create_backend",
]


def create_backend(config: BackendConfig) -> Backend:
    """The backend ``config.backend`` names; its runtime is imported here, not before."""
    if config.backend == "llamacpp":
        from .llamacpp import LlamaCppBackend

        return LlamaCppBackend(config)
    if config.backend == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend(config)
    from .openai import OpenAIBackend

    return OpenAIBackend(config)
