"""The assistant in a real JupyterLab, driven in headless Chromium.

The test starts JupyterLab on 127.0.0.1 with the server extension and the lab
extension (as `pip install` sets them up), opens a notebook, runs ``Assistant()``,
drafts with the embedded default model, inserts, and checks that the new
Markdown cells with their image attachments are in the notebook model, rendered
on the page, and in the saved file.  A screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
TOKEN = "xcomposer-browser-test"
CODE = (
    "from jupyter_xcomposer import Assistant\n"
    'Assistant("Write a short article about cats and coffee", library="images",\n'
    "          n_images=1, sections=2, words=40)"
)
PERSON_TEXT = "My cat naps on the windowsill every morning.\n\nThen she watches me drink coffee."
MODEL_JSON = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.model.toJSON();
}"""
KERNEL_IDLE = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
    && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, captioned_images: Path) -> Any:
    if not CHROMIUM.exists():
        pytest.skip(
            "headless Chromium is not installed at /usr/bin/chromium "
            "(apt-get install -y chromium; .ci/run installs it)"
        )
    pytest.importorskip("playwright.sync_api")
    work = tmp_path_factory.mktemp("lab")
    root = work / "root"
    root.mkdir()
    shutil.copytree(captioned_images, root / "images")
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(""), nbformat.v4.new_markdown_cell(PERSON_TEXT)]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, root / "assistant.ipynb")
    # As `pip install` sets them up: the server config enabling the extension, the lab extension.
    config_d = work / "etc" / "jupyter_server_config.d"
    config_d.mkdir(parents=True)
    shutil.copy(REPO / "jupyter_ext" / "etc" / "jupyter_xcomposer.json", config_d)
    labextensions = work / "share" / "labextensions"
    labextensions.mkdir(parents=True)
    os.symlink(REPO / "jupyter_ext" / "labextension", labextensions / "jupyter-xcomposer")
    # No "Jupyter news?" prompt over the screenshot.
    settings = work / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(work / "etc"),
        "JUPYTER_PATH": str(work / "share"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("XCOMPOSER_SERVER_URL", None)
    log = open(work / "jupyter.log", "w")  # noqa: SIM115 - closed after the server stops
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-lab"),
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.workspaces_dir={work / 'workspaces'}",
            f"--LabApp.user_settings_dir={work / 'settings'}",
            f"--XComposerApp.cache_dir={work / 'cache'}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}xcomposer/status?token={TOKEN}", timeout=5) as r:
                assert json.load(r)["backend"] == "llamacpp"
            break
        except OSError:
            assert process.poll() is None, (work / "jupyter.log").read_text()
            assert time.monotonic() < deadline, "JupyterLab did not start"
            time.sleep(0.5)
    yield {"url": url, "root": root, "log": work / "jupyter.log"}
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_assistant_drafts_and_inserts_illustrated_cells_in_jupyterlab(lab: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "jupyter-assistant.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1500})
        messages: list[str] = []
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
        try:
            page.goto(f"{lab['url']}lab/tree/assistant.ipynb?token={TOKEN}")
            page.wait_for_function(KERNEL_IDLE, timeout=180_000)
            # Put the code into the first cell (through the model: not what is under test) and
            # run it the way a person does.
            page.evaluate(
                """(code) => {
                  const panel = window.jupyterapp.shell.currentWidget;
                  panel.content.model.sharedModel.getCell(0).setSource(code);
                  panel.content.activeCellIndex = 0;
                }""",
                CODE,
            )
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Escape")
            page.keyboard.press("Control+Enter")
            draft = page.locator(".jp-OutputArea-output button.widget-button", has_text="Draft")
            draft.wait_for(timeout=120_000)
            draft.click()
            insert = page.locator("button.widget-button:not([disabled])", has_text="Insert")
            error = page.locator(".jp-OutputArea-output .widget-html div[style*='#b00020']")
            deadline = time.monotonic() + 900
            while not insert.count():
                assert not error.count(), error.first.inner_text()
                assert time.monotonic() < deadline, "the draft did not finish"
                page.wait_for_timeout(1000)
            assert page.locator(".widget-label", has_text="draft: done").count() == 1
            preview = page.locator(".xcomposer-preview")
            assert preview.locator("h2").count() == 1 and preview.locator("img").count() == 1
            insert.click()
            page.locator(".widget-label", has_text="and saved").wait_for(timeout=60_000)
            status = page.locator(".widget-label", has_text="and saved").inner_text()
            assert status.startswith("inserted ") and "assistant.ipynb" in status

            # The notebook model: the code cell, the new Markdown cells (one with an
            # attachment), then the person's own cell, untouched.
            model = page.evaluate(MODEL_JSON)
            cells = model["cells"]
            assert cells[0]["cell_type"] == "code"
            assert "".join(cells[-1]["source"]) == PERSON_TEXT
            new = [c for c in cells[1:-1] if c["cell_type"] == "markdown"]
            assert len(new) >= 2 and len(new) == len(cells) - 2
            with_image = [c for c in new if c.get("attachments")]
            assert len(with_image) == 1
            name = next(iter(with_image[0]["attachments"]))
            source = "".join(with_image[0]["source"])
            assert f"(attachment:{name})" in source
            # Rendered on the page: the attachment image decodes.
            image = page.locator(".jp-MarkdownCell .jp-RenderedMarkdown img").first
            image.wait_for(timeout=30_000)
            image.scroll_into_view_if_needed()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown img')]"
                ".some(i => i.complete && i.naturalWidth > 0)",
                timeout=30_000,
            )
            # The picture for people: the assistant and, below it, the cells it inserted.
            page.evaluate(
                "() => window.jupyterapp.commands.execute('application:toggle-left-area')"
            )
            page.evaluate(
                "() => window.jupyterapp.shell.currentWidget.content.scrollToItem(0, 'start')"
            )
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot))

            # Illustrate the cell the person selected: click it, then the assistant's button.
            page.locator(".jp-MarkdownCell").last.click()
            page.locator("button.widget-button", has_text="Illustrate cell").click()
            done = page.locator(".widget-label", has_text="illustrate: done")
            deadline = time.monotonic() + 600
            while not done.count():
                assert not error.count(), error.first.inner_text()
                assert time.monotonic() < deadline, "the illustration did not finish"
                page.wait_for_timeout(1000)
            cell_text = page.locator(".widget-textarea textarea").nth(1).input_value()
            assert cell_text == PERSON_TEXT
            assert preview.locator("img").count() == 1
            assert "My cat naps on the windowsill" in preview.inner_text()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyter-assistant-failure.png"))
            (ARTIFACTS / "jupyter-browser-console.txt").write_text("\n".join(messages))
            shutil.copy(lab["log"], ARTIFACTS / "jupyter-browser-server.log")
            raise
        finally:
            browser.close()

    # The saved file holds the same cells, the image bytes included.
    saved = nbformat.read(lab["root"] / "assistant.ipynb", as_version=4)
    saved_new = [c for c in saved.cells if c.cell_type == "markdown"][:-1]
    assert [c.source for c in saved_new] == ["".join(c["source"]) for c in new]
    attachments = [c.get("attachments") for c in saved_new if c.get("attachments")]
    assert len(attachments) == 1
    ((mime, data),) = attachments[0][name].items()
    picture = Image.open(io.BytesIO(base64.b64decode(data)))
    assert mime == f"image/{picture.format.lower()}" and min(picture.size) > 16
    assert shot.is_file()
