"""PyTorch models through Hugging Face transformers, on a GPU, Apple silicon or the CPU.

Two families:

- Any model that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load (LLaVA,
  Qwen2-VL / 2.5-VL, Idefics3 / SmolVLM, Gemma 3 ...): chat requests go through the
  processor's own chat template, images as ``{"type": "image"}`` parts; raw prompts put
  the processor's image token where the recipe's placeholder stands.  A text-only model
  (``AutoModelForCausalLM``) is accepted too, without vision.
- The InternLM-XComposer 2 / 2.5 family (``auto_map``/``architectures`` naming XComposer,
  or ``recipe = "xcomposer2"``), through its own code (``trust_remote_code``): requests
  become a query with ``<ImageHere>`` placeholders, a history and a system text, handed
  to the model's ``chat()`` with ``hd_num``.

Constrained answers never come from hoping the model complies:

- ``choices``: every choice is scored by its log-likelihood after the prompt (its tokens,
  then the end of the answer) and the best one is returned exactly.
- ``json_schema``: schema-guided decoding.  The backend writes the JSON's structure itself
  and lets the model decide only what the schema leaves open: enum values, booleans and
  bounded integers by scoring the candidates, array lengths by scoring "close" against
  "one more" (within minItems/maxItems), string contents by generation where each token
  is the likeliest one that keeps the string valid (minLength, maxLength, and ``pattern``
  checked on prefixes with the ``regex`` module), closed at the model's own quote and
  escaped by the backend.  The subset covers the engine's schemas (arrays of strings,
  enums or integers; objects with such fields); anything else (``anyOf``, ``$ref``,
  free-form objects ...) is refused with a ``ModelError``, never guessed.

Scoring reuses the prompt's KV cache where the model allows it (``DynamicCache.crop``),
else it runs the whole sequence again.  torch and transformers are imported inside the
functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, InputError, ModelError
from ..images import open_image
from .base import Backend, GenerateRequest, Generation, Health, ImageRef, TextCallback
from .model_files import looks_like_repo_id

if TYPE_CHECKING:
    from ..config import BackendConfig

INSTALL_HINT = "install the runtime: pip install 'mkdocs-xcomposer[transformers]'"
XC_IMAGE = "<ImageHere>"
XC_START, XC_END = "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5"}
SMALL_FILE_SUFFIXES = {".json", ".jinja", ".py", ".model", ".txt", ".tiktoken"}
DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "float32": 4.0, "bfloat16": 2.0}
DTYPE_BYTES["float16"] = 2.0
OOM_FIX = (
    'set dtype = "bf16" or "fp16", load_in_4bit = true (needs bitsandbytes), '
    'pick a smaller model, or set device = "cpu"'
)


class TransformersBackend(Backend):
    """A transformers model; loads on first use, one call at a time."""

    concurrency = 1

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None  # None for text-only models and XComposer
        self._tokenizer: Any = None
        self._xcomposer = False
        self._vision: bool | None = None
        self._config_json: dict | None = None

    # -- where the model is ---------------------------------------------------
    @property
    def model_name(self) -> str:
        if not self.config.model:
            raise ModelError(
                "the transformers backend needs a model",
                "set model = a local model folder or a Hugging Face repo id",
            )
        return self.config.model

    def local_dir(self) -> Path | None:
        """The model folder, or None for a hub repo id; a missing path raises ModelError."""
        name = self.model_name
        path = Path(name).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelError(
                    f"model folder {path} has no config.json",
                    "give the folder save_pretrained wrote (config.json and the weights)",
                )
            return path.resolve()
        if path.exists():
            raise ModelError(
                f"model {path} is a file, not a model folder",
                'give the folder with config.json, or use backend = "llamacpp" for a GGUF',
            )
        if looks_like_repo_id(name):
            return None
        raise ModelError(f"model folder {name} not found", "check the path given as model")

    def _hub_file(self, filename: str, required: bool = True) -> Path | None:
        """A file of the hub repo: downloaded (online) or from the cache (offline)."""
        repo = self.model_name
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise ModelError(
                f"model {repo} is a Hugging Face repo id but huggingface_hub is not installed",
                f"{INSTALL_HINT}, or give a local folder",
            ) from None
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        try:
            return Path(hf_hub_download(repo, filename, local_files_only=offline))
        except Exception:  # noqa: BLE001 - offline, unreachable, unknown repo: try the cache
            with contextlib.suppress(Exception):
                return Path(hf_hub_download(repo, filename, local_files_only=True))
        if not required:
            return None
        raise ModelError(
            f"model {repo} is not in the local Hugging Face cache and could not be downloaded",
            f"download it while online (huggingface-cli download {repo}) or give a local folder",
        )

    def _read_config(self, cached_only: bool = False) -> dict:
        if self._config_json is None:
            folder = self.local_dir()
            if folder is not None:
                path: Path | None = folder / "config.json"
            elif cached_only:
                path = _cached_hub_file(self.model_name, "config.json")
            else:
                path = self._hub_file("config.json")
            if path is None:
                return {}
            try:
                self._config_json = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ModelError(
                    f"model config {path} cannot be read ({err})", "re-download the model"
                ) from None
        return self._config_json

    def is_xcomposer(self, cfg: dict | None = None) -> bool:
        """Whether the model is of the InternLM-XComposer 2 / 2.5 family."""
        if self.config.recipe == "xcomposer2":
            return True
        cfg = self._read_config(cached_only=True) if cfg is None else cfg
        names = [str(cfg.get("model_type", ""))]
        names += [str(a) for a in cfg.get("architectures") or []]
        names += [str(v) for v in (cfg.get("auto_map") or {}).values()]
        return any("xcomposer" in n.lower() for n in names)

    @property
    def has_vision(self) -> bool:
        if self._vision is not None:
            return self._vision
        try:
            cfg = self._read_config(cached_only=True)
        except ModelError:
            return True
        if not cfg:
            return True
        keys = ("vision_config", "vision_tower", "mm_vision_tower", "visual", "vit_config")
        return self.is_xcomposer(cfg) or any(k in cfg for k in keys)

    # -- identity and health ----------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        cfg = self.config
        folder = self.local_dir()
        return {
            "backend": "transformers",
            "model": str(folder) if folder else self.model_name,
            "files": _folder_digest(folder) if folder else None,
            "recipe": cfg.recipe,
            "dtype": cfg.dtype,
            "load_in_4bit": cfg.load_in_4bit,
            "hd_num": cfg.hd_num,
        }

    def health(self) -> Health:
        cfg = self.config
        name = cfg.model or "(none)"

        def bad(detail: str) -> Health:
            return Health(False, "transformers", name, detail)

        try:
            folder = self.local_dir()
        except ModelError as err:
            return bad(str(err))
        import importlib.util

        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            return bad(f"{' and '.join(missing)} not installed; {INSTALL_HINT}")
        if cfg.load_in_4bit and importlib.util.find_spec("bitsandbytes") is None:
            return bad("load_in_4bit needs bitsandbytes, which is not installed")
        if folder is None and _cached_hub_file(self.model_name, "config.json") is None:
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
                return bad(f"{self.model_name} is not in the Hugging Face cache (offline)")
            where = "not cached yet: downloaded from the Hugging Face hub on first use"
        else:
            where = str(folder) if folder else f"{self.model_name} (Hugging Face cache)"
        try:
            xcomposer = self.is_xcomposer()
        except ModelError as err:
            return bad(str(err))
        if xcomposer and not cfg.trust_remote_code:
            return bad("InternLM-XComposer runs its own code: set trust_remote_code = true")
        device = cfg.device
        if device.startswith("cuda") or device == "mps":
            import torch

            if device.startswith("cuda") and not torch.cuda.is_available():
                return bad(f"device {device} asked for, but torch {torch.__version__} sees no GPU")
            if device == "mps" and not torch.backends.mps.is_available():
                return bad("device mps asked for, but MPS is not available")
        family = "InternLM-XComposer (remote code)" if xcomposer else "image-text-to-text"
        detail = f"{where}; {family}, device {device}, dtype {cfg.dtype}"
        if cfg.load_in_4bit:
            detail += ", 4-bit"
        return Health(True, "transformers", name, detail, vision=self.has_vision)

    # -- loading ------------------------------------------------------------
    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            raise ModelError("torch and transformers are not installed", INSTALL_HINT) from None
        folder = self.local_dir()
        source = str(folder) if folder else self.model_name
        cfg = self._read_config()
        self._xcomposer = self.is_xcomposer(cfg)
        if self._xcomposer and not self.config.trust_remote_code:
            raise ModelError(
                f"model {self.model_name} is an InternLM-XComposer model, which runs its own code",
                "set trust_remote_code = true in the backend config if you trust its source",
            )
        kwargs = self._load_kwargs(cfg)
        self._guard("loading", lambda: self._from_pretrained(source, kwargs))
        return self._model

    def _load_kwargs(self, cfg: dict) -> dict[str, Any]:
        import torch
        import transformers

        conf = self.config
        kwargs: dict[str, Any] = {"trust_remote_code": conf.trust_remote_code}
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
        dtype_key = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
        kwargs[dtype_key] = dtype.get(conf.dtype, "auto")
        device = conf.device
        if device == "auto":
            if _missing("accelerate"):
                raise ModelError(
                    'device = "auto" needs accelerate, which is not installed',
                    f'{INSTALL_HINT}, or set device = "cuda" or "cpu"',
                )
            kwargs["device_map"] = "auto"
        else:
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise ModelError(
                    f"device {device} asked for, but torch {torch.__version__} sees no CUDA GPU",
                    'set device = "cpu" or "auto", or install a CUDA build of torch',
                )
            if device == "mps" and not torch.backends.mps.is_available():
                raise ModelError(
                    "device mps asked for, but MPS is not available", 'set device = "cpu"'
                )
            if device != "cpu" or conf.load_in_4bit:
                kwargs["device_map"] = {"": device}
        if conf.attn_implementation:
            kwargs["attn_implementation"] = conf.attn_implementation
        if conf.load_in_4bit:
            if _missing("bitsandbytes"):
                raise ModelError(
                    "load_in_4bit needs bitsandbytes, which is not installed",
                    "pip install bitsandbytes (CUDA GPUs), or set load_in_4bit = false",
                )
            compute = dtype.get(conf.dtype, torch.bfloat16)
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=compute, bnb_4bit_quant_type="nf4"
            )
        return kwargs

    def _from_pretrained(self, source: str, kwargs: dict[str, Any]) -> None:
        import transformers as tf

        name = self.model_name
        try:
            if self._xcomposer:
                try:
                    model = tf.AutoModel.from_pretrained(source, **kwargs)
                except ValueError:
                    model = tf.AutoModelForCausalLM.from_pretrained(source, **kwargs)
                tokenizer = tf.AutoTokenizer.from_pretrained(source, trust_remote_code=True)
                model.tokenizer = tokenizer  # XComposer 2.5's own code reads it from the model
                processor, vision = None, True
            else:
                try:
                    model = tf.AutoModelForImageTextToText.from_pretrained(source, **kwargs)
                    processor = tf.AutoProcessor.from_pretrained(
                        source, trust_remote_code=self.config.trust_remote_code
                    )
                    tokenizer, vision = getattr(processor, "tokenizer", processor), True
                except ValueError as err:
                    if "trust_remote_code" in str(err) or "Unrecognized" not in str(err):
                        raise
                    model = tf.AutoModelForCausalLM.from_pretrained(source, **kwargs)
                    tokenizer = tf.AutoTokenizer.from_pretrained(
                        source, trust_remote_code=self.config.trust_remote_code
                    )
                    processor, vision = None, False
        except ModelError:
            raise
        except ValueError as err:
            if "trust_remote_code" in str(err):
                raise ModelError(
                    f"model {name} needs its own code to run",
                    "set trust_remote_code = true in the backend config if you trust its source",
                ) from None
            raise ModelError(
                f"model {name} cannot be loaded by transformers ({_first_line(err)})",
                "use an image-text-to-text model (LLaVA, Qwen2-VL, SmolVLM, Gemma 3 ...)",
            ) from None
        except OSError as err:
            raise ModelError(
                f"model {name} could not be loaded ({_first_line(err)})",
                "check the folder, or download the repo while online (huggingface-cli download)",
            ) from None
        model.eval()
        self._model, self._processor, self._tokenizer, self._vision = (
            model,
            processor,
            tokenizer,
            vision,
        )

    # -- errors -------------------------------------------------------------
    def _guard(self, doing: str, work: Callable[[], Any]) -> Any:
        """Run ``work``; a CUDA out-of-memory becomes a ModelError saying what was needed."""
        import torch

        try:
            return work()
        except torch.cuda.OutOfMemoryError:
            raise self._oom_error(doing) from None
        except RuntimeError as err:
            if "out of memory" in str(err).lower():
                raise self._oom_error(doing) from None
            raise

    def _oom_error(self, doing: str) -> ModelError:
        import torch

        params, exact = self._parameter_count()
        dtype = "4-bit" if self.config.load_in_4bit else self.config.dtype
        if dtype == "auto":
            saved = self._read_config(cached_only=True)
            dtype = str(saved.get("dtype") or saved.get("torch_dtype") or "fp32")
        per_param = 0.55 if self.config.load_in_4bit else DTYPE_BYTES.get(dtype, 4.0)
        need = params * per_param / 2**30
        gpu = ""
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()
            free, total = torch.cuda.mem_get_info()
            gpu = f" (the GPU has {total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free now)"
        about = "" if exact else "about "
        return ModelError(
            f"model {self.model_name} ran out of GPU memory while {doing}: its {about}"
            f"{params / 1e9:.2f}B parameters need about {need:.1f} GiB in {dtype} for the "
            f"weights alone, plus room for activations{gpu}",
            OOM_FIX,
        )

    def _parameter_count(self) -> tuple[float, bool]:
        if self._model is not None:
            return float(sum(p.numel() for p in self._model.parameters())), True
        try:
            folder = self.local_dir() or _cached_snapshot(self.model_name)
        except ModelError:
            folder = None
        return _count_parameters(folder) if folder else (0.0, False)

    # -- generation ---------------------------------------------------------
    def generate(self, request: GenerateRequest, on_text: TextCallback | None = None) -> Generation:
        if request.prompt is None and not request.messages:
            raise InputError("empty request: neither messages nor a prompt", "report this bug")
        with self._lock:
            model = self._load()
            if request.all_images and not self._vision:
                raise ModelError(
                    f"model {self.model_name} is a text-only model and cannot look at images",
                    "use a vision-language model for this role",
                )
            import torch

            torch.manual_seed(request.seed)
            started = time.perf_counter()
            if self._xcomposer:
                call = self._xcomposer_call(model, request)
            else:
                call = self._hf_call(model, request)
            if request.choices is not None or request.json_schema is not None:
                answer = self._guard("generating", lambda: self._constrained(call, request))
                if on_text is not None:
                    on_text(answer.text)
            else:
                answer = self._guard("generating", lambda: call.generate(request, on_text))
            answer.seconds = time.perf_counter() - started
            return answer

    def _constrained(self, call: _Call, request: GenerateRequest) -> Generation:
        ctx = call.context()
        if ctx is None:  # a remote-code model without a scoring entry point
            return _match_choice(call.generate(request, None), request)
        if request.choices is not None:
            text = _best_choice(ctx, list(request.choices))
        else:
            text = _JsonWriter(ctx, request).write(request.json_schema or {})
        return Generation(
            text=text,
            prompt_tokens=ctx.prompt_length,
            evaluated_prompt_tokens=ctx.prompt_length,
            completion_tokens=len(ctx.encode(text)),
        )

    def _hf_call(self, model: Any, request: GenerateRequest) -> _HFCall:
        return _HFCall(self, model, request)

    def _xcomposer_call(self, model: Any, request: GenerateRequest) -> _XComposerCall:
        return _XComposerCall(self, model, request)

    def close(self) -> None:
        with self._lock:
            if self._model is None:
                return
            self._model = self._processor = self._tokenizer = None
            import gc

            gc.collect()
            with contextlib.suppress(Exception):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()


# --------------------------------------------------------------------------- calls


class _Call:
    """One request prepared for one model family: free generation and a scoring context."""

    def generate(self, request: GenerateRequest, on_text: TextCallback | None) -> Generation:
        raise NotImplementedError

    def context(self) -> _Context | None:
        raise NotImplementedError


class _HFCall(_Call):
    """Processor (or tokenizer) inputs for AutoModelForImageTextToText / CausalLM models."""

    def __init__(self, backend: TransformersBackend, model: Any, request: GenerateRequest):
        self.model, self.tokenizer = model, backend._tokenizer
        processor = backend._processor
        images: list[Any] = []
        if request.messages:
            owner = processor if _has_template(processor) else self.tokenizer
            if not _has_template(owner):
                raise ModelError(
                    f"model {backend.model_name} has no chat template",
                    'use recipe = "completion" for base models',
                )
            messages = []
            for message in request.messages:
                if processor is None:
                    content: Any = "".join(p for p in message.content if isinstance(p, str))
                else:
                    content = []
                    for part in message.content:
                        if isinstance(part, ImageRef):
                            content.append({"type": "image"})
                            images.append(_rgb(part))
                        else:
                            content.append({"type": "text", "text": part})
                messages.append({"role": message.role, "content": content})
            text = owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            bos = getattr(self.tokenizer, "bos_token", None)
            special = not (bos and text.startswith(bos))
        else:
            text = request.prompt or ""
            if request.images:
                token = getattr(processor, "image_token", None)
                if not token:
                    raise ModelError(
                        f"model {backend.model_name}'s processor names no image token",
                        'use recipe = "chat" for this model',
                    )
                _check_placeholders(text, request.image_placeholder, len(request.images))
                text = text.replace(request.image_placeholder, token)
                images = [_rgb(i) for i in request.images]
            special = True
        if processor is not None:
            inputs = processor(
                text=[text], images=images or None, return_tensors="pt", add_special_tokens=special
            )
        else:
            inputs = self.tokenizer([text], return_tensors="pt", add_special_tokens=special)
        self.inputs = _to_device(dict(inputs), model)
        self.text = text

    def generate(self, request: GenerateRequest, on_text: TextCallback | None) -> Generation:
        sample = request.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": request.max_tokens, "do_sample": sample}
        if sample:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)
        else:  # greedy: clear the sampling defaults a generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.repeat_penalty != 1.0:
            kwargs["repetition_penalty"] = request.repeat_penalty
        prompt_length = self.inputs["input_ids"].shape[1]
        if request.stop:
            kwargs["stopping_criteria"] = _stop_on_text(self.tokenizer, request.stop, prompt_length)
        eos = _eos_ids(self.model, self.tokenizer)
        pad = getattr(self.model.generation_config, "pad_token_id", None)
        if pad is None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id or (eos[0] if eos else None)

        def run(streamer: Any) -> Any:
            return self.model.generate(**self.inputs, **kwargs, streamer=streamer)

        output = _stream(run, self.tokenizer, on_text)
        new = output[0, prompt_length:].tolist()
        while new and new[-1] == kwargs.get("pad_token_id", pad):
            new.pop()
        ended = bool(new) and new[-1] in eos
        text = _cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), request.stop)
        return Generation(
            text=text,
            prompt_tokens=prompt_length,
            evaluated_prompt_tokens=prompt_length,
            completion_tokens=len(new),
            truncated=len(new) >= request.max_tokens and not ended,
        )

    def context(self) -> _Context:
        return _CacheContext(self.model, self.tokenizer, self.inputs, self.text)


class _XComposerCall(_Call):
    """A request turned into InternLM-XComposer's ``chat()`` arguments."""

    def __init__(self, backend: TransformersBackend, model: Any, request: GenerateRequest):
        self.model, self.tokenizer, self.hd_num = model, backend._tokenizer, backend.config.hd_num
        self.query, self.history, self.system, refs = _xcomposer_turns(request)
        for ref in refs:
            open_image(ref.path)  # refuse bad images before the model's own code opens them
        self.paths = [str(ref.path) for ref in refs]
        self.params = inspect.signature(model.chat).parameters
        self.v25 = "hd_num" in self.params
        if not self.v25 and len(self.paths) > 1:
            raise InputError(
                "InternLM-XComposer2 takes one image per prompt",
                "use InternLM-XComposer 2.5 for several images",
            )

    def _chat_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"history": self.history}
        if self.v25:
            kwargs.update(image=self.paths, hd_num=self.hd_num)
        else:
            kwargs["image"] = self.paths[0] if self.paths else None
        if self.system:
            kwargs["meta_instruction"] = self.system
            if "use_meta" in self.params:
                kwargs["use_meta"] = True
        return kwargs

    def generate(self, request: GenerateRequest, on_text: TextCallback | None) -> Generation:
        sample = request.temperature > 0
        kwargs = self._chat_kwargs()
        kwargs.update(
            max_new_tokens=request.max_tokens,
            do_sample=sample,
            repetition_penalty=request.repeat_penalty,
        )
        if sample:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)

        def run(streamer: Any) -> Any:
            return self.model.chat(self.tokenizer, self.query, streamer=streamer, **kwargs)

        response, _ = _stream(run, self.tokenizer, on_text)
        tokens = len(self.tokenizer(response, add_special_tokens=False).input_ids)
        prompt_tokens = len(self.tokenizer(self.query, add_special_tokens=False).input_ids)
        return Generation(
            text=_cut_at_stop(response, request.stop),
            prompt_tokens=prompt_tokens,  # text tokens of the query; image tokens not counted
            evaluated_prompt_tokens=prompt_tokens,
            completion_tokens=tokens,
            truncated=tokens >= request.max_tokens,
        )

    def context(self) -> _Context | None:
        wrap = getattr(self.model, "interleav_wrap_chat", None)
        if wrap is None or next(iter(inspect.signature(wrap).parameters), "") != "query":
            return None  # XComposer2's variant takes pre-encoded images: match instead
        import torch

        with torch.no_grad():
            inputs, im_mask, _ = wrap(
                self.query,
                self.paths,
                history=self.history,
                meta_instruction=self.system,
                hd_num=self.hd_num,
            )
        return _EmbedsContext(self.model, self.tokenizer, inputs["inputs_embeds"], im_mask)


def _xcomposer_turns(request: GenerateRequest) -> tuple[str, list, str, list[ImageRef]]:
    """(query, history pairs, system text, images in order) for XComposer's ``chat()``."""
    turns: list[tuple[str, str]] = []
    refs: list[ImageRef] = []
    if request.messages:
        for message in request.messages:
            text = ""
            for part in message.content:
                if isinstance(part, ImageRef):
                    text += XC_IMAGE
                    refs.append(part)
                else:
                    text += part
            turns.append((message.role, text))
    else:
        prompt = request.prompt or ""
        _check_placeholders(prompt, request.image_placeholder, len(request.images))
        prompt = prompt.replace(request.image_placeholder, XC_IMAGE)
        refs = list(request.images)
        if XC_START not in prompt:
            turns = [("user", prompt)]
        for segment in prompt.split(XC_START)[1:]:
            role, _, body = segment.partition("\n")
            turns.append((role.strip(), body.split(XC_END)[0]))
        if turns and turns[-1][0] == "assistant":
            if turns[-1][1].strip():
                raise InputError(
                    "InternLM-XComposer's chat() cannot continue a started answer",
                    "end the prompt with the assistant marker",
                )
            turns.pop()
    system = "\n".join(t for r, t in turns if r == "system")
    rest = [(r, t) for r, t in turns if r != "system"]
    if not rest or rest[-1][0] != "user":
        raise InputError("the request does not end with a user turn", "report this bug")
    history, pending = [], None
    for role, text in rest[:-1]:
        if role == "user":
            pending = text
        elif pending is not None:
            history.append((pending, text))
            pending = None
    return rest[-1][1], history, system, refs


# ------------------------------------------------------------------------ scoring


class _Context:
    """Log-probabilities of continuations after a fixed prompt."""

    prompt_length = 0

    def __init__(self, model: Any, tokenizer: Any, tail: str) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.tail = tail[-200:]
        self._tail_ids = self._tokens(self.tail)
        self._memo: dict[str, list[int]] = {}
        self.eos_ids = _eos_ids(model, tokenizer)

    def _tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode(self, text: str) -> list[int]:
        """The tokens ``text`` becomes right after the prompt (tokenised in context)."""
        if text not in self._memo:
            whole = self._tokens(self.tail + text)
            n = len(self._tail_ids)
            if whole[:n] == self._tail_ids:
                self._memo[text] = whole[n:]
            else:
                self._memo[text] = self._tokens(text)
        return self._memo[text]

    def logprobs(self, ids: list[int]) -> Any:
        """Row ``i``: log-probabilities of the token after the prompt plus ``ids[:i]``."""
        raise NotImplementedError


class _CacheContext(_Context):
    """transformers models: the prompt runs once; continuations reuse its KV cache."""

    def __init__(self, model: Any, tokenizer: Any, inputs: dict, text: str) -> None:
        import torch

        super().__init__(model, tokenizer, text)
        self.inputs = inputs
        self.prompt_length = int(inputs["input_ids"].shape[1])
        text_cfg = (
            model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
        )
        layer_types = getattr(text_cfg, "layer_types", None) or []
        sliding = getattr(text_cfg, "sliding_window", None) and (
            not layer_types or "sliding_attention" in layer_types
        )
        with torch.no_grad():
            out = model(**inputs, use_cache=not sliding)
        self.last = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        self.cache = cache if hasattr(cache, "crop") and not sliding else None
        # transformers 5.2x renamed forward's ``past_key_values`` to ``cache``.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def logprobs(self, ids: list[int]) -> Any:
        import torch

        if not ids:
            return self.last[None]
        device = self.inputs["input_ids"].device
        new = torch.tensor([ids], device=device)
        with torch.no_grad():
            if self.cache is not None:
                try:
                    mask = torch.ones((1, self.prompt_length + len(ids)), device=device)
                    mask = mask.to(self.inputs.get("attention_mask", mask).dtype)
                    cached = {self.cache_arg: self.cache}
                    out = self.model(input_ids=new, attention_mask=mask, use_cache=True, **cached)
                    self.cache.crop(-len(ids))  # drop them again: negative works in 4.x and 5.x
                    rows = torch.log_softmax(out.logits[0].float(), dim=-1)
                    return torch.cat([self.last[None], rows])
                except (TypeError, ValueError, RuntimeError, AttributeError, IndexError):
                    self.cache = None  # this model cannot continue from a cropped cache
            inputs = dict(self.inputs)
            for key, value in self.inputs.items():
                if hasattr(value, "shape") and tuple(value.shape[:2]) == (1, self.prompt_length):
                    fill = new if key == "input_ids" else torch.zeros_like(new)
                    if key == "attention_mask":
                        fill = torch.ones_like(new)
                    inputs[key] = torch.cat([value, fill.to(value.dtype)], dim=1)
            out = self.model(**inputs, use_cache=False)
            rows = out.logits[0, self.prompt_length - 1 :].float()
            return torch.log_softmax(rows, dim=-1)


class _EmbedsContext(_Context):
    """InternLM-XComposer: its prompt embeddings (text and images) plus token embeddings."""

    def __init__(self, model: Any, tokenizer: Any, embeds: Any, im_mask: Any) -> None:
        super().__init__(model, tokenizer, f"{XC_START}assistant\n")
        self.embeds, self.im_mask = embeds, im_mask
        self.prompt_length = int(embeds.shape[1])
        end = tokenizer.convert_tokens_to_ids(XC_END)
        if isinstance(end, int) and end != tokenizer.unk_token_id and end not in self.eos_ids:
            self.eos_ids.append(end)

    def logprobs(self, ids: list[int]) -> Any:
        import torch

        embeds, mask = self.embeds, self.im_mask
        if ids:
            new = torch.tensor([ids], device=embeds.device)
            step = self.model.get_input_embeddings()(new).to(embeds.dtype)
            embeds = torch.cat([embeds, step], dim=1)
            pad = torch.zeros((1, len(ids)), dtype=mask.dtype, device=mask.device)
            mask = torch.cat([mask, pad], dim=1)
        with torch.no_grad():
            out = self.model(inputs_embeds=embeds, im_mask=mask, use_cache=False)
        rows = out.logits[0, self.prompt_length - 1 :].float()
        return torch.log_softmax(rows, dim=-1)


def _score(ctx: _Context, base: list[int], full: list[int], end: bool) -> float:
    """log P(full[k:] | prompt + full[:k]), k = the prefix ``full`` shares with ``base``."""
    k = 0
    while k < min(len(base), len(full)) and base[k] == full[k]:
        k += 1
    rows = ctx.logprobs(full)
    total = float(sum(rows[i, full[i]] for i in range(k, len(full))))
    if end and ctx.eos_ids:
        total += float(rows[len(full), ctx.eos_ids].logsumexp(-1))
    return total


def _best_choice(ctx: _Context, choices: list[str]) -> str:
    """The choice the model finds most likely as the whole answer (ties: the first)."""
    if not choices:
        raise InputError("choices is empty", "give at least one choice")
    scores = [_score(ctx, [], ctx.encode(c), end=True) for c in choices]
    return choices[max(range(len(choices)), key=lambda i: scores[i])]


def _match_choice(answer: Generation, request: GenerateRequest) -> Generation:
    from .structured import check_answer

    text, why = check_answer(answer.text, request)
    if text is None:
        raise BackendError(
            f"the model's answer does not satisfy the constraint: {why}",
            "use InternLM-XComposer 2.5 (its scoring interface), or another model",
        )
    answer.text = text
    return answer


class _JsonWriter:
    """Schema-guided JSON: the structure is written here, the model fills what is open."""

    MAX_ITEMS = 32
    INT_SPAN = 100
    SEARCH = 2048  # likeliest tokens tried, per step, for one that keeps a string valid

    def __init__(self, ctx: _Context, request: GenerateRequest) -> None:
        self.ctx, self.request = ctx, request
        self.text = ""
        self.budget = request.max_tokens

    def write(self, schema: dict) -> str:
        from .structured import schema_error

        self.value(schema, "$")
        error = schema_error(json.loads(self.text), schema)
        if error:  # the writer follows the schema; a mismatch is a bug here
            raise BackendError(f"guided JSON broke its schema ({error})", "report this bug")
        return self.text

    def pick(self, options: list[str]) -> str:
        base = self.ctx.encode(self.text)
        scores = [
            _score(self.ctx, base, self.ctx.encode(self.text + o), end=False) for o in options
        ]
        best = options[max(range(len(options)), key=lambda i: scores[i])]
        self.text += best
        return best

    def value(self, schema: dict, where: str) -> None:
        refused = ("anyOf", "oneOf", "allOf", "$ref", "not")
        refused += () if schema.get("type") == "string" else ("pattern",)
        unsupported = [k for k in refused if k in schema]
        if unsupported:
            raise ModelError(
                f"json_schema at {where} uses {unsupported[0]}, which the transformers "
                "backend's guided decoding does not support",
                "simplify the schema (types, enum, const, properties, items, lengths, bounds)",
            )
        kind = schema.get("type")
        if "const" in schema:
            self.text += json.dumps(schema["const"], ensure_ascii=False)
        elif "enum" in schema:
            self.pick([json.dumps(v, ensure_ascii=False) for v in schema["enum"]])
        elif kind == "string":
            self.string(schema)
        elif kind in ("integer", "number"):
            low = int(math.ceil(schema.get("minimum", 0)))
            high = int(math.floor(schema.get("maximum", low + self.INT_SPAN)))
            if high < low:
                raise ModelError(f"json_schema at {where} allows no integer", "fix its bounds")
            self.pick([str(i) for i in range(low, min(high, low + 4 * self.INT_SPAN) + 1)])
        elif kind == "boolean":
            self.pick(["true", "false"])
        elif kind == "null":
            self.text += "null"
        elif kind == "array":
            self.array(schema, where)
        elif kind == "object" and schema.get("properties"):
            self.text += "{"
            for i, (key, sub) in enumerate(schema["properties"].items()):
                self.text += (", " if i else "") + json.dumps(key, ensure_ascii=False) + ": "
                self.value(sub, f"{where}.{key}")
            self.text += "}"
        else:
            raise ModelError(
                f"json_schema at {where} has type {kind!r}, which guided decoding cannot write",
                "give a type (string, integer, boolean, array, or object with properties)",
            )

    def array(self, schema: dict, where: str) -> None:
        items = schema.get("items", {})
        low = int(schema.get("minItems", 0))
        high = min(int(schema.get("maxItems", self.MAX_ITEMS)), self.MAX_ITEMS)
        enum = items.get("enum") if isinstance(items, dict) else None
        unique = bool(schema.get("uniqueItems"))
        self.text += "["
        count, used = 0, []
        while count < high:
            sep = ", " if count else ""
            if enum is not None:
                left = [v for v in enum if not (unique and v in used)]
                options = [sep + json.dumps(v, ensure_ascii=False) for v in left]
                if not options:
                    break
                if count >= low:
                    options.append("]")
                chosen = self.pick(options)
                if chosen == "]":
                    return
                used.append(json.loads(chosen[len(sep) :]))
            else:
                if count >= low:
                    opener = sep + _opener(items)
                    if self.budget <= 0:  # out of tokens: close the array here
                        self.text += "]"
                        return
                    if self.pick(["]", opener]) == "]":
                        return
                    self.text = self.text[: -len(opener)] + sep
                else:
                    self.text += sep
                self.value(items, f"{where}[{count}]")
            count += 1
        self.text += "]"

    def string(self, schema: dict) -> None:
        """Generate a string's content; every token keeps it within the schema's rules."""
        import torch

        rules = _StringRules(schema)
        tokenizer, eos = self.ctx.tokenizer, set(self.ctx.eos_ids)
        skip = set(tokenizer.all_special_ids) - eos
        before = self.text
        start = self.ctx.encode(before + '"')
        ids, value = list(start), ""
        generator = torch.Generator().manual_seed(self.request.seed)
        for _ in range(max(min(rules.max_len + 4, self.budget), 8)):
            row = self.ctx.logprobs(ids)[-1]
            order = torch.argsort(row, descending=True)[: self.SEARCH].tolist()
            if self.request.temperature > 0:
                probs = torch.softmax(row.cpu() / self.request.temperature, dim=-1)
                order.insert(0, int(torch.multinomial(probs, 1, generator=generator)))
            done, picked = False, None
            for token in order:
                if token in skip:
                    continue
                if token in eos:
                    if rules.complete(value):
                        done = True
                        break
                    continue
                piece = tokenizer.decode(ids[len(start) :] + [token], skip_special_tokens=True)
                cut = min((i for i in (piece.find('"'), piece.find("\n")) if i >= 0), default=-1)
                if cut >= 0:  # the model closes the string here
                    if rules.complete(piece[:cut]):
                        value, done = piece[:cut], True
                        break
                elif rules.prefix(piece):
                    picked = (token, piece)
                    break
            if done:
                break
            if picked is None:
                raise BackendError(
                    f"none of the model's {len(order)} likeliest tokens continues the string "
                    f"{value!r} within the schema ({rules})",
                    "loosen the schema or use another model",
                )
            ids.append(picked[0])
            value = picked[1]
        else:
            if not rules.complete(value):
                raise BackendError(
                    f"the string {value!r} ran out of tokens before meeting the schema ({rules})",
                    "raise max_tokens or loosen the schema",
                )
        self.budget -= len(ids) - len(start)
        if value.strip() != value and rules.complete(value.strip()):
            value = value.strip()
        self.text = before + json.dumps(value, ensure_ascii=False)


class _StringRules:
    """minLength, maxLength and pattern (JSON Schema: a regex search), checked on prefixes too."""

    def __init__(self, schema: dict) -> None:
        self.min_len = int(schema.get("minLength", 0))
        self.max_len = int(schema.get("maxLength", 200))
        self.pattern = schema.get("pattern")
        self.regex: Any = None
        if self.pattern:
            import regex  # a dependency of transformers; ``re`` cannot match prefixes

            try:
                self.regex = regex.compile(self.pattern)
            except regex.error as err:
                raise ModelError(
                    f"json_schema pattern {self.pattern!r} is not a valid regular expression ({err})",
                    "fix the pattern",
                ) from None

    def prefix(self, text: str) -> bool:
        """Whether ``text`` can still grow into a valid string."""
        if len(text) > self.max_len:
            return False
        return self.regex is None or self.regex.search(text, partial=True) is not None

    def complete(self, text: str) -> bool:
        if not self.min_len <= len(text) <= self.max_len:
            return False
        return self.regex is None or self.regex.search(text) is not None

    def __str__(self) -> str:
        shown = f"pattern {self.pattern!r}, " if self.pattern else ""
        return f"{shown}length {self.min_len} to {self.max_len}"


def _opener(schema: Any) -> str:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"string": '"', "array": "[", "object": "{", "boolean": "t", "null": "n"}.get(
        str(kind), "1"
    )


# ------------------------------------------------------------------------ helpers


def _stream(run: Callable[[Any], Any], tokenizer: Any, on_text: TextCallback | None) -> Any:
    """Run ``run(streamer)``; with ``on_text``, in a thread whose text pieces are passed on."""
    if on_text is None:
        return run(None)
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = run(streamer)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = err
        finally:
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    for piece in streamer:
        if piece:
            on_text(piece)
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _stop_on_text(tokenizer: Any, stops: tuple[str, ...], prompt_length: int) -> Any:
    """Stop when the decoded answer contains a stop string (works with any tokenizer)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    window = 8 + 4 * max(len(s) for s in stops)

    class StopOnText(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            start = max(prompt_length, input_ids.shape[1] - window)
            done = [
                any(
                    s and s in tokenizer.decode(row[start:], skip_special_tokens=True)
                    for s in stops
                )
                for row in input_ids
            ]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnText()])


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = getattr(tokenizer, "eos_token_id", None)
    ids = eos if isinstance(eos, list) else [eos]
    return [int(i) for i in ids if i is not None]


def _has_template(owner: Any) -> bool:
    return owner is not None and bool(getattr(owner, "chat_template", None))


def _rgb(ref: ImageRef) -> Any:
    return open_image(ref.path).convert("RGB")


def _check_placeholders(prompt: str, placeholder: str, count: int) -> None:
    found = prompt.count(placeholder) if placeholder else 0
    if count and found != count:
        raise InputError(
            f"the prompt has {found} image placeholders '{placeholder}' for {count} images",
            "put one placeholder per image in the prompt",
        )


def _to_device(inputs: dict, model: Any) -> dict:
    import torch

    device = getattr(model, "device", None) or torch.device("cpu")
    dtype = getattr(model, "dtype", None)
    moved = {}
    for key, value in inputs.items():
        if hasattr(value, "to"):
            value = value.to(device)
            if dtype is not None and torch.is_floating_point(value):
                value = value.to(dtype)
        moved[key] = value
    return moved


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    cuts = [text.find(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _version(text: str) -> tuple[int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", text)[:2]]
    return (numbers + [0, 0])[0], (numbers + [0, 0])[1]


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _cached_hub_file(repo: str, filename: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def _cached_snapshot(repo: str) -> Path | None:
    found = _cached_hub_file(repo, "config.json")
    return found.parent if found else None


def _folder_digest(folder: Path) -> str:
    """config files by content, weights by name, size and mtime: cheap, and changes with them."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        stat = path.stat()
        if path.suffix in WEIGHT_SUFFIXES:
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        elif path.suffix in SMALL_FILE_SUFFIXES and stat.st_size < 10_000_000:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\n")
    return digest.hexdigest()[:16]


def _count_parameters(folder: Path) -> tuple[float, bool]:
    """Parameters from safetensors headers (exact), else from weight file sizes (about)."""
    total, exact = 0.0, True
    files = sorted(folder.glob("*.safetensors"))
    for path in files:
        try:
            with open(path, "rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(size))
        except (OSError, ValueError):
            return 0.0, False
        for name, info in header.items():
            if name != "__metadata__":
                total += math.prod(info.get("shape") or [1])
    if not files:
        exact = False
        total = sum(p.stat().st_size for p in folder.glob("*.bin")) / 2.0
    return total, exact
