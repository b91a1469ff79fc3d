"""Regenerate the example site's images: photos from scikit-image's wheel, diagrams drawn here.

Run once by hand (`.venv/bin/python examples/make_images.py`); the results are
committed, because the plugin's cache is keyed by the images' content.  Every
image gets a sidecar caption ``NAME.txt``: what the library searches, and the
alt text when no vision model is configured.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).parent
LIBRARY = HERE / "images"
DOCS_IMG = HERE / "docs" / "img"

# (file in skimage/data, name here, the caption a writer would keep beside it)
PHOTOS = [
    ("rocket.jpg", "rocket.jpg", "A rocket standing on the launch pad, ready for lift-off"),
    ("astronaut.png", "astronaut.jpg", "An astronaut in a white spacesuit, portrait on board"),
    (
        "hubble_deep_field.jpg",
        "deep_field.jpg",
        "The Hubble deep field: thousands of distant galaxies in a tiny patch of dark sky",
    ),
    ("moon.png", "moon.jpg", "The cratered surface of the Moon, in grey"),
    ("coffee.png", "coffee.jpg", "A cup of coffee on a saucer, seen from above"),
    ("chelsea.png", "cat.jpg", "A tabby cat looking to the side"),
    (
        "camera.png",
        "camera.jpg",
        "A photographer with an old camera on a tripod, in black and white",
    ),
]


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def save_photo(source: Path, target: Path, max_side: int = 640) -> None:
    with Image.open(source) as img:
        img = img.convert("RGB")
        img.thumbnail((max_side, max_side))
        img.save(target, "JPEG", quality=85, optimize=True)


def draw_pipeline(target: Path) -> None:
    """The five steps of composition as boxes and arrows."""
    steps = ["write", "place", "caption", "retrieve", "select"]
    notes = ["the text", "where images go", "what each shows", "candidates", "the best one"]
    width, height = 960, 260
    img = Image.new("RGB", (width, height), (250, 250, 252))
    d = ImageDraw.Draw(img)
    d.text((width // 2, 34), "How a page is illustrated", fill=(40, 40, 60), font=font(28),
           anchor="mm")  # fmt: skip
    box_w, box_h, gap = 150, 80, 42
    x = (width - (5 * box_w + 4 * gap)) // 2
    y = 100
    for i, (step, note) in enumerate(zip(steps, notes, strict=True)):
        colour = (63, 81, 181) if i != 4 else (0, 137, 123)
        d.rounded_rectangle([x, y, x + box_w, y + box_h], radius=14, fill=colour)
        d.text((x + box_w // 2, y + box_h // 2), step, fill="white", font=font(24), anchor="mm")
        d.text((x + box_w // 2, y + box_h + 24), note, fill=(70, 70, 90), font=font(16),
               anchor="mm")  # fmt: skip
        if i < 4:
            ax = x + box_w + 6
            ay = y + box_h // 2
            d.line([ax, ay, ax + gap - 14, ay], fill=(120, 120, 140), width=4)
            d.polygon([(ax + gap - 12, ay - 9), (ax + gap - 2, ay), (ax + gap - 12, ay + 9)],
                      fill=(120, 120, 140))  # fmt: skip
        x += box_w + gap
    img.save(target, optimize=True)


def draw_trajectory(target: Path) -> None:
    """A rocket's path from the pad to orbit over the curve of the Earth."""
    width, height = 800, 450
    img = Image.new("RGB", (width, height), (10, 14, 40))
    d = ImageDraw.Draw(img)
    for i in range(140):  # stars, placed deterministically
        d.point(((i * 157) % width, (i * 83) % 320), fill=(200, 200, 230))
    cx, cy, r = width // 2, 1700, 1360
    orbit = r + 190

    def surface_y(x: float, radius: float) -> float:
        return cy - math.sqrt(radius * radius - (x - cx) ** 2)

    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(30, 90, 160))
    d.ellipse([cx - orbit, cy - orbit, cx + orbit, cy + orbit], outline=(120, 200, 255), width=2)
    pad = (150.0, surface_y(150, r))
    top = (600.0, surface_y(600, orbit))
    bend = (150.0, top[1])  # a quadratic curve: straight up first, level with the orbit last
    points = []
    for k in range(61):
        t = k / 60
        px = (1 - t) ** 2 * pad[0] + 2 * (1 - t) * t * bend[0] + t * t * top[0]
        py = (1 - t) ** 2 * pad[1] + 2 * (1 - t) * t * bend[1] + t * t * top[1]
        points.append((px, py))
    d.line(points, fill=(255, 200, 80), width=5, joint="curve")
    d.polygon([(top[0] + 16, top[1]), (top[0] - 4, top[1] - 9), (top[0] - 4, top[1] + 9)],
              fill=(255, 240, 200))  # fmt: skip
    d.rectangle([pad[0] - 3, pad[1] - 14, pad[0] + 3, pad[1]], fill=(230, 230, 230))
    d.text((pad[0], pad[1] + 26), "launch pad", fill="white", font=font(18), anchor="mm")
    turn = points[22]
    d.text((turn[0] - 26, turn[1] + 16), "gravity turn", fill=(255, 220, 150), font=font(18),
           anchor="rm")  # fmt: skip
    d.text((top[0] + 30, top[1] - 18), "orbit", fill=(170, 220, 255), font=font(18), anchor="lm")
    d.text((width // 2, 30), "From the pad to orbit", fill="white", font=font(26), anchor="mm")
    img.save(target, optimize=True)


COUNTDOWN_STEPS = [("T-10 min", "fuelling ends"), ("T-10 s", "ignition"), ("T-0", "lift-off"),
                   ("T+2 min", "stage separation"), ("T+9 min", "orbit")]  # fmt: skip


def write_countdown_svg(target: Path) -> None:
    """An SVG timeline of launch day (a vector diagram, as documentation sites keep them)."""
    width, height, left, step = 760, 260, 70, 155
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}">',
        "<title>Launch day countdown</title>",
        "<desc>Timeline from the end of fuelling through ignition and lift-off to orbit</desc>",
        f'<rect width="{width}" height="{height}" fill="#0d1b2a"/>',
        f'<line x1="{left}" y1="130" x2="{left + 4 * step}" y2="130" stroke="#e0e1dd" '
        'stroke-width="4"/>',
    ]
    for i, (when, what) in enumerate(COUNTDOWN_STEPS):
        x = left + i * step
        colour = "#ff6b35" if what == "lift-off" else "#48cae4"
        parts += [
            f'<circle cx="{x}" cy="130" r="16" fill="{colour}"/>',
            f'<text x="{x}" y="92" font-family="sans-serif" font-size="20" fill="#e0e1dd" '
            f'text-anchor="middle">{when}</text>',
            f'<text x="{x}" y="182" font-family="sans-serif" font-size="18" fill="#e0e1dd" '
            f'text-anchor="middle">{what}</text>',
        ]
    parts.append("</svg>")
    target.write_text("\n".join(parts) + "\n", encoding="utf-8")


def main() -> None:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    LIBRARY.mkdir(exist_ok=True)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    for source, name, caption in PHOTOS:
        save_photo(data / source, LIBRARY / name)
        (LIBRARY / name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    draw_trajectory(LIBRARY / "trajectory.png")
    (LIBRARY / "trajectory.txt").write_text(
        "Diagram of a rocket's path from the launch pad, through the gravity turn, to orbit\n",
        encoding="utf-8",
    )
    write_countdown_svg(LIBRARY / "countdown.svg")
    (LIBRARY / "countdown.txt").write_text(
        "Diagram of the launch countdown on the pad: fuelling ends, ignition, lift-off, "
        "stage separation and orbit\n",
        encoding="utf-8",
    )
    draw_pipeline(DOCS_IMG / "pipeline.png")
    (DOCS_IMG / "pipeline.txt").write_text(
        "Diagram of the five steps: write the text, place images, caption each spot, "
        "retrieve candidates, select the best one\n",
        encoding="utf-8",
    )
    print(f"images written to {LIBRARY} and {DOCS_IMG}")


if __name__ == "__main__":
    main()
