"""Screenshots, charts and diagrams drawn with Pillow for the library evaluation.

They carry their meaning in the text they show, as real ones do; some get a
caption, others are only findable by reading that text (OCR).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _window(
    title: str, size: tuple[int, int] = (640, 420)
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", size, (246, 246, 248))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, size[0], 34], fill=(60, 64, 72))
    for i, colour in enumerate([(237, 94, 86), (246, 190, 79), (98, 197, 84)]):
        d.ellipse([10 + 20 * i, 11, 22 + 20 * i, 23], fill=colour)
    d.text((80, 8), title, fill=(235, 235, 235), font=font(18))
    return img, d


def login_screen() -> Image.Image:
    img, d = _window("Acme Cloud")
    d.text((220, 60), "Sign in to your account", fill=(20, 20, 20), font=font(26))
    for y, label in ((120, "Email address"), (210, "Password")):
        d.text((170, y), label, fill=(60, 60, 60), font=font(20))
        d.rectangle([170, y + 30, 470, y + 68], outline=(150, 150, 150), fill="white", width=2)
    d.rounded_rectangle([170, 310, 470, 352], radius=8, fill=(40, 110, 220))
    d.text((285, 318), "Log in", fill="white", font=font(22))
    d.text((240, 370), "Forgot your password?", fill=(40, 110, 220), font=font(18))
    return img


def signup_screen() -> Image.Image:
    img, d = _window("Acme Cloud")
    d.text((200, 50), "Create your free account", fill=(20, 20, 20), font=font(26))
    for y, label in ((100, "Full name"), (175, "Email address"), (250, "Choose a password")):
        d.text((170, y), label, fill=(60, 60, 60), font=font(20))
        d.rectangle([170, y + 28, 470, y + 62], outline=(150, 150, 150), fill="white", width=2)
    d.rounded_rectangle([170, 340, 470, 382], radius=8, fill=(30, 160, 90))
    d.text((280, 348), "Sign up", fill="white", font=font(22))
    return img


def _console(lines: list[tuple[str, tuple[int, int, int]]]) -> Image.Image:
    img = Image.new("RGB", (720, 300), (24, 24, 28))
    d = ImageDraw.Draw(img)
    for i, (text, colour) in enumerate(lines):
        d.text((20, 24 + 40 * i), text, fill=colour, font=font(20))
    return img


def test_run() -> Image.Image:
    return _console(
        [
            ("$ make test", (120, 220, 120)),
            ("pytest tests/ -q", (220, 220, 220)),
            ("........................................ [100%]", (220, 220, 220)),
            ("40 passed in 3.21s", (120, 220, 120)),
        ]
    )


def terminal() -> Image.Image:
    img = Image.new("RGB", (720, 300), (24, 24, 28))
    d = ImageDraw.Draw(img)
    lines = [
        ("$ python -m venv .venv && source .venv/bin/activate", (120, 220, 120)),
        ("$ pip install mkdocs-xcomposer", (120, 220, 120)),
        ("Collecting mkdocs-xcomposer", (220, 220, 220)),
        ("Downloading mkdocs_xcomposer-0.1.0-py3-none-any.whl", (220, 220, 220)),
        ("Installing collected packages: mkdocs-xcomposer", (220, 220, 220)),
        ("Successfully installed mkdocs-xcomposer-0.1.0", (220, 220, 220)),
    ]
    for i, (text, colour) in enumerate(lines):
        d.text((20, 24 + 40 * i), text, fill=colour, font=font(20))
    return img


def preferences() -> Image.Image:
    img, d = _window("Preferences")
    rows = [("Dark mode", True), ("Show line numbers", False), ("Auto save", True)]
    for i, (label, on) in enumerate(rows):
        y = 80 + 70 * i
        d.text((60, y), label, fill=(20, 20, 20), font=font(24))
        d.rounded_rectangle(
            [480, y, 540, y + 30], radius=15, fill=(40, 170, 90) if on else (190, 190, 190)
        )
        d.ellipse([512 if on else 482, y + 2, 538 if on else 508, y + 28], fill="white")
    d.text((60, 310), "Font size: 14", fill=(20, 20, 20), font=font(24))
    return img


def error_dialog() -> Image.Image:
    img, d = _window("Error", (560, 260))
    d.ellipse([40, 80, 100, 140], fill=(220, 50, 50))
    d.text((62, 88), "!", fill="white", font=font(40))
    d.text((130, 80), "Connection refused", fill=(20, 20, 20), font=font(28))
    d.text((130, 125), "Could not reach the server.", fill=(70, 70, 70), font=font(20))
    d.rounded_rectangle([380, 190, 520, 230], radius=6, fill=(40, 110, 220))
    d.text((425, 198), "Retry", fill="white", font=font(20))
    return img


def disk_full_dialog() -> Image.Image:
    img, d = _window("Warning", (560, 260))
    d.polygon([(70, 80), (40, 140), (100, 140)], fill=(240, 180, 40))
    d.text((130, 80), "Your disk is almost full", fill=(20, 20, 20), font=font(28))
    d.text((130, 125), "Free up storage space to continue.", fill=(70, 70, 70), font=font(20))
    d.rounded_rectangle([360, 190, 520, 230], radius=6, fill=(40, 110, 220))
    d.text((385, 198), "Manage storage", fill="white", font=font(18))
    return img


def _box(d: ImageDraw.ImageDraw, xy: tuple[int, int, int, int], label: str, fill: tuple) -> None:
    d.rounded_rectangle(xy, radius=10, fill=fill, outline=(40, 40, 40), width=2)
    w = d.textlength(label, font=font(20))
    d.text(
        ((xy[0] + xy[2] - w) / 2, (xy[1] + xy[3]) / 2 - 12), label, fill=(20, 20, 20), font=font(20)
    )


def _arrow(d: ImageDraw.ImageDraw, a: tuple[int, int], b: tuple[int, int]) -> None:
    d.line([a, b], fill=(40, 40, 40), width=3)
    d.polygon([b, (b[0] - 12, b[1] - 7), (b[0] - 12, b[1] + 7)], fill=(40, 40, 40))


def ci_pipeline() -> Image.Image:
    img = Image.new("RGB", (820, 200), "white")
    d = ImageDraw.Draw(img)
    stages = ["Commit", "Build", "Test", "Deploy"]
    for i, stage in enumerate(stages):
        x = 20 + 200 * i
        _box(d, (x, 70, x + 160, 130), stage, (200, 225, 250))
        if i:
            _arrow(d, (x - 40, 100), (x, 100))
    return img


def architecture() -> Image.Image:
    img = Image.new("RGB", (760, 420), "white")
    d = ImageDraw.Draw(img)
    _box(d, (20, 180, 160, 240), "Client", (230, 230, 230))
    _box(d, (220, 180, 380, 240), "Load balancer", (250, 220, 180))
    _box(d, (440, 80, 580, 140), "App server 1", (200, 230, 200))
    _box(d, (440, 280, 580, 340), "App server 2", (200, 230, 200))
    _box(d, (620, 180, 750, 240), "Database", (200, 210, 250))
    _arrow(d, (160, 210), (220, 210))
    _arrow(d, (380, 200), (440, 110))
    _arrow(d, (380, 220), (440, 310))
    _arrow(d, (580, 110), (640, 180))
    _arrow(d, (580, 310), (640, 240))
    return img


def data_model() -> Image.Image:
    img = Image.new("RGB", (760, 300), "white")
    d = ImageDraw.Draw(img)
    for x, name, fields in ((20, "Customer", "id, name, email"), (280, "Order", "id, date, total"),
                            (540, "Product", "id, title, price")):  # fmt: skip
        d.rectangle([x, 60, x + 200, 220], outline=(40, 40, 40), width=2)
        d.rectangle([x, 60, x + 200, 100], fill=(220, 220, 240), outline=(40, 40, 40), width=2)
        d.text((x + 14, 68), name, fill=(20, 20, 20), font=font(22))
        for i, field in enumerate(fields.split(", ")):
            d.text((x + 14, 112 + 32 * i), field, fill=(40, 40, 40), font=font(18))
    _arrow(d, (220, 140), (280, 140))
    _arrow(d, (480, 140), (540, 140))
    return img


def _chart_axes(d: ImageDraw.ImageDraw, title: str, w: int, h: int) -> None:
    d.text((60, 14), title, fill=(20, 20, 20), font=font(24))
    d.line([(60, 60), (60, h - 50), (w - 20, h - 50)], fill=(40, 40, 40), width=2)


def bar_chart() -> Image.Image:
    w, h = 700, 420
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    _chart_axes(d, "Monthly active users", w, h)
    values = [120, 150, 170, 160, 210, 260]
    for i, (month, v) in enumerate(
        zip(["Jan", "Feb", "Mar", "Apr", "May", "Jun"], values, strict=True)
    ):
        x = 90 + 95 * i
        d.rectangle([x, h - 50 - v, x + 60, h - 50], fill=(70, 130, 200))
        d.text((x + 12, h - 40), month, fill=(20, 20, 20), font=font(18))
    return img


def downloads_chart() -> Image.Image:
    w, h = 700, 420
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    _chart_axes(d, "Weekly downloads from PyPI", w, h)
    for i, v in enumerate([40, 80, 75, 140, 190, 230, 250, 300]):
        x = 80 + 72 * i
        d.rectangle([x, h - 50 - v, x + 48, h - 50], fill=(90, 170, 90))
        d.text((x + 4, h - 40), f"W{i + 1}", fill=(20, 20, 20), font=font(18))
    return img


def pie_chart() -> Image.Image:
    img = Image.new("RGB", (600, 400), "white")
    d = ImageDraw.Draw(img)
    parts = [("Chrome", 65, (66, 133, 244)), ("Safari", 19, (90, 200, 250)),
             ("Edge", 5, (0, 120, 215)), ("Firefox", 3, (255, 120, 0))]  # fmt: skip
    start = -90.0
    for i, (label, share, colour) in enumerate(parts):
        end = start + share / sum(p[1] for p in parts) * 360
        d.pieslice([40, 60, 320, 340], start, end, fill=colour)
        start = end
        d.rectangle([380, 100 + 50 * i, 400, 120 + 50 * i], fill=colour)
        d.text((415, 98 + 50 * i), f"{label} {share}%", fill=(20, 20, 20), font=font(20))
    return img


def line_chart(title: str = "CPU temperature (°C)", colour: tuple = (220, 60, 60)) -> Image.Image:
    w, h = 700, 400
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    _chart_axes(d, title, w, h)
    points = [(60 + 20 * i, h - 80 - int(120 * abs(((i % 14) - 7) / 7))) for i in range(31)]
    d.line(points, fill=colour, width=3)
    d.text((w - 120, h - 40), "time (min)", fill=(20, 20, 20), font=font(18))
    return img


def memory_chart() -> Image.Image:
    return line_chart("Memory usage (MB)", (60, 90, 220))


@dataclass(frozen=True)
class Drawing:
    relpath: str
    how: str
    text: str
    topics: tuple[str, ...]
    draw: Callable[[], Image.Image]


DRAWINGS = [
    Drawing("screenshots/Screenshot 2024-03-01 at 10.22.13.png", "ocr", "", ("login", "form", "screenshot"), login_screen),
    Drawing("screenshots/Screenshot 2024-03-01 at 10.25.40.png", "ocr", "", ("signup", "form", "screenshot"), signup_screen),
    Drawing("screenshots/Screenshot 2024-03-02 at 09.10.55.png", "ocr", "", ("terminal", "install"), terminal),
    Drawing("screenshots/Screenshot 2024-03-02 at 09.14.02.png", "ocr", "", ("terminal", "tests"), test_run),
    Drawing("screenshots/warning.png", "filename", "", ("warning", "disk"), disk_full_dialog),
    Drawing("screenshots/preferences.png", "markdown", "The preferences dialog with the dark mode switch", ("settings", "dark mode"), preferences),
    Drawing("screenshots/error-dialog.png", "filename", "", ("error", "dialog"), error_dialog),
    Drawing("diagrams/ci-pipeline.png", "sidecar", "Our CI: every commit is built, tested and deployed", ("ci", "pipeline"), ci_pipeline),
    Drawing("diagrams/architecture.png", "captions", "System overview: clients, load balancer, two app servers, database", ("architecture", "servers"), architecture),
    Drawing("diagrams/data-model.png", "ocr", "", ("database", "schema"), data_model),
    Drawing("diagrams/fig1.png", "ocr", "", ("chart", "users"), bar_chart),
    Drawing("diagrams/fig3.png", "ocr", "", ("chart", "downloads"), downloads_chart),
    Drawing("diagrams/fig4.png", "ocr", "", ("chart", "memory"), memory_chart),
    Drawing("diagrams/fig2.png", "png-text", "Browser market share, 2024", ("chart", "browsers"), pie_chart),
    Drawing("diagrams/cpu-temperature.png", "filename", "", ("chart", "temperature"), line_chart),
]  # fmt: skip
