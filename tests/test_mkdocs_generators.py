"""One site, one committed cache, every generator: MkDocs, ProperDocs and Zensical.

The cache is filled once with ``xcomposer site fill`` (scripted answers); then each
generator builds the site in its own process, as a writer runs it, with no model:
the figures (image, alt text, caption) and the image files must be the same in
every build, and Zensical's ``build --clean`` must leave the committed cache intact.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scripted import ScriptedBackend

from mkdocs_xcomposer.site_commands import check, fill

BIN = Path(sys.executable).parent

PAGES = {
    "index.md": "# Home\n\nA site about rockets.\n\n![](img/photo.png)\n",
    "guide/launch.md": (
        "# Launch day\n\n"
        "/// compose | Rockets and coffee\n"
        "    max_images: 2\n    sections: 2\n    words: 30\n\n"
        "Write a short article about rockets, and about the coffee engineers drink.\n"
        "///\n"
    ),
    "guide/lists.md": (
        "# In a list and a tab\n\n"
        "1. First step.\n\n"
        "    /// illustrate\n        max_images: 1\n\n"
        "    The rocket waits on the pad before dawn.\n"
        "    ///\n\n"
        '=== "Tab one"\n\n'
        "    /// illustrate\n        max_images: 1\n\n"
        "    Engineers share a cup of coffee during the countdown.\n"
        "    ///\n"
    ),
}

MARKDOWN_EXTENSIONS = [
    "admonition",
    "attr_list",
    "md_in_html",
    "pymdownx.superfences",
    {"pymdownx.tabbed": {"alternate_style": True}},
    {"toc": {"permalink": True}},
    "xcomposer",
]


def _site(root: Path, images: Path, theme: str = "material") -> Path:
    docs = root / "docs"
    for name, text in PAGES.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    (docs / "img").mkdir()
    shutil.copy(images / "rocket.jpg", docs / "img/photo.png")
    (docs / "img/photo.txt").write_text("A rocket on its launch pad\n")
    shutil.copytree(images, root / "images")
    config = {
        "site_name": "Generators",
        "theme": {"name": theme},
        "markdown_extensions": MARKDOWN_EXTENSIONS,
        # A model file that is not here: the cache is all there is (as on a CI machine).
        "plugins": [
            {
                "xcomposer": {
                    "library": ["images"],
                    "alt_text": "missing",
                    "model": str(root / "models/absent.gguf"),
                }
            }
        ],
    }
    path = root / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _figures(site: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Per page: (image file relative to the site, alt, caption) of every figure and image."""
    found = {}
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        if "<article" in text:  # Material: only the page's content
            text = text.split('<article class="md-content__inner md-typeset">', 1)[-1]
            text = text.split("</article>", 1)[0]
        items = []
        for match in re.finditer(
            r"<img (?P<attrs>[^>]*)>(?:\s*<figcaption>(?P<cap>.*?)</figcaption>)?", text
        ):
            attrs = dict(re.findall(r'(\w+)="([^"]*)"', match.group("attrs")))
            src = attrs.get("src", "")
            if src.startswith(("http", "data:")) or "assets/images/favicon" in src:
                continue
            file = os.path.normpath(page.parent / src)
            assert Path(file).is_file(), f"{page}: {src} is not in the built site"
            items.append((Path(file).relative_to(site).as_posix(), attrs.get("alt", ""),
                          match.group("cap") or ""))  # fmt: skip
        if items:
            found[page.relative_to(site).as_posix()] = items
    return found


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_every_generator_builds_the_same_figures_from_the_committed_cache(
    tmp_path: Path, captioned_images: Path
) -> None:
    config = _site(tmp_path, captioned_images)
    summary = fill(config, {"main": ScriptedBackend()})
    assert "composed" in summary
    assert "3 block(s)" not in summary  # 3 blocks and one alt text
    assert check(config).endswith("every shown image is in docs_dir")
    cache = sorted((tmp_path / "xcomposer-cache/blocks").rglob("*.json"))
    assert len(cache) == 4
    assert sorted((tmp_path / "docs/assets/xcomposer/images").iterdir()), "images copied"

    _run([str(BIN / "mkdocs"), "build", "-q", "-d", "built-mkdocs"], tmp_path)
    _run([str(BIN / "properdocs"), "build", "-q", "-d", "built-properdocs"], tmp_path)
    (tmp_path / ".cache").mkdir()
    _run([str(BIN / "zensical"), "build", "--clean"], tmp_path)

    mkdocs = _figures(tmp_path / "built-mkdocs")
    assert set(mkdocs) == {"index.html", "guide/launch/index.html", "guide/lists/index.html"}
    assert len(mkdocs["guide/launch/index.html"]) == 2
    assert len(mkdocs["guide/lists/index.html"]) == 2, "a block in a list and in a tab"
    assert mkdocs["index.html"][0][1] == "A rocket on its launch pad", "alt text filled"
    assert _figures(tmp_path / "built-properdocs") == mkdocs
    assert _figures(tmp_path / "site") == mkdocs
    assert sorted((tmp_path / "xcomposer-cache/blocks").rglob("*.json")) == cache, (
        "zensical build --clean leaves the committed cache alone"
    )
    for built in ("built-mkdocs", "built-properdocs"):  # Zensical copies all of docs_dir
        assert not list((tmp_path / built).rglob("*.txt")), f"{built}: no caption sidecar"
    for built in ("built-mkdocs", "built-properdocs", "site"):
        page = (tmp_path / built / "guide/lists/index.html").read_text()
        assert "/// illustrate" not in page and "XCOMPOSER" not in page


def test_properdocs_with_its_mkdocs_theme_and_properdocs_yml(
    tmp_path: Path, captioned_images: Path
) -> None:
    config = _site(tmp_path, captioned_images, theme="mkdocs")
    fill(config, {"main": ScriptedBackend()})
    config.rename(tmp_path / "properdocs.yml")
    _run([str(BIN / "properdocs"), "build", "-q"], tmp_path)
    figures = _figures(tmp_path / "site")
    assert len(figures["guide/launch/index.html"]) == 2
    assert len(figures["guide/lists/index.html"]) == 2


def test_zensical_fails_on_a_block_missing_from_the_cache_with_page_and_line(
    tmp_path: Path, captioned_images: Path
) -> None:
    _site(tmp_path, captioned_images)
    done = subprocess.run(
        [str(BIN / "zensical"), "build", "--clean"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "guide/launch.md:3: this compose block is not in the cache" in done.stdout + done.stderr
    assert "xcomposer site fill" in done.stdout + done.stderr


def test_site_check_names_each_missing_block_and_image(
    tmp_path: Path, captioned_images: Path
) -> None:
    from xcomposer import InputError

    config = _site(tmp_path, captioned_images)
    with pytest.raises(InputError) as err:
        check(config)
    assert "guide/launch.md:3: this compose block is not in the cache" in str(err.value)
    assert "guide/lists.md:5:" in str(err.value) and "guide/lists.md:13:" in str(err.value)
    fill(config, {"main": ScriptedBackend()})
    shutil.rmtree(tmp_path / "docs/assets")
    with pytest.raises(InputError, match=r"guide/launch\.md:3: image assets/xcomposer/images/"):
        check(config)


def test_a_site_with_the_old_cache_folder_gets_a_migration_notice(
    tmp_path: Path, captioned_images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mkdocs_sites import build_site

    config = _site(tmp_path, captioned_images)
    (tmp_path / ".cache/xcomposer/blocks").mkdir(parents=True)
    fill(config, {"main": ScriptedBackend()})
    notices = [r.getMessage() for r in caplog.records if "moved out of .cache/" in r.getMessage()]
    assert notices and "git mv .cache/xcomposer/blocks xcomposer-cache/blocks" in notices[0]
    caplog.clear()
    build_site(config, {"main": ScriptedBackend()})  # the new folder exists now: no notice
    assert not [r for r in caplog.records if "moved out of .cache/" in r.getMessage()]


EXAMPLES = Path(__file__).parent.parent / "examples"


def test_the_example_site_builds_alike_with_mkdocs_properdocs_and_zensical(
    tmp_path: Path,
) -> None:
    site = tmp_path / "examples"
    shutil.copytree(EXAMPLES, site, ignore=shutil.ignore_patterns("site", ".cache"))
    _run([str(BIN / "xcomposer"), "site", "check", "mkdocs.yml"], site)
    _run([str(BIN / "mkdocs"), "build", "-q", "-d", "built-mkdocs"], site)
    _run([str(BIN / "properdocs"), "build", "-q", "-d", "built-properdocs"], site)
    _run([str(BIN / "zensical"), "build", "--clean"], site)
    mkdocs = _figures(site / "built-mkdocs")
    assert sum(len(v) for k, v in mkdocs.items() if k != "index.html") >= 7
    assert _figures(site / "built-properdocs") == mkdocs
    assert _figures(site / "site") == mkdocs
    names = lambda root: sorted(p.name for p in (root / "xcomposer-cache/blocks").rglob("*.json"))  # noqa: E731
    assert names(site) == names(EXAMPLES), "zensical build --clean leaves the committed cache"


ZENSICAL_TOML = """\
[project]
site_name = "An illustrated notebook"
docs_dir = "docs"

[project.markdown_extensions.xcomposer]

[project.plugins.xcomposer]
library = ["images"]
alt_text = "missing"
figure_caption = "image"
"""


def test_the_example_site_builds_from_a_zensical_toml(tmp_path: Path) -> None:
    site = tmp_path / "examples"
    shutil.copytree(EXAMPLES, site, ignore=shutil.ignore_patterns("site", ".cache"))
    (site / "mkdocs.yml").unlink()
    (site / "zensical.toml").write_text(ZENSICAL_TOML, encoding="utf-8")
    _run([str(BIN / "xcomposer"), "site", "check"], site)
    _run([str(BIN / "zensical"), "build", "--clean"], site)
    figures = _figures(site / "site")
    assert len(figures["launch-day/index.html"]) == 2 and len(figures["studio/index.html"]) == 2
