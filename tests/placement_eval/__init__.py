"""A labelled placement set: articles a person wrote, and the library their pictures live in.

Every article is Markdown (a title, then paragraphs).  A paragraph names the
picture that belongs right after it, or none (a neutral paragraph: it needs no
picture).  All articles share one library of captioned pictures: real photos
from scikit-image and scikit-learn, and drawn images, each with the sidecar
caption a writer would keep beside it.  Distractors are pictures that belong to
no article but whose captions share words with a paragraph they do not fit
("launch" party vs rocket launch, a cat-shaped mug vs the cat).  Two articles
are about things the library does not cover: ``auto`` must give them nothing.

The placement decision only sees what the library knows of each picture (its
descriptions, and image embeddings where configured), so what matters here is
the captions; the pixels are real so that the library indexes them as any folder.
"""

from __future__ import annotations

import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"
SKLEARN_IMAGES = Path(__import__("sklearn").__file__).parent / "datasets" / "images"


@dataclass(frozen=True)
class Picture:
    name: str
    caption: str
    source: str = ""  # a file in skimage/data or sklearn's images; "" = drawn here


@dataclass(frozen=True)
class EvalArticle:
    title: str
    language: str
    paragraphs: tuple[tuple[str, str | None], ...]
    """(text, the picture that belongs right after it, or None)."""

    @property
    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n\n".join(t for t, _ in self.paragraphs) + "\n"

    @property
    def gold(self) -> dict[int, str]:
        """Paragraph index in the split Markdown (the title is 0) -> picture name."""
        return {i + 1: name for i, (_, name) in enumerate(self.paragraphs) if name}


PICTURES = [
    # space history
    Picture("astronaut.png", "An astronaut in a white spacesuit beside the flag", "astronaut.png"),
    Picture("rocket.jpg", "A rocket on the launch pad before lift-off", "rocket.jpg"),
    Picture("moon.png", "The cratered surface of the Moon in grey tones", "moon.png"),
    # a cat
    Picture("cat.png", "A tabby cat looking to the side", "chelsea.png"),
    Picture("flower.jpg", "A pink flower with a yellow centre, close up", "flower.jpg"),
    # coffee
    Picture("coffee.png", "A cup of coffee on a saucer, seen from above", "coffee.png"),
    Picture("roaster.png", "Coffee beans turning in a drum roaster"),
    Picture("coins.png", "Old coins laid out on a flat surface", "coins.png"),
    # the countryside
    Picture("horse.png", "Silhouette of a horse, drawn in black", "horse.png"),
    Picture("motorcycle.png", "A motorcycle seen from its left side", "motorcycle_left.png"),
    Picture("grass.png", "Close-up of green grass blades", "grass.png"),
    # documentation for a command-line tool
    Picture("terminal.png", "A terminal window where an install command ends with a success line"),
    Picture(
        "pipeline.png", "Diagram of three boxes, parser, planner and executor, joined by arrows"
    ),
    Picture("startup_chart.png", "Bar chart of start-up time before and after the rewrite"),
    # 长城与古建筑
    Picture("temple.jpg", "一座中国古代寺庙，红墙飞檐，掩映在树林中", "china.jpg"),
    Picture("brick.png", "一块块砖整齐砌成的砖墙纹理", "brick.png"),
    Picture("gravel.png", "地面上铺满的碎石和小石子", "gravel.png"),
    # 学习摄影
    Picture("photographer.png", "一位摄影师在草地上用三脚架上的相机拍照", "camera.png"),
    Picture("deep_field.jpg", "哈勃望远镜拍到的深空中无数遥远的星系", "hubble_deep_field.jpg"),
    Picture("exhibition.png", "展览墙上挂着一排摄影作品"),
    # 春节
    Picture("lanterns.png", "街道两旁挂着一排红灯笼"),
    Picture("dumplings.png", "一盘刚煮好的饺子"),
    Picture("fireworks.png", "夜空中绽放的五颜六色的烟花"),
    # distractors: they belong to no article, and share words with a paragraph they do not fit
    Picture("launch_party.png", "A product launch party with balloons and cake in an office"),
    Picture("cat_mug.png", "A cat-shaped coffee mug on a kitchen shelf"),
    Picture("paint_swatches.png", "Grass-green paint swatches on a designer's desk"),
    Picture("toy_horse.png", "A wooden toy horse on a child's shelf"),
    Picture("scanned_page.png", "A scanned page of an old printed document", "page.png"),
    Picture("printed_text.png", "A sample of printed text on a light background", "text.png"),
    Picture("order_flow.png", "Flow chart of a shop order: basket, payment and delivery"),
    Picture("night_moon.png", "夜空中的一弯月亮和几颗星星"),
    Picture("fire_engine.png", "一辆红色的消防车停在街道旁"),
    Picture("retina.jpg", "A photograph of the back of a human eye", "retina.jpg"),
]

ARTICLES = [
    EvalArticle(
        "A weekend at the space museum",
        "en",
        (
            (
                "Museums of spaceflight are popular with families, and many run guided "
                "tours at the weekend.",
                None,
            ),
            (
                "In 1969 the first crew walked on the lunar surface, and one of them "
                "planted the flag while wearing a bulky white pressure suit.",
                "astronaut.png",
            ),
            (
                "Before every mission the launch vehicle stands on the pad for days while "
                "engineers fuel it and check each of its stages.",
                "rocket.jpg",
            ),
            ("Tickets can be booked online, and the museum shop stays open until six.", None),
            (
                "Seen through a small telescope, the craters and dark plains of our natural "
                "satellite look surprisingly sharp.",
                "moon.png",
            ),
        ),
    ),
    EvalArticle(
        "Living with a cat",
        "en",
        (
            (
                "Our tabby spends most afternoons on the windowsill, watching birds with "
                "her ears turned forward.",
                "cat.png",
            ),
            (
                "Vets recommend a check-up once a year, even for animals that never go outside.",
                None,
            ),
            (
                "She also sniffs every potted plant, so the balcony only has harmless ones, "
                "like the pink blossoms with their yellow middles.",
                "flower.jpg",
            ),
            ("Insurance is cheaper when you sign up while the animal is young.", None),
        ),
    ),
    EvalArticle(
        "A small cafe",
        "en",
        (
            (
                "Every morning the barista pours a flat white into a wide ceramic cup and "
                "sets it on its saucer.",
                "coffee.png",
            ),
            ("Prices have risen over the last year, mostly because of transport costs.", None),
            (
                "The beans are roasted on site in small batches, tumbling in a heated drum "
                "until they crack.",
                "roaster.png",
            ),
            (
                "Many regulars still pay cash and drop a few coins into the tip jar.",
                "coins.png",
            ),
        ),
    ),
    EvalArticle(
        "Out into the countryside",
        "en",
        (
            (
                "At the stables the grey mare waits calmly while her rider tightens the saddle.",
                "horse.png",
            ),
            (
                "Others prefer an engine: on a touring motorbike the valley roads take an hour.",
                "motorcycle.png",
            ),
            ("Whichever way you travel, check the weather forecast before you leave.", None),
            (
                "In spring the meadows turn green and the blades grow knee-high along the paths.",
                "grass.png",
            ),
        ),
    ),
    EvalArticle(
        "Documenting a command-line tool",
        "en",
        (
            (
                "Good documentation starts from the reader's goal, not from the list of options.",
                None,
            ),
            (
                "Running the installer prints each step in the console and finishes with a "
                "green line saying it succeeded.",
                "terminal.png",
            ),
            (
                "Inside, the tool has three stages, a parser, a planner and an executor, each "
                "passing its result to the next.",
                "pipeline.png",
            ),
            (
                "After the rewrite the program starts in 120 milliseconds instead of 900, as "
                "the benchmark shows.",
                "startup_chart.png",
            ),
            ("Keep the changelog short and link each entry to its pull request.", None),
        ),
    ),
    EvalArticle(
        "Filing taxes as a freelancer",
        "en",
        (
            (
                "Freelancers pay tax on their profit, so keep every receipt for expenses.",
                None,
            ),
            ("Set aside a share of each invoice so the bill in spring is no surprise.", None),
            ("An accountant costs money but often finds deductions you would miss.", None),
        ),
    ),
    EvalArticle(
        "北京郊外的古迹",
        "zh",
        (
            (
                "在北京郊外的山上，一座古老的寺庙藏在树林里，红色的墙和飞檐的屋顶保存得很好。",
                "temple.jpg",
            ),
            ("参观之前最好提前在网上预约门票。", None),
            ("长城的墙体由一块块砖砌成，经过几百年的风雨，砖面已经变得粗糙。", "brick.png"),
            ("下山的小路上铺满了碎石，走起来要格外小心。", "gravel.png"),
        ),
    ),
    EvalArticle(
        "学习摄影",
        "zh",
        (
            (
                "周末我跟着一位老摄影师学习，他总是把相机稳稳地架在三脚架上，站在草地上等待光线。",
                "photographer.png",
            ),
            ("入门相机不必太贵，二手市场上有很多选择。", None),
            (
                "晚上我们去郊外拍星空，长时间曝光之后，照片里出现了无数遥远的星系。",
                "deep_field.jpg",
            ),
            ("年底，摄影社在图书馆举办了展览，墙上挂满了会员的作品。", "exhibition.png"),
        ),
    ),
    EvalArticle(
        "过春节",
        "zh",
        (
            ("除夕晚上，街道两旁挂满了红灯笼，整条街都亮了起来。", "lanterns.png"),
            ("全家人围坐在一起包饺子，奶奶包得最快。", "dumplings.png"),
            ("春运期间火车票很难买，最好提前一个月预订。", None),
            ("零点一到，夜空中绽放出五颜六色的烟花。", "fireworks.png"),
        ),
    ),
    EvalArticle(
        "个人所得税申报",
        "zh",
        (
            ("每年三月到六月是个人所得税综合所得汇算的时间。", None),
            ("申报时可以填写子女教育、住房贷款利息等专项附加扣除。", None),
            ("如果多缴了税款，可以在手机应用里申请退税。", None),
        ),
    ),
]


def _drawn(name: str) -> Image.Image:
    """A distinct picture for a name: shapes and colours seeded by it (a real PNG)."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    img = Image.new("RGB", (320, 240), tuple(int(v) for v in rng.integers(0, 256, 3)))
    d = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = (int(v) for v in rng.integers(0, 280, 2))
        w, h = (int(v) for v in rng.integers(20, 140, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            d.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            d.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
    return img


def build_library(folder: Path) -> Path:
    """The shared library: every picture with its sidecar caption (``NAME.txt``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for pic in PICTURES:
        dest = folder / pic.name
        if pic.source:
            origin = SKIMAGE_DATA / pic.source
            if not origin.exists():
                origin = SKLEARN_IMAGES / pic.source
            if origin.suffix == dest.suffix:
                shutil.copy(origin, dest)
            else:
                Image.open(origin).convert("RGB").save(dest)
        else:
            _drawn(pic.name).save(dest)
        dest.with_suffix(".txt").write_text(pic.caption + "\n", encoding="utf-8")
    return folder


@dataclass
class EvalResult:
    """Accuracy with a fixed count, precision with ``auto``, per method."""

    correct: int = 0
    gold: int = 0
    auto_correct: int = 0
    auto_placed: int = 0
    auto_found: int = 0
    seconds: float = 0.0
    articles: int = 0
    misses: list[str] | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def auto_precision(self) -> float:
        return self.auto_correct / self.auto_placed if self.auto_placed else 1.0

    @property
    def auto_recall(self) -> float:
        return self.auto_found / self.gold if self.gold else 0.0

    @property
    def seconds_per_article(self) -> float:
        return self.seconds / self.articles if self.articles else 0.0


def score_article(
    article: EvalArticle, placed: dict[int, str], result: EvalResult, auto: bool
) -> None:
    """Count one article's placements (paragraph index -> picture name) into ``result``."""
    gold = article.gold
    right = sum(1 for after, name in placed.items() if gold.get(after) == name)
    if result.misses is None:
        result.misses = []
    for after, name in placed.items():
        if gold.get(after) != name:
            result.misses.append(
                f"{'auto' if auto else 'fixed'} {article.title}: {name} after paragraph "
                f"{after} (belongs after {next((a for a, n in gold.items() if n == name), None)})"
            )
    if auto:
        result.auto_correct += right
        result.auto_placed += len(placed)
        result.auto_found += right
    else:
        result.correct += right
        result.gold += len(gold)


def pipeline_placements(engine, article: EvalArticle, library, n_images) -> dict[int, str]:  # noqa: ANN001
    """What the engine's illustrate placed: paragraph index -> picture file name."""
    out = engine.illustrate(article.markdown, library, n_images=n_images)
    return {f.after: Path(f.image).name for f in out.figures}


_CAPTION_VECTORS: dict[int, np.ndarray] = {}


def baseline_placements(embedder, article: EvalArticle, count: int | None) -> dict[int, str]:  # noqa: ANN001
    """The embedding-only baseline: MiniLM similarity of each paragraph with each caption,
    then one-to-one greedily (best pair first).  With ``count`` None (``auto``), pairs
    down to a fixed cosine of 0.4."""
    names = [p.name for p in PICTURES]
    texts = [t for t, _ in article.paragraphs]
    if id(embedder) not in _CAPTION_VECTORS:
        _CAPTION_VECTORS[id(embedder)] = embedder.embed([p.caption for p in PICTURES])
    sims = embedder.embed(texts) @ _CAPTION_VECTORS[id(embedder)].T
    order = np.dstack(np.unravel_index(np.argsort(-sims, axis=None), sims.shape))[0]
    placed: dict[int, str] = {}
    used: set[int] = set()
    limit = count if count is not None else len(texts)
    for r, c in order:
        if len(placed) >= limit:
            break
        if count is None and sims[r, c] < 0.4:
            break
        if r + 1 in placed or c in used:
            continue
        placed[int(r) + 1] = names[c]
        used.add(int(c))
    return placed


def evaluate(engine: Any, library: Any) -> tuple[EvalResult, EvalResult]:
    """(pipeline, baseline) over every article: fixed counts and ``auto``, each timed
    (the test asserts the floors on them, bench/placement.py reports them)."""
    pipeline, baseline = EvalResult(), EvalResult()
    embedder = library.text_embedder
    for article in ARTICLES:
        count = len(article.gold)
        started = time.perf_counter()
        if count:
            placed = pipeline_placements(engine, article, library, count)
            score_article(article, placed, pipeline, auto=False)
        placed = pipeline_placements(engine, article, library, "auto")
        pipeline.seconds += time.perf_counter() - started
        pipeline.articles += 1
        score_article(article, placed, pipeline, auto=True)

        started = time.perf_counter()
        if count:
            score_article(article, baseline_placements(embedder, article, count), baseline, False)
        score_article(article, baseline_placements(embedder, article, None), baseline, True)
        baseline.seconds += time.perf_counter() - started
        baseline.articles += 1
    return pipeline, baseline
