"""Regression tests for the assistant widget's defects in issue 14 (scripted model, in-kernel engine).

The selected cell wins over a stale text box; illustrate gives the person's cell back
with its blank lines; one result is inserted once.
"""

from __future__ import annotations

import re
from pathlib import Path

from jupyter_xcomposer import Assistant
from jupyter_xcomposer.client import LocalClient
from test_jupyter_support import *  # noqa: F403 - the jupyter_root fixture
from test_jupyter_support import SlowScriptedBackend, scripted_engine
from test_jupyter_widget import NotebookStandIn

FIGURE = re.compile(r"\n\n!\[[^\]\n]*\]\(attachment:[^)\s]+\)\n\n\*[^\n]*\*")
CELL_A = "The cat sleeps by the window.\n\nCoffee steams in a cup."
CELL_B = "# Rockets\n\n\n\nA rocket waits on the pad.\n\n\nThe astronaut waves."


def assistant(tmp_path: Path, jupyter_root: Path, notebook: NotebookStandIn) -> Assistant:
    backend = SlowScriptedBackend(delay=0.0)
    client = LocalClient(engine=scripted_engine(tmp_path, backend), base=jupyter_root)
    return Assistant(library="images", n_images=1, client=client, frontend=notebook)


def test_illustrate_takes_the_newly_selected_cell_and_keeps_its_blank_lines(
    tmp_path: Path, jupyter_root: Path
) -> None:
    notebook = NotebookStandIn(CELL_A)
    widget = assistant(tmp_path, jupyter_root, notebook)
    widget.illustrate_button.click()
    widget.wait(120)
    assert widget.error is None, widget.error
    notebook.selected = CELL_B  # the person selects another cell: the text box must follow
    widget.illustrate_button.click()
    widget.wait(120)
    assert widget.error is None, widget.error
    assert widget.text.value == CELL_B
    (cell,) = widget.cells
    assert FIGURE.sub("", cell["source"]) == CELL_B and cell["attachments"]


def test_one_result_is_inserted_once(tmp_path: Path, jupyter_root: Path) -> None:
    notebook = NotebookStandIn(CELL_A)
    widget = assistant(tmp_path, jupyter_root, notebook)
    widget.illustrate_button.click()
    widget.wait(120)
    widget.insert_button.click()
    assert widget.insert_button.disabled
    widget.insert()  # a second click, or a script calling insert again
    assert len(notebook.inserts) == 1
    assert "nothing to insert" in (widget.error or "")
