"""GPU check: the transformers backend on CUDA in bf16, on tiny models built here (no network).

    .venv/bin/python bench/gpu_check.py          # this repo's venv
    python3 bench/gpu_check.py                   # a bare GPU machine (torch + transformers)

Builds a tiny random LLaVA and a tiny remote-code InternLM-XComposer stand-in in a temp
folder, loads them through ``TransformersBackend`` with ``device = "cuda"`` and
``dtype = "bf16"`` (and the LLaVA once more with ``device = "auto"``), and runs text,
image, ``choices`` and ``json_schema`` requests.  Prints timings and ``GPU CHECK OK``
(exit 0), or ``GPU CHECK FAILED: ...`` (exit 1).  Without a CUDA device it prints
``GPU CHECK SKIPPED: no CUDA device`` and exits 0.

It works where the package is not installed (it loads ``engine/`` as ``xcomposer`` from
this checkout) and without pydantic (the backend's options then come in a plain
namespace).  ``--cpu`` runs the same checks on the CPU and ``--bare`` imports as on such a
machine: both are for trying the script out where there is no GPU.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OPTIONS = {  # BackendConfig's fields that the transformers backend reads
    "backend": "transformers",
    "model": None,
    "recipe": "auto",
    "device": "cuda",
    "dtype": "bf16",
    "load_in_4bit": False,
    "attn_implementation": None,
    "trust_remote_code": False,
    "hd_num": 9,
}


def import_engine(bare: bool) -> tuple[types.ModuleType, types.ModuleType, object]:
    """(backend module, base module, BackendConfig or None), installed or from ``engine/``."""
    if not bare:
        try:
            from xcomposer.backends import base, transformers
            from xcomposer.config import BackendConfig

            return transformers, base, BackendConfig
        except ImportError:
            pass
    for name in [n for n in sys.modules if n == "xcomposer" or n.startswith("xcomposer.")]:
        del sys.modules[name]
    if bare:
        sys.modules["pydantic"] = None  # type: ignore[assignment] - as on a machine without it
    # Package shells whose __init__ is not run: it imports the whole engine (and pydantic).
    for name, folder in (
        ("xcomposer", ROOT / "engine"),
        ("xcomposer.backends", ROOT / "engine" / "backends"),
    ):
        shell = types.ModuleType(name)
        shell.__path__ = [str(folder)]
        sys.modules[name] = shell
    transformers = importlib.import_module("xcomposer.backends.transformers")
    base = importlib.import_module("xcomposer.backends.base")
    try:
        from xcomposer.config import BackendConfig
    except ImportError:
        BackendConfig = None  # noqa: N806
    return transformers, base, BackendConfig


def make_config(config_class: object, **changes: object) -> object:
    values = OPTIONS | changes
    if config_class is not None:
        return config_class(**values)  # type: ignore[operator]
    return types.SimpleNamespace(**values)


def photo(name: str, folder: Path) -> Path:
    """A real photo from scikit-image's wheel, or a drawn one where it is missing."""
    try:
        from tests.fixtures.tiny_models import sample_image

        return sample_image(name)
    except (ImportError, RuntimeError, FileNotFoundError):
        from PIL import Image, ImageDraw

        path = folder / name
        img = Image.new("RGB", (96, 64), (30, 90, 160) if "astro" in name else (200, 140, 60))
        ImageDraw.Draw(img).ellipse([20, 10, 70, 60], fill=(240, 240, 240))
        img.save(path)
        return path


class Check:
    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    def step(self, name: str, work):  # noqa: ANN001, ANN201 - a tiny harness
        started = time.perf_counter()
        try:
            result = work()
        except Exception as err:  # noqa: BLE001 - reported as the check's failure
            raise SystemExit(f"GPU CHECK FAILED: {name}: {type(err).__name__}: {err}") from err
        elapsed = time.perf_counter() - started
        self.timings.append((name, elapsed))
        print(f"  {name:<44} {elapsed * 1000:9.1f} ms", flush=True)
        return result


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run the checks on the CPU")
    parser.add_argument("--bare", action="store_true", help="import as on a bare machine")
    args = parser.parse_args()
    device = "cpu" if args.cpu else "cuda"

    try:
        import torch
        import transformers as hf
    except ImportError as err:
        print(f"GPU CHECK SKIPPED: {err.name} is not installed")
        return 0
    if device == "cuda" and not torch.cuda.is_available():
        print("GPU CHECK SKIPPED: no CUDA device")
        return 0
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "CPU"
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {hf.__version__}, device {device} ({gpu})"
    )

    from tests.fixtures.tiny_models import write_tiny_llava, write_tiny_xcomposer

    backends, base, config_class = import_engine(args.bare)
    print(
        f"engine from {Path(backends.__file__).parent.parent}, pydantic config: {config_class is not None}"
    )
    check = Check()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        folder = Path(tmp)
        cat, astronaut = (photo(n, folder) for n in ("chelsea.png", "astronaut.png"))
        sha = importlib.import_module("xcomposer.images").file_sha256
        cat_ref = base.ImageRef(cat, sha(cat))
        astronaut_ref = base.ImageRef(astronaut, sha(astronaut))

        def chat(*content, **kw):  # noqa: ANN002, ANN003, ANN202
            return base.GenerateRequest(messages=(base.Message("user", content),), **kw)

        llava_dir = check.step("build tiny LLaVA", lambda: write_tiny_llava(folder / "tiny-llava"))
        xc_dir = check.step(
            "build tiny XComposer", lambda: write_tiny_xcomposer(folder / "tiny-xcomposer")
        )

        llava = backends.TransformersBackend(
            make_config(config_class, model=str(llava_dir), device=device, dtype="bf16")
        )
        health = llava.health()
        expect(health.ok, f"health: {health.detail}")
        model = check.step("load LLaVA (bf16)", llava._load)
        weight = next(model.parameters())
        expect(weight.device.type == device, f"weights on {weight.device}, not {device}")
        expect(weight.dtype == torch.bfloat16, f"weights in {weight.dtype}, not bfloat16")

        text = check.step(
            "text, 32 tokens", lambda: llava.generate(chat("Write about cats.", max_tokens=32))
        )
        again = llava.generate(chat("Write about cats.", max_tokens=32))
        expect(text.text.strip() != "", "empty text answer")
        expect(text.text == again.text, "greedy answers differ between two runs")
        plain = llava.generate(chat("Describe the picture.", max_tokens=16))
        seen = check.step(
            "image + text, 16 tokens",
            lambda: llava.generate(chat(cat_ref, "Describe the picture.", max_tokens=16)),
        )
        other = llava.generate(chat(astronaut_ref, "Describe the picture.", max_tokens=16))
        expect(seen.prompt_tokens - plain.prompt_tokens == 16, "the image did not add 16 tokens")
        expect(seen.text != other.text, "two images gave the same answer")
        choices = ("cat", "rocket", "moon", "coffee")
        picked = check.step(
            "choices (4, scored)",
            lambda: llava.generate(chat(cat_ref, "What is it?", choices=choices)),
        )
        expect(picked.text in choices, f"choice {picked.text!r} not among {choices}")
        schema = {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[A-Z][^\n\"]{2,40}$"},
            "minItems": 3,
            "maxItems": 3,
        }
        outline = check.step(
            "json_schema outline (3 headings)",
            lambda: llava.generate(chat("Plan an article.", json_schema=schema, max_tokens=90)),
        )
        expect(len(json.loads(outline.text)) == 3, f"outline {outline.text!r}")
        pieces: list[str] = []
        streamed = check.step(
            "streamed, 32 tokens",
            lambda: llava.generate(chat("Write about cats.", max_tokens=32), on_text=pieces.append),
        )
        expect("".join(pieces).strip() == streamed.text.strip() == text.text.strip(), "stream")
        if device == "cuda":
            print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
        llava.close()

        if device == "cuda":
            auto = backends.TransformersBackend(
                make_config(config_class, model=str(llava_dir), device="auto", dtype="bf16")
            )
            loaded = check.step("load LLaVA (device auto)", auto._load)
            expect(next(loaded.parameters()).device.type == "cuda", "device auto missed the GPU")
            expect(auto.generate(chat("Write.", max_tokens=8)).completion_tokens > 0, "auto")
            auto.close()

        xc = backends.TransformersBackend(
            make_config(
                config_class, model=str(xc_dir), device=device, trust_remote_code=True, hd_num=4
            )
        )
        check.step("load XComposer (remote code, bf16)", xc._load)
        answer = check.step(
            "XComposer chat(), 2 images, hd_num 4",
            lambda: xc.generate(chat(cat_ref, astronaut_ref, "Compare them.", max_tokens=24)),
        )
        expect(answer.text.strip() != "", "empty XComposer answer")
        letter = check.step(
            "XComposer choices (scored)",
            lambda: xc.generate(chat(cat_ref, "Which?", choices=("A", "B", "C"))),
        )
        expect(letter.text in ("A", "B", "C"), f"XComposer choice {letter.text!r}")
        xc.close()

    total = sum(t for _, t in check.timings)
    print(f"  {'total':<44} {total * 1000:9.1f} ms")
    print("GPU CHECK OK" if device == "cuda" else "CHECK OK on the CPU (no GPU was used)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as err:
        print(f"GPU CHECK FAILED: {err}")
        sys.exit(1)
