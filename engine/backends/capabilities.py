"""What an OpenAI-compatible server can do, found out once per (base_url, model).

Servers say different things about themselves, each in its own place:

* llama.cpp's ``llama-server``: ``GET /props`` has ``total_slots`` (its ``-np``) and
  ``modalities.vision`` (true when started with ``--mmproj``);
* Ollama: ``POST /api/show {"model": ...}`` lists ``capabilities`` (``vision``, ...);
* vLLM and LMDeploy: their ``/v1/models`` listing, ``owned_by: vllm`` / ``lmdeploy``;
* llama-cpp-python's server: ``owned_by: me`` in ``/v1/models``, nothing more;
* OpenAI itself: its host name.

Where nothing says whether the model takes images, one probe (a tiny image,
one token) settles it, made only when the pipeline first needs to know.  The structured-output form follows from the server kind
(llama.cpp: a GBNF ``grammar`` for choices, ``json_schema`` for JSON;
llama-cpp-python: ``json_object`` with a schema; the others: OpenAI's
``response_format``); for a server of unknown kind the first constrained call
tries the forms in order and the one honoured is remembered here.  Everything
found is kept for the process, with how it was found, for ``xcomposer models``.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError, ConfigError
from .http_client import HttpClient, HTTPStatusError, one_line

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
"""Seconds each discovery request may take (a server that is up answers at once)."""
DEFAULT_CONCURRENCY = 4
"""Requests in flight when neither the config nor the server says."""

LLAMA_CPP = "llama.cpp server"
LLAMA_CPP_PYTHON = "llama-cpp-python server"
OLLAMA = "Ollama"
VLLM = "vLLM"
LMDEPLOY = "LMDeploy"
OPENAI = "OpenAI"
UNKNOWN = "OpenAI-compatible server"

DIALECTS_BY_KIND: dict[str, dict[str, str]] = {
    LLAMA_CPP: {"choice": "grammar", "json": "json_schema"},
    LLAMA_CPP_PYTHON: {"choice": "json_object", "json": "json_object"},
    VLLM: {"choice": "json_schema", "json": "json_schema"},
    LMDEPLOY: {"choice": "json_schema", "json": "json_schema"},
    OLLAMA: {"choice": "json_schema", "json": "json_schema"},
    OPENAI: {"choice": "json_schema", "json": "json_schema"},
}
"""Structured-output form per server kind and constraint kind (chat endpoint)."""
THINKING_SWITCH = {LLAMA_CPP, VLLM}
"""Kinds that take ``chat_template_kwargs: {"enable_thinking": false}``."""


@dataclass
class Capabilities:
    """What was found about one server and model, and how."""

    kind: str = UNKNOWN
    kind_evidence: str = "nothing identified the server"
    vision: bool | None = None
    vision_evidence: str = "not known"
    slots: int | None = None
    slots_evidence: str = "the server does not say"
    dialects: dict[str, str] = field(default_factory=dict)
    """Constraint kind (``choice``, ``json``) -> structured-output form."""
    dialect_evidence: str = "tried in order on the first constrained call"
    reached: bool = True
    """False when the server could not be reached (nothing here is then cached)."""
    probed: bool = False
    """Whether the one vision probe has been made."""

    @property
    def thinking_switch(self) -> bool:
        return self.kind in THINKING_SWITCH

    def lines(self) -> list[str]:
        """What ``xcomposer models`` prints: each finding and how it is known."""
        vision = {True: "yes", False: "no", None: "assumed"}[self.vision]
        slots = str(self.slots) if self.slots else "unknown"
        forms = ", ".join(f"{k}: {v}" for k, v in sorted(self.dialects.items())) or "not yet known"
        return [
            f"server: {self.kind} ({self.kind_evidence})",
            f"vision: {vision} ({self.vision_evidence})",
            f"parallel slots: {slots} ({self.slots_evidence})",
            f"structured output: {forms} ({self.dialect_evidence})",
        ]


_found: dict[tuple[str, str], Capabilities] = {}
_locks: dict[tuple[str, ...], threading.Lock] = {}
_guard = threading.Lock()


def forget(base_url: str | None = None) -> None:
    """Drop what was found (for one server, or all): the next use asks again."""
    with _guard:
        for key in [k for k in _found if base_url is None or k[0] == base_url]:
            del _found[key]


def capabilities_for(
    http: HttpClient, model: str, headers: dict[str, str], vision_setting: bool | None
) -> Capabilities:
    """The server's capabilities for ``model``, discovered on first use, then remembered."""
    key = (http.base_url, model)
    with _guard:
        if key in _found:
            return _found[key]
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            if key in _found:
                return _found[key]
        found = discover(http, model, headers, vision_setting)
        if found.reached:
            with _guard:
                _found[key] = found
        return found


def discover(
    http: HttpClient, model: str, headers: dict[str, str], vision_setting: bool | None
) -> Capabilities:
    """Ask the server what it is and what it can do (a few small requests, no retries)."""
    caps = Capabilities()

    def get(path: str, body: Any = None, root: bool = True) -> Any:
        method = "GET" if body is None else "POST"
        return http.request_json(
            method, path, body, headers, timeout=PROBE_TIMEOUT, retries=0, root=root
        )

    try:
        if not _llama_cpp(caps, get) and not _ollama(caps, get, model):
            _listing(caps, get, http.host)
    except BackendError as err:  # not an error status: the server is not there
        caps.reached = False
        caps.kind_evidence = f"not reachable: {err.what}"
    if caps.kind in DIALECTS_BY_KIND:
        caps.dialects = dict(DIALECTS_BY_KIND[caps.kind])
        caps.dialect_evidence = f"the form {caps.kind} takes"
    if vision_setting is not None:
        caps.vision = vision_setting
        caps.vision_evidence = f"config vision = {str(vision_setting).lower()}"
    elif caps.vision is False:
        warn_no_vision(http.base_url, caps)
    return caps


def vision_of(
    caps: Capabilities, http: HttpClient, model: str, headers: dict[str, str]
) -> bool | None:
    """Whether the model takes images; where nothing said, one probe settles it (once)."""
    if caps.vision is None and caps.reached and not caps.probed:
        with _guard:
            lock = _locks.setdefault((http.base_url, model, "vision"), threading.Lock())
        with lock:
            if not caps.probed:
                _probe_vision(caps, http, model, headers)
                caps.probed = True
                if caps.vision is False:
                    warn_no_vision(http.base_url, caps)
    return caps.vision


def warn_no_vision(base_url: str, caps: Capabilities) -> None:
    log.warning(
        "%s (%s) does not take images (%s): images are chosen by retrieval score, "
        "none is sent to it",
        base_url,
        caps.kind,
        caps.vision_evidence,
    )


def _answered(get: Any, *args: Any) -> Any:
    """The JSON answer, or None where the server has no such endpoint (any error status)."""
    try:
        return get(*args)
    except HTTPStatusError:
        return None
    except BackendError as err:
        if "malformed JSON" in err.what or "empty body" in err.what:
            return None
        raise


def _llama_cpp(caps: Capabilities, get: Any) -> bool:
    props = _answered(get, "/props")
    if not isinstance(props, dict) or not (
        "total_slots" in props or "default_generation_settings" in props
    ):
        return False
    caps.kind, caps.kind_evidence = LLAMA_CPP, "GET /props answered"
    slots = props.get("total_slots")
    if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0:
        caps.slots, caps.slots_evidence = slots, "/props total_slots"
    modalities = props.get("modalities")
    if isinstance(modalities, dict) and isinstance(modalities.get("vision"), bool):
        caps.vision = modalities["vision"]
        caps.vision_evidence = f"/props modalities.vision = {str(caps.vision).lower()}"
    return True


def _ollama(caps: Capabilities, get: Any, model: str) -> bool:
    try:
        shown = get("/api/show", {"model": model})
    except HTTPStatusError as err:
        # Ollama answers 404 for a model it has not pulled: its /api/tags says it is Ollama.
        tags = _answered(get, "/api/tags") if err.status == 404 else None
        if isinstance(tags, dict) and isinstance(tags.get("models"), list):
            names = [str(m.get("name")) for m in tags["models"] if isinstance(m, dict)]
            caps.kind = OLLAMA
            caps.kind_evidence = (
                f"GET /api/tags answered; '{model}' is not pulled "
                f"(it has: {', '.join(names[:6]) or 'none'}; run: ollama pull {model})"
            )
            return True
        return False
    except BackendError as err:
        if "malformed JSON" in err.what or "empty body" in err.what:
            return False
        raise
    if not isinstance(shown, dict) or not isinstance(shown.get("capabilities"), list):
        return False
    caps.kind, caps.kind_evidence = OLLAMA, "POST /api/show answered"
    names = [str(c) for c in shown["capabilities"]]
    caps.vision = "vision" in names
    caps.vision_evidence = f"/api/show capabilities: {', '.join(names) or 'none'}"
    caps.slots_evidence = "Ollama does not report OLLAMA_NUM_PARALLEL"
    return True


def _listing(caps: Capabilities, get: Any, host: str) -> None:
    listing = _answered(get, "/models", None, False)
    rows = listing.get("data") if isinstance(listing, dict) else None
    owners = {str(r.get("owned_by", "")).lower() for r in rows or [] if isinstance(r, dict)}
    named = {"vllm": VLLM, "lmdeploy": LMDEPLOY, "me": LLAMA_CPP_PYTHON, "llamacpp": LLAMA_CPP}
    for owner, kind in named.items():
        if owner in owners:
            caps.kind, caps.kind_evidence = kind, f"/v1/models owned_by = {owner}"
            if kind == LLAMA_CPP_PYTHON:
                caps.slots, caps.slots_evidence = 1, "llama-cpp-python's server has one slot"
            return
    if host == "api.openai.com" or host.endswith(".openai.azure.com"):
        caps.kind, caps.kind_evidence = OPENAI, f"host {host}"


def _probe_vision(caps: Capabilities, http: HttpClient, model: str, headers: dict) -> None:
    """One chat call with an 8x8 image and a one-token answer: refused means no vision."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")
    content = [
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "text", "text": "Colour?"},
    ]
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 1}
    try:
        http.request_json(
            "POST", "/chat/completions", body, headers, timeout=min(http.timeout, 60), retries=0
        )
    except HTTPStatusError as err:
        if err.status in (400, 415, 422, 500, 501):
            caps.vision = False
            caps.vision_evidence = f"probe: a test image was refused ({err.status}: {one_line(err.server_message, 80)})"
            return
        caps.vision_evidence = f"probe failed ({err.status}); assumed"
        return
    except (BackendError, ConfigError) as err:
        caps.vision_evidence = f"probe failed ({one_line(str(err), 80)}); assumed"
        return
    caps.vision = True
    caps.vision_evidence = "probe: a test image was accepted"


def concurrency_for(caps: Capabilities, setting: int | None) -> tuple[int, str]:
    """Requests in flight: the config's, else the server's slots, else the default."""
    if setting is not None:
        return setting, "config concurrency"
    if caps.slots:
        return caps.slots, caps.slots_evidence
    return DEFAULT_CONCURRENCY, "default"
