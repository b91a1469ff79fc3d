"""A model behind an OpenAI-compatible server: LMDeploy, vLLM, llama.cpp's server, OpenAI.

Rules this backend follows:

* The API key is read from the variable named by ``api_key_env`` at each request;
  it is never kept on the object, put in the fingerprint, logged or quoted in an
  error.  Sending it over plain http to a host other than this machine is refused
  unless ``allow_insecure_remote`` is set.
* Vision: a server does not say whether its model takes images, so the config does:
  ``vision = false`` marks a text-only model; unset, the backend assumes it does.  A
  text-only model that is sent images anyway answers with an error, which becomes a
  BackendError saying so.
* Images go as ``data:`` URIs in ``image_url`` content parts, downscaled to
  ``image_max_side`` first; a text-only message goes as a plain string.
* ``choices`` and ``json_schema`` are constrained with the first structured-output
  form the server honours, tried in this order and then remembered per endpoint:
  ``response_format: json_schema`` (OpenAI, vLLM, LMDeploy, llama.cpp's C++ server),
  ``response_format: json_object`` plus ``schema`` (llama-cpp-python's server),
  vLLM's ``guided_choice`` / ``guided_json``, and a GBNF ``grammar`` for choices.
  vLLM refuses ``guided_choice`` *together with* ``response_format`` (one kind of
  guided decoding per request), so they go in separate tries.  Whatever form is
  used, the answer is checked: a choice must be one of the choices, JSON must
  match the schema, otherwise a BackendError names the server and the fix.
* Model output is untrusted text: returned as a string, never evaluated.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BackendConfig
from ..errors import BackendError, ConfigError
from .base import Backend, GenerateRequest, Generation, Health, ImageRef, Message, TextCallback
from .http_client import HttpClient, HTTPStatusError, is_loopback, one_line
from .structured import DIALECTS, check_answer, constraint_fields

log = logging.getLogger(__name__)

CHAT = "/chat/completions"
COMPLETIONS = "/completions"
OPTIONAL_EXTRAS = ("repeat_penalty",)
"""Non-OpenAI sampling options, dropped for good if the server rejects them by name."""
CONSTRAINT_FIX = (
    "serve the model with structured output (vLLM, LMDeploy, llama.cpp's server) "
    "or route this role to a local backend"
)


class OpenAIBackend(Backend):
    """Generation, embeddings and health through an OpenAI-compatible HTTP API."""

    def __init__(self, config: BackendConfig) -> None:
        if not config.base_url:
            raise ConfigError(
                "backend 'openai' needs base_url",
                "set base_url to the server's API root, e.g. http://127.0.0.1:8080/v1",
            )
        if not config.model:
            raise ConfigError(
                "backend 'openai' needs model (the served model's name)",
                f"set model to a name listed by GET {config.base_url.rstrip('/')}/models",
            )
        self.config = config
        self.model = config.model
        self.concurrency = config.concurrency
        self._http = HttpClient(
            config.base_url, config.timeout, config.max_retries, config.concurrency
        )
        self.base_url = self._http.base_url
        if (
            config.api_key_env
            and self._http.scheme == "http"
            and not is_loopback(self._http.host)
            and not config.allow_insecure_remote
        ):
            raise ConfigError(
                f"refusing to send the API key over plain http to {self._http.host}",
                "use an https base_url, or set allow_insecure_remote = true on a trusted network",
            )
        self._dialect: dict[tuple[str, str], str] = {}
        self._dropped: set[str] = set()

    # -- Backend ------------------------------------------------------------

    @property
    def has_vision(self) -> bool:
        return getattr(self.config, "vision", None) is not False

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.base_url, "model": self.model}

    def generate(self, request: GenerateRequest, on_text: TextCallback | None = None) -> Generation:
        path, payload = self._payload(request)
        kind = "choice" if request.choices is not None else "json" if request.json_schema else None
        try:
            if kind is None:
                return self._post(path, payload, on_text)
            generation = self._constrained(path, kind, payload, request)
        except HTTPStatusError as err:
            if not request.all_images or not (err.rejected_request or err.status == 500):
                raise
            raise BackendError(
                f"{err.what} (the served model may not accept images)",
                "serve a vision model, or set vision = false for this backend",
            ) from None
        if on_text is not None:
            on_text(generation.text)
        return generation

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        body = {"model": self.model, "input": texts}
        data = self._request("POST", "/embeddings", body)
        try:
            rows = sorted(data["data"], key=lambda row: row.get("index", 0))
            matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise BackendError(
                f"{self.base_url}/embeddings answered without a list of embeddings",
                "serve an embedding model there (llama.cpp's server: --embedding true)",
            ) from None
        if matrix.ndim != 2 or len(matrix) != len(texts):
            raise BackendError(
                f"{self.base_url}/embeddings answered {len(matrix)} rows for {len(texts)} texts",
                "check the server's embedding endpoint",
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1, norms)

    def health(self) -> Health:
        def report(ok: bool, detail: str, models: list[str]) -> Health:
            extra = {"base_url": self.base_url, "models": models}
            return Health(ok, "openai", self.model, detail, self.has_vision, extra)

        try:
            data = self._request("GET", "/models", timeout=min(5.0, self.config.timeout), retries=0)
            models = [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]
        except (BackendError, ConfigError) as err:
            return report(False, str(err), [])
        except AttributeError:
            return report(False, f"{self.base_url}/models answered without a model list", [])
        if self.model in models:
            return report(True, f"{self.base_url} serves {self.model}", models)
        listed = ", ".join(models[:8]) or "none"
        detail = (
            f"{self.base_url} is up but does not list model '{self.model}' (it lists: {listed}); "
            "set model to one of them"
        )
        return report(False, detail, models)

    def close(self) -> None:
        self._http.close()

    # -- requests -----------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        name = self.config.api_key_env
        if not name:
            return {}
        key = os.environ.get(name, "").strip()
        if not key:
            raise ConfigError(
                f"environment variable {name} (named by api_key_env) is not set",
                f"export {name} with the server's API key, or remove api_key_env",
            )
        if any(ord(c) < 33 or ord(c) == 127 for c in key):
            raise ConfigError(
                f"environment variable {name} holds an API key with spaces or control characters",
                "set it to the bare key",
            )
        return {"Authorization": f"Bearer {key}"}

    def _request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self._http.request_json(method, path, body, self._headers(), **kwargs)

    def _payload(self, request: GenerateRequest) -> tuple[str, dict[str, Any]]:
        if request.prompt is not None:
            if request.all_images:
                raise ConfigError(
                    "backend 'openai' cannot send images with a raw prompt (/completions takes none)",
                    "use recipe = 'chat' with this backend",
                )
            path, payload = COMPLETIONS, {"model": self.model, "prompt": request.prompt}
        else:
            side = self.config.image_max_side
            messages = [_message(m, side) for m in request.messages]
            path, payload = CHAT, {"model": self.model, "messages": messages}
        payload |= {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.repeat_penalty != 1.0 and "repeat_penalty" not in self._dropped:
            payload["repeat_penalty"] = request.repeat_penalty
        return path, payload

    def _post(self, path: str, payload: dict, on_text: TextCallback | None = None) -> Generation:
        """One generation; options the server rejects by name are dropped and the call repeated."""
        while True:
            started = time.perf_counter()
            try:
                if on_text is None:
                    answer = self._request("POST", path, payload)
                    return _generation(self.base_url + path, answer, started)
                return self._stream(path, payload, on_text, started)
            except HTTPStatusError as err:
                rejected = next(
                    (k for k in OPTIONAL_EXTRAS if k in payload and k in err.server_message), None
                )
                if not err.rejected_request or rejected is None:
                    raise
                log.info("%s rejects '%s'; sending without it from now on", self.base_url, rejected)
                self._dropped.add(rejected)
                payload = {k: v for k, v in payload.items() if k != rejected}

    def _stream(
        self, path: str, payload: dict, on_text: TextCallback, started: float
    ) -> Generation:
        pieces: list[str] = []
        usage: dict = {}
        finish: list[str] = []

        def on_event(event: dict) -> None:
            if not isinstance(event, dict):
                return
            if event.get("error"):
                raise BackendError(
                    f"{self.base_url}{path} sent an error mid-stream: "
                    f"{one_line(json.dumps(event['error'], ensure_ascii=False))}",
                    "check the server's log",
                )
            usage.update(event.get("usage") or {})
            for choice in event.get("choices") or []:
                if choice.get("finish_reason"):
                    finish.append(choice["finish_reason"])
                delta = choice.get("delta") or {}
                piece = delta.get("content") if path == CHAT else choice.get("text")
                if isinstance(piece, str) and piece:
                    pieces.append(piece)
                    on_text(piece)

        body = payload | {"stream": True, "stream_options": {"include_usage": True}}
        whole = self._http.stream_events(path, body, self._headers(), on_event)
        if whole is not None:  # the server ignored "stream" and answered at once
            generation = _generation(self.base_url + path, whole, started)
            on_text(generation.text)
            return generation
        return Generation(
            text="".join(pieces),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            evaluated_prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=time.perf_counter() - started,
            truncated=finish[-1:] == ["length"],
        )

    # -- structured output --------------------------------------------------

    def _constrained(
        self, path: str, kind: str, payload: dict, request: GenerateRequest
    ) -> Generation:
        key = (path, kind)
        known = self._dialect.get(key)
        order = (known,) if known else DIALECTS[key]
        problems: list[str] = []
        for dialect in order:
            fields = constraint_fields(dialect, request)
            try:
                generation = self._post(path, payload | fields)
            except HTTPStatusError as err:
                if not err.rejected_request or known:
                    raise
                problems.append(f"{dialect}: rejected ({one_line(err.server_message, 120)})")
                log.info("%s%s: %s", self.base_url, path, problems[-1])
                continue
            answer, problem = check_answer(generation.text, request)
            if answer is not None:
                if not known:
                    log.info("%s%s honours structured output as %s", self.base_url, path, dialect)
                    self._dialect[key] = dialect
                generation.text = answer
                return generation
            if generation.truncated and dialect != "guided" and _json_begun(generation.text):
                # The form was honoured (the JSON had begun) but the token budget ran out:
                # another form would not help.
                self._dialect[key] = dialect
                raise BackendError(
                    f"{self.base_url}{path} stopped at max_tokens "
                    f"({fields.get('max_tokens', payload['max_tokens'])}) before the JSON "
                    f"was complete: {problem}",
                    "use a stronger model, or ask for fewer sections or words",
                )
            problems.append(f"{dialect}: {problem}")
            log.info("%s%s with %s", self.base_url, path, problems[-1])
        raise BackendError(
            f"server {self.base_url} did not constrain the answer ({'; '.join(problems)})",
            CONSTRAINT_FIX,
        )


# -- plain functions --------------------------------------------------------


def _json_begun(text: str) -> bool:
    return text.lstrip().startswith(("{", "["))


def _message(message: Message, max_side: int) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": "".join(message.content)}  # type: ignore[arg-type]
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImageRef):
            url = image_data_uri(str(part.path), part.sha256, max_side)
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append({"type": "text", "text": part})
    return {"role": message.role, "content": parts}


@lru_cache(maxsize=32)
def image_data_uri(path: str, sha256: str, max_side: int) -> str:
    """The image as a PNG or JPEG ``data:`` URI, upright, its longer side at most ``max_side``.

    :func:`xcomposer.images.image_data_uri` does the work (WebP, SVG and odd
    PNGs converted); ``sha256`` is part of the cache key only.
    """
    from ..images import image_data_uri as encode

    return encode(Path(path), max_side)


def _generation(url: str, answer: Any, started: float) -> Generation:
    try:
        choice = answer["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(
            f"{url} answered without choices ({one_line(json.dumps(answer)[:200], 120)})",
            "check that base_url points at an OpenAI-compatible API",
        ) from None
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise BackendError(f"{url} answered a non-text message", "check the server")
    usage = answer.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return Generation(
        text=text,
        prompt_tokens=prompt_tokens,
        evaluated_prompt_tokens=max(0, prompt_tokens - cached),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        seconds=time.perf_counter() - started,
        truncated=choice.get("finish_reason") == "length",
    )
