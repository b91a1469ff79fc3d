"""The composition pipeline, after InternLM-XComposer: write -> place -> caption -> retrieve -> select.

Every model answer that decides structure (headings, positions, letters) comes
from constrained decoding; free text (sections, captions) is cleaned as untrusted.
The pipeline talks to models only through a :class:`ModelCaller` (the Engine), so
it never knows which backend, recipe or cache is behind it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from .article import Article, Candidate, Figure, Paragraph
from .backends.base import GenerateRequest, Generation, ImageRef
from .config import GenerationConfig
from .errors import BackendError
from .options import ComposeOptions
from .progress import Progress, ProgressCallback, ignore_progress
from .recipes import Recipe
from .text_cleaning import first_sentence, last_words, one_line, prose

if TYPE_CHECKING:
    from .library import Library, Match

#: Bump when the pipeline's own logic (not its prompts: recipes carry their versions) changes
#: what an article comes out as, so caches of whole results (the MkDocs plugin's) renew.
PIPELINE_VERSION = 3
LETTERS = "ABCDEFGHIJ"
MAX_AUTO_IMAGES = 4
# A heading: starts with a capital or a CJK ideograph, one line, no JSON/Markdown punctuation.
HEADING_PATTERN = r"^[A-Z\u4e00-\u9fff][^\n\r\"\[\]{}:#*]{2,50}$"


class ModelCaller(Protocol):
    """What the pipeline needs from the engine."""

    generation: GenerationConfig

    def recipe(self, role: str) -> Recipe: ...

    def ask(self, role: str, request: GenerateRequest) -> Generation: ...

    def has_vision(self, role: str) -> bool: ...


class Composer:
    """One run of the pipeline for one article."""

    def __init__(
        self,
        caller: ModelCaller,
        options: ComposeOptions,
        lang: str,
        progress: ProgressCallback = ignore_progress,
    ) -> None:
        self.caller = caller
        self.options = options
        self.lang = lang
        self.progress = progress
        gen = caller.generation
        self.seed = gen.seed if options.seed is None else options.seed

    # -- plumbing -------------------------------------------------------------
    def _ask(
        self,
        role: str,
        task: str,
        *,
        images: tuple[ImageRef, ...] = (),
        max_tokens: int = 64,
        choices: Sequence[str] | None = None,
        json_schema: dict | None = None,
        stop: tuple[str, ...] = (),
        creative: bool = False,
        repeat_penalty: float | None = None,
        **fields: object,
    ) -> Generation:
        recipe = self.caller.recipe(role)
        request = recipe.build(task, self.lang, images=images, **fields)
        gen = self.caller.generation
        request = replace(
            request,
            max_tokens=max_tokens,
            choices=tuple(choices) if choices is not None else None,
            json_schema=json_schema,
            stop=stop,
            seed=self.seed,
            # Structured answers are greedy; prose samples with the configured settings.
            temperature=gen.temperature if creative else 0.0,
            top_p=gen.top_p if creative else 1.0,
            repeat_penalty=repeat_penalty or (gen.repeat_penalty if creative else 1.0),
        )
        return self.caller.ask(role, request)

    def _report(self, stage: str, done: int, total: int, answer: Generation | None = None) -> None:
        speed = answer.tokens_per_s if answer is not None else None
        self.progress(Progress(stage, done, total, speed))

    # -- (a) write --------------------------------------------------------------
    def write_article(self, instruction: str) -> Article:
        """Outline first, then each section on its own (small models loop on long outputs)."""
        opts = self.options
        lang_field = {"language": opts.language} if opts.language else {}
        self._report("outline", 0, 1)
        schema = {
            "type": "array",
            "items": {"type": "string", "pattern": HEADING_PATTERN},
            "minItems": opts.sections,
            "maxItems": opts.sections,
        }
        answer = self._ask(
            "write",
            "outline",
            instruction=instruction,
            sections=opts.sections,
            json_schema=schema,
            # a cap, not a target: the grammar ends the list; CJK headings take ~3 tokens a character
            max_tokens=160 * opts.sections,
            creative=True,
            repeat_penalty=1.1,
            **lang_field,
        )
        headings = _headings_from_json(answer)
        dropped = opts.sections - len(headings)
        if not headings:
            headings = [one_line(instruction, 10)]
        self._report("outline", 1, 1, answer)

        title = opts.title
        if not title:
            title_answer = self._ask(
                "write",
                "title",
                instruction=instruction,
                max_tokens=24,
                stop=("\n",),
                **lang_field,
            )
            title = one_line(title_answer.text, 12) or one_line(instruction, 12)

        paragraphs: list[Paragraph] = []
        outline = "; ".join(headings)
        tail = ""
        for i, heading in enumerate(headings):
            self._report("write", i, len(headings))
            previous = (
                self.caller.recipe("write").text("previous", self.lang).format(tail=tail)
                if tail
                else ""
            )
            answer = self._ask(
                "write",
                "section",
                instruction=instruction,
                outline=outline,
                heading=heading,
                previous=previous,
                words=opts.words,
                max_tokens=self.caller.generation.section_tokens,
                creative=True,
                **lang_field,
            )
            blocks = prose(answer.text, answer.truncated)
            paragraphs.append(Paragraph(heading, "heading"))
            paragraphs.extend(Paragraph(b) for b in blocks)
            tail = last_words(blocks[-1]) if blocks else tail
            self._report("write", i + 1, len(headings), answer)
        provenance = {"outline": "model"}
        if dropped > 0:
            provenance["outline"] = f"model ({dropped} empty or repeated heading(s) dropped)"
        return Article(
            title=title,
            paragraphs=paragraphs,
            language=opts.language or self.lang,
            instruction=instruction,
            provenance=provenance,
        )

    # -- (b) place ----------------------------------------------------------------
    def place_images(self, article: Article, n_images: int | Literal["auto"]) -> list[int]:
        """Paragraph indices after which an image goes, chosen one at a time by the model."""
        eligible = [i for i, p in enumerate(article.paragraphs) if p.kind == "text"]
        if not eligible:
            return []
        numbered = self.caller.recipe("place").numbered(
            [article.paragraphs[i].text for i in eligible]
        )
        if n_images == "auto":
            upper = min(len(eligible), MAX_AUTO_IMAGES)
            answer = self._ask(
                "place",
                "place_count",
                numbered=numbered,
                max=upper,
                choices=[str(k) for k in range(1, upper + 1)],
                max_tokens=4,
            )
            count = int(answer.text)
            article.provenance["image_count"] = "model"
        else:
            count = min(int(n_images), len(eligible))
            if count < int(n_images):
                article.provenance["image_count"] = (
                    f"{n_images} asked, {count} placed: the article has {len(eligible)} paragraphs"
                )
        chosen: list[int] = []  # 1-based numbers as shown to the model
        for k in range(count):
            self._report("place", k, count)
            remaining = [str(n) for n in range(1, len(eligible) + 1) if n not in chosen]
            note = ""
            if chosen:
                listed = ", ".join(str(n) for n in sorted(chosen))
                note = (
                    self.caller.recipe("place")
                    .text("place_chosen", self.lang)
                    .format(chosen=listed)
                )
            answer = self._ask(
                "place",
                "place",
                numbered=numbered,
                chosen=note + ("\n" if note else ""),
                choices=remaining,
                max_tokens=4,
            )
            chosen.append(int(answer.text))
            self._report("place", k + 1, count, answer)
        return sorted(eligible[n - 1] for n in chosen)

    # -- (c) caption ----------------------------------------------------------------
    def caption_spots(self, article: Article, positions: Sequence[int]) -> dict[int, str]:
        """A caption (the retrieval query) per spot, from the text up to the paragraph after it,
        the captions already written, and the spot's own paragraph quoted last.

        A caption that repeats an earlier one (small models copy) is replaced by the spot
        paragraph's first sentence, and the figure's provenance says so.
        """
        captions: dict[int, str] = {}
        recipe = self.caller.recipe("caption")
        for k, pos in enumerate(positions):
            self._report("caption", k, len(positions))
            previous = ""
            if captions:
                listed = "; ".join(f'"{c}"' for c in captions.values())
                previous = recipe.text("caption_previous", self.lang).format(captions=listed)
            number = sum(1 for p in article.paragraphs[: pos + 1] if p.kind == "text")
            spot = article.paragraphs[pos].text
            # the text paragraphs through the one after the spot, numbered as the place step
            # showed them: the prompt then starts like the place prompts (llama.cpp reuses it)
            texts = [p.text for p in article.paragraphs if p.kind == "text"][: number + 1]
            answer = self._ask(
                "caption",
                "caption",
                numbered=recipe.numbered(texts),
                context=_context(article, pos + 1),
                previous=previous,
                index=number,
                spot=spot,
                max_tokens=40,
                stop=("\n",),
            )
            caption = one_line(first_sentence(one_line(answer.text)), 20)
            seen = {_comparable(c) for c in captions.values()}
            if not caption or _comparable(caption) in seen:
                why = "empty" if not caption else "a repeat of an earlier one"
                caption = one_line(first_sentence(spot), 20)
                article.provenance[f"caption_{pos}"] = (
                    f"paragraph text (the model's caption was {why})"
                )
            captions[pos] = caption
            self._report("caption", k + 1, len(positions), answer)
        return captions

    # -- (d) retrieve ------------------------------------------------------------------
    def retrieve_candidates(
        self, library: Library, caption: str, spot: str, used: set[str]
    ) -> list[Match]:
        """The best ``candidates`` images for a spot, never one already in the article.

        The query is the caption followed by the spot's own paragraph: a small model's
        caption alone is too weak a query, and the paragraph is what the image must fit.
        """
        query = f"{caption}\n{spot}" if spot and spot not in caption else caption
        return library.search(query, k=self.options.candidates, exclude=used)

    # -- (e) select -----------------------------------------------------------------
    def select_image(
        self, article: Article, pos: int, caption: str, candidates: list[Match]
    ) -> tuple[Match, str]:
        """The vision model picks a letter; without vision the best retrieval score wins."""
        if len(candidates) == 1 or not self.caller.has_vision("select"):
            return candidates[0], "retrieval-score"
        letters = LETTERS[: len(candidates)]
        recipe = self.caller.recipe("select")
        lines = "\n".join(recipe.text("candidate", self.lang).format(letter=x) for x in letters)
        images = tuple(ImageRef(Path(m.path), m.sha256) for m in candidates)
        answer = self._ask(
            "select",
            "select",
            images=images,
            context=_context(article, pos),
            caption=caption,
            candidates=lines,
            choices=list(letters),
            max_tokens=4,
        )
        return candidates[letters.index(answer.text)], "model"

    # -- the whole run ------------------------------------------------------------------
    def illustrate(
        self,
        article: Article,
        library: Library,
        alt_for: AltWriter,
    ) -> Article:
        """Place, caption, retrieve and select images for an article whose text is final."""
        positions = self.place_images(article, self.options.n_images)
        captions = self.caption_spots(article, positions)
        used = set(article.used_images)
        for k, pos in enumerate(positions):
            self._report("retrieve", k, len(positions))
            candidates = self.retrieve_candidates(
                library, captions[pos], article.paragraphs[pos].text, used
            )
            if not candidates:
                article.provenance[f"figure_{pos}"] = "no unused image left in the library"
                continue
            self._report("select", k, len(positions))
            match, how = self.select_image(article, pos, captions[pos], candidates)
            used.add(match.sha256)
            alt, alt_how = alt_for(match)
            article.figures.append(
                Figure(
                    after=pos,
                    image=str(match.path),
                    caption=captions[pos],
                    alt=alt,
                    score=round(float(match.score), 4),
                    sha256=match.sha256,
                    candidates=[
                        Candidate(str(m.path), round(float(m.score), 4), m.sha256)
                        for m in candidates
                    ],
                    provenance={
                        "position": "model",
                        "caption": (
                            "paragraph" if f"caption_{pos}" in article.provenance else "model"
                        ),
                        "image": how,
                        "alt": alt_how,
                    },
                )
            )
            self._report("select", k + 1, len(positions))
        article.figures.sort(key=lambda f: f.after)
        return article


class AltWriter(Protocol):
    def __call__(self, match: Match) -> tuple[str, str]: ...


def _comparable(text: str) -> str:
    """Text as compared for repeats: case, spacing and punctuation ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", text).casefold().split())


def _context(article: Article, until: int) -> str:
    """The article's text through paragraph ``until`` (headings included), for prompts."""
    until = min(until, len(article.paragraphs) - 1)
    return "\n".join(p.text for p in article.paragraphs[: until + 1])


def _headings_from_json(answer: Generation) -> list[str]:
    """Headings from the constrained outline answer, cleaned; blank and repeated ones dropped."""
    try:
        items = json.loads(answer.text)
    except ValueError:
        if answer.truncated:
            raise BackendError(
                f"the model's outline was cut off at {answer.completion_tokens} tokens",
                "use fewer sections, or a model that writes shorter headings",
            ) from None
        raise BackendError(
            "the model's outline was not the JSON it was constrained to",
            "this backend ignores constraints; pick another backend or model",
        ) from None
    headings: list[str] = []
    for item in items if isinstance(items, list) else []:
        heading = one_line(str(item), 10)
        if len(heading) >= 2 and heading.casefold() not in {h.casefold() for h in headings}:
            headings.append(heading)
    return headings


def split_paragraphs(text: str) -> list[Paragraph]:
    """A person's Markdown as blocks, each kept word for word.

    Prose blocks are ``text`` (they can take an image after them); headings, code
    fences, tables, lists, quotes and raw HTML are ``verbatim`` (kept, never illustrated).
    """
    blocks: list[list[str]] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
            current.append(line)
            continue
        if fence is None and not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        current.append(line)
    if current:
        blocks.append(current)
    paragraphs = []
    for lines in blocks:
        block = "\n".join(lines)
        first = block.lstrip()
        structural = first.startswith(("#", "```", "~~~", "|", "<", ">", "- ", "* ", "+ ", "    "))
        structural = structural or bool(re.match(r"\d+[.)] ", first))
        paragraphs.append(Paragraph(block, "verbatim" if structural else "text"))
    return paragraphs
