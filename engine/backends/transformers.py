"""PyTorch models through Hugging Face transformers, on a GPU, Apple silicon or the CPU.

Two families:

- Any model that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load (LLaVA,
  Qwen2-VL / 2.5-VL, Idefics3 / SmolVLM, Gemma 3 ...).  A text-only model
  (``AutoModelForCausalLM``) is accepted too, without vision.
- The InternLM-XComposer 2 / 2.5 family (``auto_map``/``architectures`` naming XComposer,
  or ``recipe = "xcomposer2"``), through its own code (``trust_remote_code``).

This module finds and loads the model (device, dtype, 4-bit, attention, hub or folder;
a CUDA out-of-memory becomes a ModelError saying what was needed), and answers requests
one at a time.  The rest lives beside it:

- :mod:`.transformers_files`: the model's folder or hub files, digest, parameter count;
- :mod:`.transformers_calls`: a request turned into each family's inputs, free generation;
- :mod:`.transformers_scoring`: log-probabilities of continuations after the prompt;
- :mod:`.guided`: ``choices`` and ``json_schema`` answered by scoring, never by hoping.

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ModelError
from .base import Backend, GenerateRequest, Generation, Health, TextCallback
from .guided import constrained_answer
from .transformers_calls import Call, HFCall, XComposerCall
from .transformers_files import (
    INSTALL_HINT,
    cached_hub_file,
    cached_snapshot,
    count_parameters,
    folder_digest,
    hub_file,
    hub_offline,
    model_folder,
)

if TYPE_CHECKING:
    from ..config import BackendConfig

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
        return model_folder(self.model_name)

    def _read_config(self, cached_only: bool = False) -> dict:
        if self._config_json is None:
            folder = self.local_dir()
            if folder is not None:
                path: Path | None = folder / "config.json"
            elif cached_only:
                path = cached_hub_file(self.model_name, "config.json")
            else:
                path = hub_file(self.model_name, "config.json")
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
            "files": folder_digest(folder) if folder else None,
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
        if folder is None and cached_hub_file(self.model_name, "config.json") is None:
            if hub_offline():
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
            folder = self.local_dir() or cached_snapshot(self.model_name)
        except ModelError:
            folder = None
        return count_parameters(folder) if folder else (0.0, False)

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
            call: Call
            if self._xcomposer:
                call = self._xcomposer_call(model, request)
            else:
                call = self._hf_call(model, request)
            if request.choices is not None or request.json_schema is not None:
                answer = self._guard("generating", lambda: constrained_answer(call, request))
                if on_text is not None:
                    on_text(answer.text)
            else:
                answer = self._guard("generating", lambda: call.generate(request, on_text))
            answer.seconds = time.perf_counter() - started
            return answer

    def _hf_call(self, model: Any, request: GenerateRequest) -> HFCall:
        return HFCall(model, self._processor, self._tokenizer, request, self.model_name)

    def _xcomposer_call(self, model: Any, request: GenerateRequest) -> XComposerCall:
        return XComposerCall(model, self._tokenizer, request, self.config.hd_num)

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


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _version(text: str) -> tuple[int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", text)[:2]]
    return (numbers + [0, 0])[0], (numbers + [0, 0])[1]


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None
