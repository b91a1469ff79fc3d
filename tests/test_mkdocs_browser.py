"""The built example site as a reader sees it: headless Chromium (Debian's) through Playwright.

Every figure's image loads, every image has alt text, no page logs a console
error.  Screenshots are kept in test-artifacts/; one is copied to
docs/img/example-site.png for the README when it is missing or when
``XCOMPOSER_UPDATE_SCREENSHOTS=1``.  Skips with a reason where /usr/bin/chromium is missing.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from mkdocs_sites import build_site

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mkdocs.yml"
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "example-site.png"
PAGES = ["", "looking-up/", "launch-day/", "studio/"]


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example site, built from its committed cache (composed on a miss, with a warning)."""
    if not CHROMIUM.exists():
        pytest.skip("no browser: /usr/bin/chromium is missing (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    # A copy, so that a stale committed cache is filled there, never in the repository.
    copy = tmp_path_factory.mktemp("example")
    for part in ("mkdocs.yml", "docs", "images", "xcomposer-cache/blocks"):
        source = EXAMPLE.parent / part
        if source.is_dir():
            shutil.copytree(source, copy / part)
        elif source.is_file():
            shutil.copy(source, copy / part)
    site = copy / "site"
    mp = pytest.MonkeyPatch()
    mp.setenv("XCOMPOSER_FROZEN", "0")  # compose what the committed cache lacks
    mp.setenv("SOURCE_DATE_EPOCH", "1700000000")
    try:
        plugin = build_site(copy / "mkdocs.yml", site_dir=str(site))
    finally:
        mp.undo()
    if plugin.counts["composed"]:
        warnings.warn(
            "the example's committed cache is stale: run `make demo` and commit "
            "examples/xcomposer-cache/blocks",
            stacklevel=1,
        )
    return site


@pytest.fixture(scope="module")
def server(example_site: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(example_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_example_site_in_a_real_browser(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    figures_seen = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            console_errors: list[str] = []
            page.on(
                "console",
                lambda msg: console_errors.append(msg.text) if msg.type == "error" else None,
            )
            page.on("pageerror", lambda err: console_errors.append(str(err)))
            page.on(
                "requestfailed",
                lambda req: console_errors.append(f"request failed: {req.url}"),
            )
            for path in PAGES:
                console_errors.clear()
                page.goto(server + path, wait_until="networkidle")
                # Lazy images load when scrolled to: scroll through the whole page.
                page.evaluate(
                    "async () => { for (const img of document.images) {"
                    " img.scrollIntoView(); await img.decode().catch(() => {}); } }"
                )
                page.wait_for_load_state("networkidle")
                figures = page.evaluate(
                    "() => [...document.querySelectorAll('figure.xcomposer-figure img')]"
                    ".map(i => ({src: i.currentSrc, width: i.naturalWidth, done: i.complete}))"
                )
                images = page.evaluate(
                    "() => [...document.querySelectorAll('article img')]"
                    ".map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt')}))"
                )
                figures_seen += len(figures)
                for fig in figures:
                    if not fig["width"]:
                        problems.append(f"/{path}: figure image {fig['src']} did not load")
                for img in images:
                    if not (img["alt"] or "").strip():
                        problems.append(f"/{path}: image {img['src']} has no alt text")
                problems += [f"/{path}: console: {text}" for text in console_errors]
                name = path.strip("/") or "index"
                page.evaluate("() => window.scrollTo(0, 0)")
                page.screenshot(path=str(ARTIFACTS / f"example-{name}.png"), full_page=True)
                if path == "looking-up/":
                    page.screenshot(path=str(ARTIFACTS / "example-site.png"))
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
    assert figures_seen >= 5, "the example pages show their figures"
    # The README's picture of the site: refreshed on request, so a test run leaves
    # the working tree clean.
    if not DOCS_SCREENSHOT.exists() or os.environ.get("XCOMPOSER_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "example-site.png", DOCS_SCREENSHOT)
