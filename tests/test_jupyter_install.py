"""After `pip install`, Jupyter finds the server extension enabled and the lab extension present.

Builds the project's wheel (no dependencies: they come from this virtualenv) into a
throwaway virtualenv and asks Jupyter there, as a person would after installing.
"""

from __future__ import annotations

import json
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "engine", "mkdocs_xcomposer", "jupyter_ext"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*args: str | Path, **kw: object) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, check=False, **kw
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return ANSI.sub("", done.stdout + done.stderr)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv (seeing this one's packages) with the freshly built wheel installed."""
    work = tmp_path_factory.mktemp("install")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        work / "dist",
        src,
    )
    (wheel,) = (work / "dist").glob("*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv)
    # This virtualenv's packages (Jupyter, the engine's dependencies), after the new one's own.
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    (site_packages / "parent.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
        wheel,
    )
    return venv


@pytest.mark.slow
def test_the_server_extension_is_enabled_after_install(installed: Path) -> None:
    out = run(installed / "bin" / "python", "-m", "jupyter_server", "extension", "list")
    section = out.split(f"Config dir: {installed / 'etc' / 'jupyter'}")[1].split("Config dir:")[0]
    assert "jupyter_xcomposer enabled" in section
    assert "jupyter_xcomposer 0.1.0 OK" in section


@pytest.mark.slow
def test_the_lab_extension_is_installed_with_the_package(installed: Path) -> None:
    """Needs pyproject data-files: share/jupyter/labextensions/jupyter-xcomposer (see docs)."""
    target = installed / "share" / "jupyter" / "labextensions" / "jupyter-xcomposer"
    assert (target / "package.json").is_file(), (
        "the wheel lacks the lab extension: pyproject.toml [tool.setuptools.data-files] needs "
        '"share/jupyter/labextensions/jupyter-xcomposer" = ["jupyter_ext/labextension/package.json"] '
        'and "share/jupyter/labextensions/jupyter-xcomposer/static" = '
        '["jupyter_ext/labextension/static/*"]'
    )
    # The bundle @jupyterlab/builder made (make labextension): its entry point is installed.
    build = json.loads((target / "package.json").read_text())["jupyterlab"]["_build"]
    assert re.fullmatch(r"static/remoteEntry\.[0-9a-f]+\.js", build["load"]), build
    assert (target / build["load"]).is_file()
    code = "import sys; from jupyterlab.labextensions import main; sys.argv[0] = 'x'; main()"
    out = run(installed / "bin" / "python", "-c", code, "list")
    assert "jupyter-xcomposer v0.1.0 enabled OK" in out, out
