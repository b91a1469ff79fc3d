"""The XComposer panel and commands of the lab extension, in a real JupyterLab in Chromium.

On the embedded default model (SmolLM2-135M): illustrate a person's Markdown cell in
place, choose another image by hand, undo, compose into new cells, regenerate into
the same cells, and reload the page mid-job (the panel works again and the job of
the closed page is cancelled).  The screenshot goes into docs/img/jupyter-panel.png.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from test_jupyter_browser import KERNEL_IDLE, PERSON_TEXT, TOKEN, lab  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"\n\n!\[[^\]\n]*\]\(attachment:[^)\s]+\)\n\n\*[^\n]*\*")
CELLS = "() => window.jupyterapp.shell.currentWidget.content.model.toJSON().cells"


def wait_status(page: Any, text: str, timeout: float = 900) -> None:
    status = page.locator("#jp-xcomposer-panel .jp-xcomposer-status")
    deadline = time.monotonic() + timeout
    while text not in status.inner_text():
        current = status.inner_text()
        assert "jp-mod-error" not in (status.get_attribute("class") or ""), current
        assert time.monotonic() < deadline, f"still '{current}', waiting for '{text}'"
        page.wait_for_timeout(500)


def server_queue(url: str) -> int:
    with urllib.request.urlopen(f"{url}xcomposer/status?token={TOKEN}", timeout=30) as r:
        return json.load(r)["queue"]


def test_the_panel_illustrates_in_place_chooses_undoes_composes_and_regenerates(
    lab: dict[str, Any],  # noqa: F811 - the fixture imported above
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{lab['url']}lab/tree/assistant.ipynb?token={TOKEN}")
            page.wait_for_function(KERNEL_IDLE, timeout=180_000)
            commands = page.evaluate("() => window.jupyterapp.commands.listCommands()")
            assert {"xcomposer:compose", "xcomposer:illustrate-cell"} <= set(commands)
            page.evaluate("() => window.jupyterapp.commands.execute('xcomposer:open-panel')")
            panel = page.locator("#jp-xcomposer-panel")
            panel.locator(".jp-xcomposer-library").fill("images")
            panel.locator(".jp-xcomposer-images").select_option("1")

            # Illustrate the person's cell in place: their text stays character for character.
            page.locator(".jp-Notebook .jp-MarkdownCell").first.click()
            panel.locator("button.jp-xcomposer-illustrate").click()
            wait_status(page, "done: illustrated the cell")
            cell = page.evaluate(CELLS)[1]
            source = "".join(cell["source"])
            assert FIGURE.sub("", source) == PERSON_TEXT and len(FIGURE.findall(source)) == 1
            (before,) = cell["attachments"]
            page.locator(".jp-MarkdownCell .jp-RenderedMarkdown img").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "jupyter-panel.png"))

            # The candidates with their scores; a click on another replaces the figure.
            candidates = panel.locator(".jp-xcomposer-candidate:not(.jp-mod-selected)")
            assert candidates.count() >= 1
            assert re.fullmatch(
                r"\d\.\d\d", candidates.first.locator(".jp-xcomposer-score").inner_text()
            )
            candidates.first.click()
            wait_status(page, "done: illustrated the cell")
            cell = page.evaluate(CELLS)[1]
            (after,) = cell["attachments"]
            assert after != before and FIGURE.sub("", "".join(cell["source"])) == PERSON_TEXT

            # Undo takes the last edit back in one step.
            page.evaluate(
                "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.undo()"
            )
            assert list(page.evaluate(CELLS)[1]["attachments"]) == [before]

            # Compose into new cells after the active one, then regenerate into the same cells.
            count = len(page.evaluate(CELLS))
            panel.locator(".jp-xcomposer-instruction").fill("Write a short article about cats")
            panel.locator(".jp-xcomposer-sections").fill("1")
            panel.locator(".jp-xcomposer-words").fill("20")
            panel.locator("button.jp-xcomposer-compose").click()
            wait_status(page, "done: ")
            composed = page.evaluate(CELLS)
            added = len(composed) - count
            assert added >= 1 and all(c["cell_type"] == "markdown" for c in composed[2 : 2 + added])
            panel.locator("button.jp-xcomposer-regenerate").click()
            wait_status(page, "done: ")
            regenerated = page.evaluate(CELLS)
            assert len(regenerated) == count + added
            assert "".join(regenerated[1]["source"]).startswith(PERSON_TEXT.split("\n")[0])

            # Reload in the middle of a job: the panel works afterwards, the old job is cancelled.
            panel.locator(".jp-xcomposer-sections").fill("3")
            panel.locator(".jp-xcomposer-instruction").fill("Write about coffee and rockets")
            panel.locator("button.jp-xcomposer-compose").click()
            page.wait_for_function(
                "() => document.querySelector('#jp-xcomposer-panel .jp-xcomposer-status')"
                ".textContent !== 'done: ' && document.querySelector('#jp-xcomposer-panel')"
                ".classList.contains('jp-mod-busy')"
            )
            page.reload()
            page.wait_for_function(KERNEL_IDLE, timeout=180_000)
            page.evaluate("() => window.jupyterapp.commands.execute('xcomposer:open-panel')")
            assert panel.locator("button.jp-xcomposer-compose").is_enabled()
            deadline = time.monotonic() + 300
            while server_queue(lab["url"]):
                assert time.monotonic() < deadline, "the reloaded page's job kept running"
                page.wait_for_timeout(1000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyter-panel-failure.png"))
            raise
        finally:
            browser.close()
