"""llama.cpp through llama-cpp-python: a quantized GGUF plus an optional mmproj projector.

One ``Llama`` per backend, loaded on first use and reused, calls serialised by a
lock.  Back-to-back calls that share a prompt prefix (the article, then questions
about it) reuse llama.cpp's KV cache; ``Generation.evaluated_prompt_tokens`` says
how many prompt tokens were actually run.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import BackendConfig
from ..errors import ModelError, TooLargeError
from ..images import image_data_uri
from .base import Backend, GenerateRequest, Generation, Health, ImageRef, TextCallback
from .model_files import EMBEDDED_MODEL_NAME, embedded_model_path, file_identity, resolve_model_file

INSTALL_HINT = "install the runtime: pip install 'mkdocs-xcomposer[llamacpp]'"


def _gbnf_literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class LlamaCppBackend(Backend):
    """A GGUF model run by llama.cpp, with vision when an mmproj is given."""

    concurrency = 1

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self._llm: Any = None
        self._lock = threading.Lock()
        self._paths: tuple[Path, Path | None] | None = None

    # -- files --------------------------------------------------------------
    def model_paths(self) -> tuple[Path, Path | None]:
        """(model, mmproj) as local files, fetched from the hub cache where named by repo id."""
        if self._paths is None:
            cfg = self.config
            if cfg.model is None:
                model = embedded_model_path()
            else:
                model = resolve_model_file(cfg.model, cfg.model_file, what="model")
            mmproj = None
            if cfg.mmproj:
                repo = cfg.model if cfg.model and not Path(cfg.model).exists() else None
                mmproj = resolve_model_file(cfg.mmproj, None, what="mmproj", repo=repo)
            self._paths = (model, mmproj)
        return self._paths

    @property
    def has_vision(self) -> bool:
        return self.config.mmproj is not None

    def fingerprint(self) -> dict[str, Any]:
        model, mmproj = self.model_paths()
        return {
            "backend": "llamacpp",
            "model": file_identity(model),
            "mmproj": file_identity(mmproj) if mmproj else None,
            "n_ctx": self.config.n_ctx,
        }

    # -- loading ------------------------------------------------------------
    def _load(self) -> Any:
        if self._llm is not None:
            return self._llm
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError("llama-cpp-python is not installed", INSTALL_HINT) from None
        model, mmproj = self.model_paths()
        _check_gguf(model, "model")
        handler = None
        if mmproj is not None:
            _check_gguf(mmproj, "mmproj")
            from llama_cpp.llama_chat_format import MTMDChatHandler

            handler = _quietly(
                lambda: MTMDChatHandler(clip_model_path=str(mmproj), verbose=False),
                ModelError(
                    f"vision projector {mmproj} could not be loaded",
                    "give the mmproj GGUF made for this model (--mmproj)",
                ),
            )
        cfg = self.config
        kwargs: dict[str, Any] = {
            "model_path": str(model),
            "n_ctx": cfg.n_ctx,
            "n_gpu_layers": cfg.n_gpu_layers,
            "seed": 0,
            "verbose": False,
        }
        # llama-cpp-python's own default is half the cores: generation then runs on one
        # thread of two.  Use every free core this process may run on unless told otherwise.
        threads = cfg.n_threads or default_threads()
        kwargs["n_threads"] = threads
        kwargs["n_threads_batch"] = threads
        if handler is not None:
            kwargs["chat_handler"] = handler
        llm = _quietly(
            lambda: Llama(**kwargs),
            ModelError(
                f"model {model} could not be loaded by llama.cpp (corrupt or unsupported GGUF)",
                "re-download the file or pick another model (--model)",
            ),
        )
        if mmproj is not None:
            try:
                _check_projector_width(llm, mmproj)
            except ModelError:
                llm.close()
                raise
        self._llm = llm
        return self._llm

    # -- generation ---------------------------------------------------------
    def generate(self, request: GenerateRequest, on_text: TextCallback | None = None) -> Generation:
        with self._lock:
            llm = self._load()
            return self._generate(llm, request, on_text)

    def _generate(
        self, llm: Any, request: GenerateRequest, on_text: TextCallback | None
    ) -> Generation:
        import llama_cpp
        from llama_cpp import LlamaGrammar

        grammar = None
        if request.choices is not None:
            rule = " | ".join(_gbnf_literal(c) for c in request.choices)
            grammar = LlamaGrammar.from_string(f"root ::= {rule}", verbose=False)
        elif request.json_schema is not None:
            grammar = LlamaGrammar.from_json_schema(json.dumps(request.json_schema), verbose=False)
        params: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "repeat_penalty": request.repeat_penalty,
            "seed": request.seed,
            "stop": list(request.stop) or None,
            "grammar": grammar,
            "stream": on_text is not None,
        }
        llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
        started = time.perf_counter()
        if request.prompt is not None:
            if request.images:
                raise ModelError(
                    "the llama.cpp backend takes images only through the chat recipe",
                    'set recipe = "chat" (or "auto") for this backend',
                )
            with _context_checked(llm):
                result = llm.create_completion(prompt=request.prompt, **params)
                text, usage = _collect(result, on_text, chat=False)
        else:
            if request.all_images and not self.has_vision:
                raise ModelError(
                    "this llama.cpp model has no vision projector",
                    "configure one with --mmproj (the mmproj GGUF made for the model)",
                )
            messages = [_message_dict(m.role, m.content) for m in request.messages]
            with _context_checked(llm):
                result = llm.create_chat_completion(messages=messages, **params)
                text, usage = _collect(result, on_text, chat=True)
        elapsed = time.perf_counter() - started
        perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
        gen_seconds = perf.t_eval_ms / 1000 if perf.t_eval_ms > 0 else elapsed
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or perf.n_p_eval),
            evaluated_prompt_tokens=int(perf.n_p_eval),
            completion_tokens=int(perf.n_eval),
            seconds=gen_seconds,
            truncated=usage.get("finish_reason") == "length",
        )

    def health(self) -> Health:
        cfg = self.config
        try:
            model, mmproj = self.model_paths()
        except ModelError as err:
            return Health(False, "llamacpp", cfg.model or EMBEDDED_MODEL_NAME, str(err))
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            return Health(
                False, "llamacpp", str(model), f"llama-cpp-python missing; {INSTALL_HINT}"
            )
        name = EMBEDDED_MODEL_NAME + " (embedded)" if cfg.model is None else str(model)
        size = model.stat().st_size / 1e6
        detail = f"{model} ({size:.0f} MB)" + (f", mmproj {mmproj}" if mmproj else ", no vision")
        return Health(True, "llamacpp", name, detail, vision=mmproj is not None)

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                with contextlib.suppress(Exception):
                    self._llm.close()
                self._llm = None


@contextlib.contextmanager
def _context_checked(llm: Any) -> Iterator[None]:
    """llama.cpp's "exceed context window" ValueError as the user's error it is."""
    try:
        yield
    except ValueError as err:
        if "context window" not in str(err):
            raise
        raise TooLargeError(
            f"the text is longer than the model's context window ({llm.n_ctx()} tokens)",
            "send a shorter text, or configure a model with a larger context (n_ctx)",
        ) from None


def default_threads() -> int:
    """The cores this process may run on (its CPU affinity), less those other work keeps busy.

    llama.cpp's threads wait for each other at every step, so one that loses its core
    stalls them all: on 2 cores with a load average of 11, SmolLM2 generated 1.0 token/s
    on 2 threads and 12.8 on 1 (docs/benchmarks.md).  So a core counts as free unless
    the 1-minute load average says other work runs on it; one more thread than the
    free cores keeps them all busy.  ``n_threads`` in the config overrides this.
    """
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, cores - round(busy) + 1))


def _message_dict(role: str, content: tuple[str | ImageRef, ...]) -> dict[str, Any]:
    if all(isinstance(p, str) for p in content):
        return {"role": role, "content": "".join(content)}  # type: ignore[arg-type]
    parts: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, ImageRef):
            # PNG or JPEG bytes, upright: llama.cpp reads neither WebP nor SVG nor EXIF rotation.
            parts.append({"type": "image_url", "image_url": {"url": image_data_uri(p.path)}})
        else:
            parts.append({"type": "text", "text": p})
    return {"role": role, "content": parts}


def _collect(result: Any, on_text: TextCallback | None, chat: bool) -> tuple[str, dict]:
    """The answer's text and usage, from a whole result or a stream of chunks."""
    if on_text is None:
        choice = result["choices"][0]
        text = (choice["message"]["content"] if chat else choice["text"]) or ""
        usage = dict(result.get("usage") or {})
        usage["finish_reason"] = choice.get("finish_reason")
        return text, usage
    pieces = []
    finish = None
    for chunk in result:
        choice = chunk["choices"][0]
        finish = choice.get("finish_reason") or finish
        piece = (choice.get("delta", {}).get("content") if chat else choice.get("text")) or ""
        if piece:
            pieces.append(piece)
            on_text(piece)
    return "".join(pieces), {"finish_reason": finish}


def _check_gguf(path: Path, what: str) -> None:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise ModelError(
            f"{what} {path} cannot be read ({err.strerror})", "check the path"
        ) from None
    if magic != b"GGUF":
        raise ModelError(
            f"{what} {path} is not a GGUF file (corrupt or wrong format)",
            "re-download it, or convert the model to GGUF",
        )


def _check_projector_width(llm: Any, mmproj: Path) -> None:
    """An mmproj made for another model projects to a different width: refuse it up front."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return
    try:
        reader = GGUFReader(str(mmproj))
        field = reader.get_field("clip.vision.projection_dim")
        width = int(field.parts[field.data[0]][0]) if field is not None else None
    except Exception:  # noqa: BLE001 - the check is best effort; loading already succeeded
        return
    if width is not None and width != llm.n_embd():
        raise ModelError(
            f"vision projector {mmproj} outputs {width}-wide embeddings but the model is "
            f"{llm.n_embd()}-wide: they do not belong together",
            "give the mmproj GGUF made for this model (--mmproj)",
        )


def _quietly(make: Any, error: ModelError) -> Any:
    """Run a llama.cpp constructor with its C-level stderr chatter silenced; map failure to ``error``."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            return make()
        except (ValueError, RuntimeError, OSError) as err:
            raise error from err
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
