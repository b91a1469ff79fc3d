"""The ``xcomposer`` command line.

Results go to stdout (or ``-o FILE``, written only when everything succeeded);
progress and errors go to stderr.  A problem the user can fix is one line and
exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from .config import EngineConfig, load_config
from .errors import InputError, XComposerError
from .options import ComposeOptions, DescribeOptions
from .progress import Progress
from .safe_text import terminal_safe

EXIT_USER_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="engine config (TOML); default ./xcomposer.toml"
    )
    common.add_argument("--backend", choices=["llamacpp", "transformers", "openai"])
    common.add_argument("--model", help="model path, Hugging Face repo id, or served model name")
    common.add_argument("--mmproj", help="llama.cpp vision projector (GGUF)")
    common.add_argument(
        "--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1"
    )
    common.add_argument(
        "--vision",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the served model sees images (default: asked of the server)",
    )
    common.add_argument("--cache-dir", help="result cache folder")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    parser = argparse.ArgumentParser(
        prog="xcomposer", description="Illustrated writing with a vision-language model."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compose", parents=[common], help="write an illustrated article")
    p.add_argument(
        "instruction", help='what to write, e.g. "Write a short article about lighthouses"'
    )
    p.add_argument(
        "--images", nargs="+", metavar="DIR", help="image folder(s); default: library.roots"
    )
    p.add_argument("-n", "--n-images", help="number of images (0 to 20), or auto (default)")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write Markdown (or JSON) here instead of stdout"
    )
    p.add_argument("--json", action="store_true", help="the Article as JSON instead of Markdown")
    p.add_argument("--language", help="output language (en, zh, ...); default: the instruction's")
    # Defaults and bounds live in ComposeOptions: None here means "the option's default".
    p.add_argument("--candidates", type=int, help="images retrieved per spot (1 to 10, default 4)")
    p.add_argument("--sections", type=int, help="sections in the outline (1 to 12, default 4)")
    p.add_argument("--words", type=int, help="words per section (10 to 1000, default 80)")
    p.add_argument("--seed", type=int, help="sampling seed (default: the config's)")
    p.add_argument("--index-dir", help="where the image index lives (default: DIR/.xcomposer)")

    p = sub.add_parser(
        "illustrate", parents=[common], help="add pictures to a Markdown file you wrote"
    )
    p.add_argument("file", metavar="FILE.md", help="the Markdown to illustrate (kept as written)")
    p.add_argument(
        "--images", nargs="+", metavar="DIR", help="image folder(s); default: library.roots"
    )
    p.add_argument("-n", "--n-images", default="auto", help="number of images, or auto (default)")
    p.add_argument("-o", "--output", metavar="OUT.md", help="write here instead of stdout")
    p.add_argument(
        "--json", action="store_true", help="the Article as JSON, with each figure's evidence"
    )
    p.add_argument(
        "--candidates", type=int, default=4, help="candidates kept per figure (default 4)"
    )

    p = sub.add_parser(
        "describe", parents=[common], help="caption, alt text or an answer about an image"
    )
    p.add_argument("image")
    p.add_argument("--question", help="a question about the image")
    p.add_argument("--style", default="caption", choices=["caption", "alt", "explain"])

    sub.add_parser("models", parents=[common], help="which backends and models would be used")

    p = sub.add_parser("index", parents=[common], help="build or update the image index")
    p.add_argument("folders", nargs="+", metavar="DIR")
    p.add_argument("--index-dir", help="where the index lives (default: DIR/.xcomposer)")
    p.add_argument("--docs-dir", help="Markdown folder whose alt text and captions describe images")
    p.add_argument(
        "--ocr", action="store_true", help="read text in screenshots (needs the ocr extra)"
    )

    p = sub.add_parser("search", parents=[common], help="find images for a query, with scores")
    p.add_argument("query")
    p.add_argument(
        "--images", nargs="+", metavar="DIR", help="image folder(s); default: library.roots"
    )
    p.add_argument("-k", type=int, default=5, help="how many matches (default 5)")
    p.add_argument("--index-dir", help="where the index lives")

    # Adapters add their own commands (e.g. the MkDocs plugin's `materialize`) through the
    # `xcomposer.commands` entry point group: `add_command(subparsers, common_parser)`,
    # which sets `run=callable(args, engine)` on its parser.  The engine never imports them.
    for ep in entry_points(group="xcomposer.commands"):
        try:
            ep.load()(sub, common)
        except Exception as err:  # noqa: BLE001 - a broken adapter must not break the CLI
            logging.getLogger("xcomposer").warning("command %s unavailable: %s", ep.name, err)
    return parser


def _config(args: argparse.Namespace) -> EngineConfig:
    cfg = load_config(args.config)
    cfg = cfg.with_overrides(
        backend=args.backend,
        model=args.model,
        mmproj=args.mmproj,
        base_url=args.base_url,
        vision=args.vision,
    )
    updates: dict = {}
    if args.cache_dir:
        updates["cache_dir"] = str(Path(args.cache_dir).resolve())
    lib_updates = {}
    for key in ("index_dir", "docs_dir"):
        value = getattr(args, key, None)
        if value:
            lib_updates[key] = str(Path(value).resolve())
    if getattr(args, "ocr", False):
        lib_updates["ocr"] = True
    if lib_updates:
        updates["library"] = cfg.library.model_copy(update=lib_updates)
    return cfg.model_copy(update=updates) if updates else cfg


class _ProgressPrinter:
    """Progress on stderr: a line per finished step (a live line on a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = sys.stderr.isatty()

    def __call__(self, p: Progress) -> None:
        if self.quiet:
            return
        if self.live:
            end = "\n" if p.stage == "done" else ""
            sys.stderr.write(f"\r\033[K{p}{end}")
        elif p.done == p.total or p.stage == "done":
            sys.stderr.write(f"{p}\n")
        sys.stderr.flush()


def _write_output(path: str | None, text: str) -> None:
    text = terminal_safe(text)  # model text: no escape sequences reach a terminal or a file
    if path is None:
        sys.stdout.write(text)
        return
    from .cache import write_atomic

    write_atomic(Path(path), text.encode("utf-8"))


def _cmd_compose(args: argparse.Namespace, engine) -> None:  # noqa: ANN001
    if args.output and Path(args.output).is_dir():
        raise InputError(
            f"output {args.output} is a folder", "give a file name, e.g. -o article.md"
        )
    for folder in args.images or []:
        if not Path(folder).is_dir():
            raise InputError(
                f"image folder {folder} does not exist", "check the path given to --images"
            )
    # the flags are named like the options; one left unset (None) keeps the option's default
    options = ComposeOptions.parse({k: getattr(args, k, None) for k in ComposeOptions.model_fields})
    article = engine.compose(
        args.instruction, args.images, options, progress=_ProgressPrinter(args.quiet)
    )
    if args.json:
        _write_output(args.output, article.to_json() + "\n")
        return
    url = _relative_urls(args.output)
    _write_output(args.output, article.to_markdown(image_url=url))


def _relative_urls(output: str | None):  # noqa: ANN202
    """Figure paths relative to the folder the Markdown is written to (stdout: the cwd)."""
    base = Path(output).resolve().parent if output else Path.cwd()
    return lambda fig: Path(os.path.relpath(fig.image, base)).as_posix()


def _cmd_illustrate(args: argparse.Namespace, engine) -> None:  # noqa: ANN001
    from .compose import insert_figures

    source = Path(args.file)
    if not source.is_file():
        raise InputError(f"file {args.file} does not exist", "give the Markdown file to illustrate")
    if args.output and Path(args.output).is_dir():
        raise InputError(f"output {args.output} is a folder", "give a file name, e.g. -o out.md")
    for folder in args.images or []:
        if not Path(folder).is_dir():
            raise InputError(
                f"image folder {folder} does not exist", "check the path given to --images"
            )
    try:
        text = source.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"file {args.file} is not UTF-8 text", "save it as UTF-8") from None
    article = engine.illustrate(
        text,
        args.images,
        n_images=args.n_images,
        candidates=args.candidates,
        progress=_ProgressPrinter(args.quiet),
    )
    if not args.quiet and not article.figures:
        sys.stderr.write(f"xcomposer: {article.provenance.get('image_count', 'no picture')}\n")
    if args.json:
        _write_output(args.output, article.to_json() + "\n")
        return
    url = _relative_urls(args.output)
    _write_output(args.output, insert_figures(text, article, url))


def _cmd_describe(args: argparse.Namespace, engine) -> None:  # noqa: ANN001
    options = DescribeOptions.parse(question=args.question, style=args.style)
    text = engine.describe(args.image, options=options, progress=_ProgressPrinter(args.quiet))
    print(terminal_safe(text))


def _cmd_models(args: argparse.Namespace, engine) -> None:  # noqa: ANN001
    bad = 0
    for name, roles, health in engine.models():
        state = "ok" if health.ok else "NOT READY"
        vision = "vision" if health.vision else "text only"
        print(f"{name}: {health.backend} {health.model} [{state}, {vision}] roles: {roles}")
        print(f"    {health.detail}")
        for line in health.extra.get("found", []):
            print(f"    {line}")
        bad += not health.ok
    if bad:
        raise SystemExit(1)


def _cmd_index(args: argparse.Namespace, engine) -> None:  # noqa: ANN001
    for folder in args.folders:
        if not Path(folder).is_dir():
            raise InputError(f"image folder {folder} does not exist", "check the path")
    from .library import Library

    cfg = engine.config.library
    index_dir = Path(cfg.index_dir) if cfg.index_dir else None
    lib = Library.open(
        [Path(f) for f in args.folders], cfg, index_dir=index_dir, cache=engine.cache
    )
    try:
        report = lib.update(_ProgressPrinter(args.quiet))
    finally:
        lib.close()
    print(report)


def _cmd_search(args: argparse.Namespace, engine) -> None:  # noqa: ANN001
    from .library import Library

    roots = args.images or engine.config.library.roots
    if not roots:
        raise InputError(
            "no image library given", "pass --images DIR or set library.roots in the config"
        )
    for folder in roots:
        if not Path(folder).is_dir():
            raise InputError(
                f"image folder {folder} does not exist", "check the path given to --images"
            )
    cfg = engine.config.library
    index_dir = Path(cfg.index_dir) if cfg.index_dir else None
    lib = Library.open([Path(f) for f in roots], cfg, index_dir=index_dir, cache=engine.cache)
    try:
        lib.update(_ProgressPrinter(True))
        matches = lib.search(args.query, k=args.k)
    finally:
        lib.close()
    for rank, m in enumerate(matches, 1):
        print(terminal_safe(f"{rank}. {m.score:.3f}  {m.path}"))
        print(terminal_safe(f"      matched: {m.matched}"))


COMMANDS = {
    "compose": _cmd_compose,
    "illustrate": _cmd_illustrate,
    "describe": _cmd_describe,
    "models": _cmd_models,
    "index": _cmd_index,
    "search": _cmd_search,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="xcomposer: %(message)s")
    from .engine import Engine

    engine = None
    try:
        engine = Engine(_config(args))
        run = getattr(args, "run", None) or COMMANDS[args.command]
        run(args, engine)
        if args.command in ("compose", "illustrate", "describe") and not args.quiet:
            sys.stderr.write(f"xcomposer: {engine.stats.summary()}\n")
    except XComposerError as err:
        sys.stderr.write(f"xcomposer: error: {terminal_safe(str(err))}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("xcomposer: interrupted\n")
        return 130
    finally:
        if engine is not None:
            engine.close()
    return 0
