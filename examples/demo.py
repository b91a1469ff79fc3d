"""`make demo`: build the illustrated example site with the xcomposer plugin.

The pictures are chosen and placed by the embedded default model (SmolLM2 on
llama.cpp), from the photos and diagrams in examples/images.  Results are cached
in examples/xcomposer-cache (committed), so a second build takes a second;
``--fresh`` composes everything again in a temporary cache to watch the model work.

    .venv/bin/python examples/demo.py [--fresh] [--site-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh", action="store_true", help="ignore the committed cache and compose again"
    )
    parser.add_argument("--site-dir", default=str(HERE / "site"), help="where the site goes")
    args = parser.parse_args(argv)

    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s -  %(message)s")
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    site_dir = Path(args.site_dir).resolve()
    config = load_config(str(HERE / "mkdocs.yml"), site_dir=str(site_dir))
    with tempfile.TemporaryDirectory(prefix="xcomposer-demo-") as scratch:
        if args.fresh:
            config.plugins["xcomposer"].config.cache_dir = scratch
        start = time.monotonic()
        try:
            build(config)
        except Abort as err:
            print(f"demo: the build failed: {err}", file=sys.stderr)
            return 1
    print()
    print(f"Built the example site in {time.monotonic() - start:.1f} s.")
    print(f"Open {site_dir / 'index.html'} in a browser, or serve it:")
    print(f"    python3 -m http.server --directory {site_dir} 8000   # then http://127.0.0.1:8000/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
