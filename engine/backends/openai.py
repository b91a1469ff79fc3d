"""A model behind an OpenAI-compatible server: llama.cpp's server, vLLM, LMDeploy, Ollama, OpenAI.

Rules this backend follows:

* The API key is read from the variable named by ``api_key_env`` at each request;
  it is never kept on the object, put in the fingerprint, logged or quoted in an
  error, and a server that echoes it inside an answer has it replaced by ``***``
  before the text goes anywhere.  Sending it over plain http to a host other than
  this machine is refused unless ``allow_insecure_remote`` is set.
* What the server can do (vision, parallel slots, the structured-output form,
  a switch for thinking) is discovered once per server and model
  (:mod:`.capabilities`); the config's ``vision`` and ``concurrency`` override it.
  A server without vision is never sent an image.
* Images go as ``data:`` URIs in ``image_url`` content parts, downscaled to
  ``image_max_side`` first; a text-only message goes as a plain string.
* ``choices`` and ``json_schema`` are constrained in the form the server takes;
  where its kind is unknown the forms are tried in order once and the one
  honoured is remembered.  Whatever form is used, the answer is checked.  Where
  the server supports it, constrained calls turn a reasoning model's thinking off;
  ``reasoning_content`` is never part of an answer.
* Answers are bounded: a byte cap derived from ``max_tokens`` and a total
  wall-clock deadline of ``timeout`` seconds per request.
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
from .capabilities import (
    DEFAULT_CONCURRENCY,
    Capabilities,
    capabilities_for,
    concurrency_for,
    vision_of,
)
from .http_client import HttpClient, HTTPStatusError, answer_byte_cap, one_line, scrub
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
        self._http = HttpClient(
            config.base_url,
            config.timeout,
            config.max_retries,
            config.concurrency or DEFAULT_CONCURRENCY,
            allow_insecure_remote=config.allow_insecure_remote,
        )
        self.base_url = self._http.base_url
        if config.api_key_env and not self._http.key_may_travel():
            raise ConfigError(
                f"refusing to send the API key over plain http to {self._http.host}",
                "use an https base_url, or set allow_insecure_remote = true on a trusted network",
            )
        self._dropped: set[str] = set()
        self._warned_usage = False

    # -- what the server can do -----------------------------------------------

    def capabilities(self) -> Capabilities:
        """What the server said or showed it can do (asked once per server and model)."""
        caps = capabilities_for(self._http, self.model, self._headers(), self.config.vision)
        if caps.reached:
            self._http.set_concurrency(concurrency_for(caps, self.config.concurrency)[0])
        return caps

    @property
    def has_vision(self) -> bool:
        caps = self.capabilities()
        return vision_of(caps, self._http, self.model, self._headers()) is not False

    @property
    def concurrency(self) -> int:  # type: ignore[override]
        return concurrency_for(self.capabilities(), self.config.concurrency)[0]

    # -- Backend ------------------------------------------------------------

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.base_url, "model": self.model}

    def generate(self, request: GenerateRequest, on_text: TextCallback | None = None) -> Generation:
        path, payload = self._payload(request)
        kind = "choice" if request.choices is not None else "json" if request.json_schema else None
        caps = self.capabilities() if request.all_images or kind else None
        if request.all_images and caps is not None and caps.vision is False:
            raise BackendError(
                f"{self.base_url} ({caps.kind}) does not take images ({caps.vision_evidence})",
                "serve a vision model (llama.cpp: --mmproj), or route this role elsewhere",
            )
        try:
            if kind is None:
                return self._post(path, payload, on_text)
            assert caps is not None
            generation = self._constrained(path, kind, payload, request, caps)
        except HTTPStatusError as err:
            if not request.all_images or not (err.rejected_request or err.status == 500):
                raise
            assert caps is not None
            caps.vision = False
            caps.vision_evidence = f"an image was refused with {err.status}"
            log.warning("%s refused an image: no image is sent to it again", self.base_url)
            raise BackendError(
                f"{err.what} (the served model does not accept images)",
                "serve a vision model, or pass --no-vision (vision = false) for this backend",
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
            health = report(True, f"{self.base_url} serves {self.model}", models)
            health.vision = self.has_vision
            caps = self.capabilities()
            concurrency, why = concurrency_for(caps, self.config.concurrency)
            health.extra["found"] = [*caps.lines(), f"requests in flight: {concurrency} ({why})"]
            return health
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

    def _secret(self) -> str | None:
        name = self.config.api_key_env
        return (os.environ.get(name, "").strip() or None) if name else None

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
                    cap = answer_byte_cap(int(payload["max_tokens"]), streamed=False)
                    answer = self._request("POST", path, payload, max_bytes=cap)
                    generation = self._generation(self.base_url + path, answer, started)
                else:
                    generation = self._stream(path, payload, on_text, started)
                generation.text = scrub(generation.text, [self._secret() or ""])
                return generation
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
        usage: list[Any] = []
        finish: list[str] = []
        shown = _KeyFilter(self._secret(), on_text)

        def on_event(event: Any) -> None:
            if not isinstance(event, dict):
                return
            if event.get("error"):
                raise BackendError(
                    f"{self.base_url}{path} sent an error mid-stream: "
                    f"{one_line(json.dumps(event['error'], ensure_ascii=False))}",
                    "check the server's log",
                )
            if event.get("usage") is not None:
                usage.append(event["usage"])
            choices = event.get("choices")
            for choice in choices if isinstance(choices, list) else []:
                if not isinstance(choice, dict):
                    continue
                if isinstance(choice.get("finish_reason"), str):
                    finish.append(choice["finish_reason"])
                delta = choice.get("delta")
                # Only the answer: a reasoning model's "reasoning_content" stays out.
                if path == CHAT:
                    piece = delta.get("content") if isinstance(delta, dict) else None
                else:
                    piece = choice.get("text")
                if isinstance(piece, str) and piece:
                    pieces.append(piece)
                    shown.feed(piece)

        body = payload | {"stream": True, "stream_options": {"include_usage": True}}
        cap = answer_byte_cap(int(payload["max_tokens"]), streamed=True)
        whole = self._http.stream_events(path, body, self._headers(), on_event, max_bytes=cap)
        if whole is not None:  # the server ignored "stream" and answered at once
            generation = self._generation(self.base_url + path, whole, started)
            on_text(scrub(generation.text, [self._secret() or ""]))
            return generation
        shown.flush()
        prompt, cached, completion = self._usage(self.base_url + path, usage[-1] if usage else {})
        return Generation(
            text="".join(pieces),
            prompt_tokens=prompt,
            evaluated_prompt_tokens=max(0, prompt - cached),
            completion_tokens=completion,
            seconds=time.perf_counter() - started,
            truncated=finish[-1:] == ["length"],
        )

    def _generation(self, url: str, answer: Any, started: float) -> Generation:
        try:
            choice = answer["choices"][0]
            if not isinstance(choice, dict):
                raise TypeError
            # Only the answer: a reasoning model's "reasoning_content" stays out.
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
        prompt, cached, completion = self._usage(url, answer.get("usage"))
        return Generation(
            text=text,
            prompt_tokens=prompt,
            evaluated_prompt_tokens=max(0, prompt - cached),
            completion_tokens=completion,
            seconds=time.perf_counter() - started,
            truncated=choice.get("finish_reason") == "length",
        )

    def _usage(self, url: str, usage: Any) -> tuple[int, int, int]:
        """(prompt, cached prompt, completion) tokens; a malformed ``usage`` counts as unknown."""
        if usage is None:
            return 0, 0, 0
        try:
            details = usage.get("prompt_tokens_details") or {}
            counts = (
                _count(usage.get("prompt_tokens")),
                _count(details.get("cached_tokens")),
                _count(usage.get("completion_tokens")),
            )
        except (AttributeError, TypeError, ValueError):
            if not self._warned_usage:
                self._warned_usage = True
                log.warning(
                    "%s answered a malformed usage field (%s): token counts unknown",
                    url,
                    one_line(repr(usage), 60),
                )
            return 0, 0, 0
        return counts

    # -- structured output --------------------------------------------------

    def _constrained(
        self, path: str, kind: str, payload: dict, request: GenerateRequest, caps: Capabilities
    ) -> Generation:
        known = caps.dialects.get(kind) if path == CHAT else None
        order = (known,) if known else DIALECTS[(path, kind)]
        extra = {}
        if caps.thinking_switch and path == CHAT:
            # A reasoning model would think before the constrained answer: not here.
            extra = {"chat_template_kwargs": {"enable_thinking": False}}
        problems: list[str] = []
        for dialect in order:
            fields = constraint_fields(dialect, request) | extra
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
                if not known and path == CHAT:
                    log.info("%s%s honours structured output as %s", self.base_url, path, dialect)
                    caps.dialects[kind] = dialect
                    caps.dialect_evidence = "the form honoured on the first constrained call"
                generation.text = answer
                return generation
            if generation.truncated and dialect != "guided" and _json_begun(generation.text):
                # The form was honoured (the JSON had begun) but the token budget ran out:
                # another form would not help.
                if path == CHAT:
                    caps.dialects[kind] = dialect
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


def _count(value: Any) -> int:
    """A token count from ``usage``: a non-negative integer, or an error."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(value)
    return int(value)


class _KeyFilter:
    """Streams text on, with the API key replaced by ``***`` even when split across pieces."""

    def __init__(self, secret: str | None, on_text: TextCallback) -> None:
        self.secret = secret or ""
        self.on_text = on_text
        self.pending = ""

    def feed(self, piece: str) -> None:
        if not self.secret:
            self.on_text(piece)
            return
        self.pending = (self.pending + piece).replace(self.secret, "***")
        keep = len(self.secret) - 1  # the longest tail that could begin the key
        if len(self.pending) > keep:
            cut = len(self.pending) - keep
            ready, self.pending = self.pending[:cut], self.pending[cut:]
            self.on_text(ready)

    def flush(self) -> None:
        if self.pending:
            self.on_text(self.pending)
            self.pending = ""
