"""A small labelled evaluation of the image library, built offline at test time.

:func:`build_library` lays out a writer's image folder the way people keep one:
real photos from the scikit-image and scikit-learn wheels, and screenshots,
charts and diagrams drawn here with Pillow.  Each image is described the way a
real folder describes it: a sidecar ``NAME.txt``/``NAME.md``, a folder's
``captions.yml``/``captions.json``, EXIF/XMP/PNG metadata, Markdown alt text or
captions in a docs page, only a telling file name, or nothing but the text in
the picture (found by OCR).  Queries paraphrase what a writer would ask for;
each names the one image that should come first.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .drawings import DRAWINGS


def _package_dir(name: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{name} is needed for the library evaluation's photos")
    return Path(next(iter(spec.submodule_search_locations)))


SKIMAGE_DATA = _package_dir("skimage") / "data"  # scikit-image (the dev extra)
SKLEARN_IMAGES = _package_dir("sklearn") / "datasets" / "images"  # with sentence-transformers


@dataclass(frozen=True)
class EvalImage:
    """One image of the evaluation library."""

    relpath: str
    topics: tuple[str, ...]
    """Ground truth: what the picture shows."""
    described_by: str
    """Which source describes it (sidecar, captions, exif, xmp, png-text, markdown, filename, ocr)."""


@dataclass(frozen=True)
class EvalQuery:
    query: str
    expected: str
    """relpath of the image that should come first."""
    needs_ocr: bool = False


# (source file, relpath in the library, how it is described, the description, topics)
PHOTOS = [
    ("sk:chelsea.png", "photos/IMG_0412.png", "sidecar", "Chelsea, our tabby cat, looking up", ("cat", "pet")),
    ("crop:chelsea.png:150,40,330,140", "photos/IMG_0413.png", "sidecar", "Close-up of Chelsea's eyes and whiskers", ("cat", "eyes", "close-up")),
    ("sk:coffee.png", "photos/IMG_0415.png", "captions", "Morning coffee in a white cup on a saucer", ("coffee", "cup", "drink")),
    ("sk:horse.png", "photos/IMG_0420.png", "captions", "Black silhouette of a horse", ("horse", "silhouette")),
    ("sk:rocket.jpg", "space/launch.jpg", "xmp", "Launch day|Rocket on the launch pad before lift-off", ("rocket", "launch")),
    ("sk:astronaut.png", "space/crew-portrait.png", "png-text", "Portrait of astronaut Eileen Collins in her flight suit", ("astronaut", "woman", "space")),
    ("sk:hubble_deep_field.jpg", "space/hubble-deep-field.jpg", "filename", "", ("galaxies", "telescope", "space")),
    ("sk:moon.png", "space/moon.png", "markdown", "The cratered surface of the Moon", ("moon", "craters")),
    ("sk:ihc.png", "science/microscopy/sample-07.png", "sidecar-md", "# Colon tissue\nImmunohistochemistry stain of colon tissue: cell membranes in brown.", ("microscopy", "tissue", "stain")),
    ("sk:retina.jpg", "science/eye/fundus.jpg", "captions-json", "Fundus photograph of a human retina, optic disc on the left", ("retina", "eye", "medical")),
    ("sk:phantom.png", "science/shepp-logan-phantom.png", "filename", "", ("phantom", "tomography")),
    ("sk:brick.png", "textures/brick-wall.png", "filename", "", ("brick", "wall", "texture")),
    ("sk:grass.png", "textures/grass.png", "filename", "", ("grass", "texture")),
    ("sk:gravel.png", "textures/gravel.png", "filename", "", ("gravel", "texture")),
    ("sk:coins.png", "misc/coins.jpg", "exif", "Ancient Greek coins laid out in rows", ("coins", "money", "history")),
    ("sk:camera.png", "misc/cameraman.png", "xmp", "Cameraman|A photographer looking through a film camera on a tripod", ("photographer", "camera", "tripod")),
    ("sk:cell.png", "science/microscopy/sample-08.png", "sidecar", "A single cell in phase contrast", ("cell", "microscopy")),
    ("sk:microaneurysms.png", "science/eye/detail.png", "captions-json", "Microaneurysms in a retina, detail", ("retina", "eye", "medical")),
    ("sk:chessboard_RGB.png", "misc/chessboard.png", "filename", "", ("chessboard", "pattern")),
    ("sk:motorcycle_left.png", "misc/DSC_1123.png", "markdown", "A red motorcycle parked in a garage", ("motorcycle", "garage")),
    ("sk:clock_motion.png", "misc/clock.png", "markdown-caption", "A wall clock, blurred by camera shake", ("clock", "blur")),
    ("sk:color.png", "misc/color-wheel.png", "filename", "", ("colour", "wheel", "spectrum")),
    ("sk:logo.png", "branding/scikit-image-logo.png", "filename", "", ("logo", "brand")),
    ("sk:text.png", "misc/notes.png", "sidecar", "Handwritten equations on squared paper", ("handwriting", "maths")),
    ("sk:page.png", "scans/scan-003.png", "ocr", "", ("document", "page", "text")),
    ("sl:china.jpg", "travel/beijing.jpg", "captions", "The Tower of Buddhist Incense at the Summer Palace", ("pagoda", "temple", "china")),
    ("sl:flower.jpg", "travel/garden.jpg", "sidecar-md", "# Dahlia\n\nAn orange dahlia in full bloom.", ("flower", "dahlia")),
]  # fmt: skip

QUERIES = [
    EvalQuery("our cat looking up", "photos/IMG_0412.png"),
    EvalQuery("cat eyes close up", "photos/IMG_0413.png"),
    EvalQuery("a hot drink in a mug", "photos/IMG_0415.png"),
    EvalQuery("horse", "photos/IMG_0420.png"),
    EvalQuery("spacecraft waiting to take off", "space/launch.jpg"),
    EvalQuery("female astronaut", "space/crew-portrait.png"),
    EvalQuery("distant galaxies seen by a space telescope", "space/hubble-deep-field.jpg"),
    EvalQuery("craters on the lunar surface", "space/moon.png"),
    EvalQuery("stained tissue under the microscope", "science/microscopy/sample-07.png"),
    EvalQuery("photo of the back of the eye", "science/eye/fundus.jpg"),
    EvalQuery("CT test phantom", "science/shepp-logan-phantom.png"),
    EvalQuery("brick wall background", "textures/brick-wall.png"),
    EvalQuery("green lawn", "textures/grass.png"),
    EvalQuery("small stones on a path", "textures/gravel.png"),
    EvalQuery("old money from antiquity", "misc/coins.jpg"),
    EvalQuery("man filming with a camera on a tripod", "misc/cameraman.png"),
    EvalQuery("motorbike", "misc/DSC_1123.png"),
    EvalQuery("a blurry clock", "misc/clock.png"),
    EvalQuery("rainbow of colours", "misc/color-wheel.png"),
    EvalQuery("the scikit-image logo", "branding/scikit-image-logo.png"),
    EvalQuery("maths written by hand", "misc/notes.png"),
    EvalQuery("Chinese temple by a lake", "travel/beijing.jpg"),
    EvalQuery("orange flower", "travel/garden.jpg"),
    EvalQuery("printed page explaining image segmentation", "scans/scan-003.png", needs_ocr=True),
    EvalQuery("the login screen", "screenshots/Screenshot 2024-03-01 at 10.22.13.png", needs_ocr=True),
    EvalQuery("registration form for new users", "screenshots/Screenshot 2024-03-01 at 10.25.40.png", needs_ocr=True),
    EvalQuery("installing the package in a terminal", "screenshots/Screenshot 2024-03-02 at 09.10.55.png", needs_ocr=True),
    EvalQuery("all tests passing", "screenshots/Screenshot 2024-03-02 at 09.14.02.png", needs_ocr=True),
    EvalQuery("running out of storage space", "screenshots/warning.png", needs_ocr=True),
    EvalQuery("where to turn on dark mode", "screenshots/preferences.png"),
    EvalQuery("the connection failed error", "screenshots/error-dialog.png", needs_ocr=True),
    EvalQuery("continuous integration stages from build to deploy", "diagrams/ci-pipeline.png"),
    EvalQuery("requests going through a load balancer to the database", "diagrams/architecture.png"),
    EvalQuery("chart of monthly active users", "diagrams/fig1.png", needs_ocr=True),
    EvalQuery("how many people downloaded the package each week", "diagrams/fig3.png", needs_ocr=True),
    EvalQuery("RAM consumption graph", "diagrams/fig4.png", needs_ocr=True),
    EvalQuery("database tables for customers, orders and products", "diagrams/data-model.png", needs_ocr=True),
    EvalQuery("a single cell under the microscope", "science/microscopy/sample-08.png"),
    EvalQuery("checkerboard pattern", "misc/chessboard.png"),
    EvalQuery("pie chart of browser usage", "diagrams/fig2.png"),
    EvalQuery("graph of processor temperature over time", "diagrams/cpu-temperature.png"),
]  # fmt: skip

DOCS_PAGES = {
    "space.md": """# Space

Our first mission photos.

![The cratered surface of the Moon](../library/space/moon.png)

The launch went well.
""",
    "garage.md": """# The garage

<figure markdown>
  ![A red motorcycle parked in a garage](../library/misc/DSC_1123.png){ width="400" }
</figure>

Hold the camera still:

![clock](../library/misc/clock.png)
*A wall clock, blurred by camera shake*
""",
    "settings.md": """# Settings

Open the preferences with ++ctrl+comma++.

![The preferences dialog with the dark mode switch](../library/screenshots/preferences.png)
""",
}


def _copy(source: str, dest: Path) -> Image.Image:
    kind, name = source.split(":", 1)
    if kind == "crop":
        name, box = name.split(":")
        dest.parent.mkdir(parents=True, exist_ok=True)
        img = Image.open(SKIMAGE_DATA / name)
        return img.crop(tuple(int(v) for v in box.split(",")))
    src = (SKIMAGE_DATA if kind == "sk" else SKLEARN_IMAGES) / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    img = Image.open(src)
    img.load()
    if dest.suffix.lower() == src.suffix.lower():
        shutil.copy(src, dest)
    return img


def _xmp(title: str, description: str) -> bytes:
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li></rdf:Alt></dc:description>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>""".encode()


def _describe(img: Image.Image, dest: Path, how: str, text: str, folders: dict) -> None:
    """Give ``dest`` its description the way ``how`` says (and write the image if needed)."""
    from PIL.PngImagePlugin import PngInfo

    if how == "exif":
        exif = Image.Exif()
        exif[0x010E] = text
        img.convert("RGB").save(dest, "JPEG", quality=90, exif=exif)
    elif how == "xmp":
        title, text = text.split("|")  # an XMP title and description
        if dest.suffix == ".png":
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", _xmp(title, text).decode())
            img.save(dest, pnginfo=info)
        else:
            img.save(dest, "JPEG", quality=92, xmp=_xmp(title, text))
    elif how == "png-text":
        info = PngInfo()
        info.add_text("Title", text)
        info.add_text("Software", "GIMP 2.10")
        img.save(dest, pnginfo=info)
    elif how in ("sidecar", "sidecar-md"):
        suffix = ".md" if how == "sidecar-md" else ".txt"
        dest.with_suffix(suffix).write_text(text + "\n", encoding="utf-8")
    elif how in ("captions", "captions-json"):
        folders.setdefault((dest.parent, how), {})[dest.name] = text
    if not dest.exists():
        img.save(dest)


def build_library(base: Path) -> tuple[Path, Path]:
    """Write the evaluation library under ``base``; returns ``(images root, docs folder)``."""
    root = base / "library"
    docs = base / "docs"
    folders: dict = {}
    for source, relpath, how, text, _ in PHOTOS:
        dest = root / relpath
        img = _copy(source, dest)
        _describe(img, dest, how, text, folders)
    for drawing in DRAWINGS:
        dest = root / drawing.relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        img = drawing.draw()
        if drawing.how == "png-text":
            _describe(img, dest, "png-text", drawing.text, folders)
        else:
            img.save(dest)
            _describe(img, dest, drawing.how, drawing.text, folders)
    for (folder, how), captions in folders.items():
        if how == "captions-json":
            (folder / "captions.json").write_text(json.dumps(captions, indent=1), "utf-8")
        else:
            lines = [f'"{name}": "{text}"' for name, text in captions.items()]
            (folder / "captions.yml").write_text("\n".join(lines) + "\n", "utf-8")
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS_PAGES.items():
        (docs / name).write_text(text, encoding="utf-8")
    return root, docs


def images() -> list[EvalImage]:
    """Every image of the library with its ground-truth topics."""
    out = [EvalImage(rel, topics, how) for _, rel, how, _, topics in PHOTOS]
    out += [EvalImage(d.relpath, d.topics, d.how) for d in DRAWINGS]
    return out


@dataclass
class EvalResult:
    recall_at_1: float
    recall_at_4: float
    queries: int
    misses: list[tuple[str, str, list[str]]]
    """``(query, expected, what came back)`` for queries whose image was not first."""


def evaluate(library, queries: list[EvalQuery] | None = None) -> EvalResult:
    """Recall@1 and recall@4 of ``library`` (opened on :func:`build_library`'s root)."""
    queries = QUERIES if queries is None else queries
    root = library.roots[0]
    hits1 = hits4 = 0
    misses = []
    for q in queries:
        found = [m.path.relative_to(root).as_posix() for m in library.search(q.query, k=4)]
        hits1 += bool(found) and found[0] == q.expected
        hits4 += q.expected in found
        if not found or found[0] != q.expected:
            misses.append((q.query, q.expected, found))
    n = len(queries)
    return EvalResult(hits1 / n, hits4 / n, n, misses)
