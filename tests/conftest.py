"""Shared fixtures: real images from scikit-image's wheel, captioned like a writer's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"

# (file in skimage/data, name in the library, the caption a writer would put beside it)
CAPTIONED = [
    ("rocket.jpg", "rocket.jpg", "A rocket on the launch pad before lift-off"),
    ("coffee.png", "coffee.png", "A cup of coffee on a saucer, seen from above"),
    ("chelsea.png", "cat.png", "A tabby cat looking to the side"),
    ("astronaut.png", "astronaut.png", "An astronaut in a white spacesuit beside a flag"),
    ("hubble_deep_field.jpg", "deep_field.jpg", "Distant galaxies in the Hubble deep field"),
]


def draw_lighthouse(path: Path, night: bool = False) -> None:
    """A simple lighthouse drawing: tower, lamp and beam (a real PNG, drawn here)."""
    sky = (20, 24, 60) if night else (150, 200, 240)
    img = Image.new("RGB", (320, 240), sky)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 190, 320, 240], fill=(30, 70, 140))
    d.polygon([(140, 190), (180, 190), (172, 70), (148, 70)], fill=(240, 240, 240))
    for y in (100, 140):
        d.rectangle([146, y, 176, y + 14], fill=(200, 30, 30))
    d.rectangle([144, 52, 176, 70], fill=(250, 220, 80))
    if night:
        d.polygon([(176, 56), (320, 20), (320, 90)], fill=(250, 240, 160))
    img.save(path)


# The OpenAI-compatible backend's scripted server and fast retries (tests/openai_fixtures.py).
pytest_plugins = ("openai_fixtures",)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose frozen mode themselves: the machine's CI and XCOMPOSER_FROZEN must not.

    SOURCE_DATE_EPOCH fixes the build date MkDocs writes into each page; MkDocs 1.6's
    notice about MkDocs 2 stays out of the logs the tests read.
    """
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("XCOMPOSER_FROZEN", raising=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")


@pytest.fixture(scope="session")
def captioned_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writer's image folder: real photos and two lighthouse drawings, each with NAME.txt."""
    folder = tmp_path_factory.mktemp("images")
    for source, name, caption in CAPTIONED:
        shutil.copy(SKIMAGE_DATA / source, folder / name)
        (folder / name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    draw_lighthouse(folder / "lighthouse_day.png")
    (folder / "lighthouse_day.txt").write_text("A white lighthouse with red stripes by the sea\n")
    draw_lighthouse(folder / "lighthouse_night.png", night=True)
    (folder / "lighthouse_night.txt").write_text(
        "A lighthouse beam sweeping over the sea at night\n"
    )
    return folder
