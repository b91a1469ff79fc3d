"""The composition pipeline, after InternLM-XComposer: write -> place -> caption -> retrieve -> select.

Every model answer that decides structure (headings, positions, letters) comes
from constrained decoding; free text (sections, captions) is cleaned as untrusted.
The pipeline talks to models only through a :class:`ModelCaller` (the Engine), so
it never knows which backend, recipe or cache is behind it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .article import Article, Candidate, Figure, Paragraph, render_figure
from .backends.base import GenerateRequest, Generation, ImageRef
from .config import GenerationConfig
from .errors import BackendError
from .json_input import load_json
from .options import ComposeOptions
from .placement import Placement, place_by_evidence
from .progress import Progress, ProgressCallback, ignore_progress
from .recipes import Recipe, detect_language
from .text_cleaning import (
    caption_text,
    echoes_prompt,
    heading_text,
    last_words,
    prose,
    remove_scaffolding,
    without_heading,
)

if TYPE_CHECKING:
    from .library import Library, Match

#: Bump when the pipeline's own logic (not its prompts: recipes carry their versions) changes
#: what an article comes out as, so caches of whole results (the MkDocs plugin's) renew.
PIPELINE_VERSION = 4
LETTERS = "ABCDEFGHIJ"
#: The longest heading kept; the outline grammar allows a little more so a cut is visible.
HEADING_CHARS = 60
# A heading: starts with a capital or a CJK ideograph, one line, no JSON/Markdown punctuation.
HEADING_PATTERN = r"^[A-Z\u4e00-\u9fff][^\n\r\"\[\]{}:#*`_]{2," + str(HEADING_CHARS + 9) + "}$"
#: Description sources a person wrote: a figure's caption comes from them when the image has one.
PERSON_SOURCES = ("captions-alt", "sidecar", "captions", "markdown-caption", "markdown-alt",
                  "markdown-title", "xmp-title", "xmp-description", "xmp-alt", "exif-title",
                  "exif-description", "png-title", "png-description", "comment")  # fmt: skip
CAPTION_WORDS = 20
CAPTION_TASKS = ("caption", "caption_previous", "system", "place", "place_chosen")
log = logging.getLogger("xcomposer")


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
        insist_language: bool = False,
        **fields: object,
    ) -> Generation:
        recipe = self.caller.recipe(role)
        request = recipe.build(
            task, self.lang, images=images, insist_language=insist_language, **fields
        )
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
    def _scaffolding(self, *tasks: str) -> list[str]:
        """The prompt texts of ``tasks`` (both languages): what must never reach the page."""
        recipe = self.caller.recipe("write")
        texts = []
        for task in ("system", "language", "language_strict", *tasks):
            for lang in ("en", "zh"):
                try:
                    texts.append(recipe.text(task, lang))
                except KeyError:
                    continue
        return texts

    def _in_language(self, text: str) -> bool:
        return not text.strip() or detect_language(text) == self.lang

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
        headings = [
            h
            for h in _headings_from_json(answer)
            if not echoes_prompt(h, self._scaffolding("outline"))
        ]
        dropped = opts.sections - len(headings)
        if not headings:
            headings = [heading_text(instruction)]
        self._report("outline", 1, 1, answer)

        paragraphs: list[Paragraph] = []
        title = opts.title
        if not title:
            title_answer = self._ask(
                "write",
                "title",
                instruction=instruction,
                outline="; ".join(headings),
                max_tokens=24,
                stop=("\n",),
                **lang_field,
            )
            title = heading_text(title_answer.text, cut=title_answer.truncated)
            if not title or echoes_prompt(title, self._scaffolding("title")):
                title = heading_text(instruction)

        outline = "; ".join(headings)
        tail = ""
        wrong_language = 0
        scaffolding = self._scaffolding("section", "previous")
        for i, heading in enumerate(headings):
            self._report("write", i, len(headings))
            previous = (
                self.caller.recipe("write").text("previous", self.lang).format(tail=tail)
                if tail
                else ""
            )
            fields = dict(
                instruction=instruction,
                outline=outline,
                heading=heading,
                previous=previous,
                words=opts.words,
                max_tokens=self.caller.generation.section_tokens,
                creative=True,
                **lang_field,
            )
            answer = self._ask("write", "section", **fields)
            if not self._in_language(answer.text):
                # the model wrote in another language: once more, the instruction insisted on
                retry = self._ask("write", "section", insist_language=True, **fields)
                answer = retry if self._in_language(retry.text) else answer
                wrong_language += not self._in_language(answer.text)
            text = remove_scaffolding(answer.text, scaffolding)
            blocks = prose(without_heading(text, heading), answer.truncated)
            paragraphs.append(Paragraph(heading, "heading"))
            paragraphs.extend(Paragraph(b) for b in blocks)
            tail = last_words(blocks[-1]) if blocks else tail
            self._report("write", i + 1, len(headings), answer)
        provenance: dict[str, str] = {"outline": "model"}
        if dropped > 0:
            provenance["outline"] = f"model ({dropped} empty or repeated heading(s) dropped)"
        if wrong_language:
            from .recipes import LANGUAGE_NAMES

            name = LANGUAGE_NAMES.get(self.lang, self.lang)
            provenance["language"] = (
                f"{wrong_language} of {len(headings)} section(s) not in {name}, even when asked again"
            )
            log.warning(
                "the model wrote %d of %d section(s) in another language than %s, even when "
                "asked again: use a model that writes %s",
                wrong_language,
                len(headings),
                name,
                name,
            )
        return Article(
            title=title,
            paragraphs=paragraphs,
            language=opts.language or self.lang,
            instruction=instruction,
            provenance=provenance,
        )

    # -- (b) place ----------------------------------------------------------------
    def place_images(self, article: Article, library: Library) -> list[Placement]:
        """Where pictures go and which ones, decided together from the evidence."""
        self._report("place", 0, 1)
        placements, why = place_by_evidence(
            article,
            library,
            self.options.n_images,
            exclude=set(article.used_images),
            candidates=self.options.candidates,
            min_score=self.options.min_score,
        )
        article.provenance["image_count"] = why
        self._report("place", 1, 1)
        return placements

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
            caption = caption_text(answer.text, CAPTION_WORDS, answer.truncated)
            seen = {_comparable(c) for c in captions.values()}
            echo = echoes_prompt(caption, [recipe.text(t, self.lang) for t in CAPTION_TASKS])
            if not caption or echo or _comparable(caption) in seen:
                why = (
                    "empty"
                    if not caption
                    else "prompt text echoed back"
                    if echo
                    else "a repeat of an earlier one"
                )
                caption = caption_text(spot, CAPTION_WORDS)
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
        (Used where a person chose the spot; the pipeline itself places by evidence.)
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
        """Place, caption and select images for an article whose text is final.

        Spots and pictures come from the evidence together; a figure's caption is what
        the writer's library says about the image when it says something, else the
        model's; a vision model chooses only among near-tied candidates.
        """
        placements = self.place_images(article, library)
        captions: dict[int, tuple[str, str]] = {}
        unwritten = []
        for k, placement in enumerate(placements):
            self._report("caption", k, len(placements))
            person = person_caption(placement.match)
            if person:
                captions[placement.after] = (person, "library")
            else:
                unwritten.append(placement.after)
        if unwritten:
            written = self.caption_spots(article, unwritten)
            for pos, caption in written.items():
                how = "paragraph" if f"caption_{pos}" in article.provenance else "model"
                captions[pos] = (caption, how)
        self._report("caption", len(placements), len(placements))
        for k, placement in enumerate(placements):
            pos = placement.after
            self._report("retrieve", k, len(placements))
            self._report("select", k, len(placements))
            caption, caption_how = captions[pos]
            signals = ["text-similarity", "neighbours"]
            if library.image_embedder is not None:
                signals.insert(1, "image-embedding")
            match, how = placement.match, "evidence"
            tied = placement.near_ties()
            if len(tied) > 1 and self.caller.has_vision("select"):
                query = caption_text(article.paragraphs[pos].text, CAPTION_WORDS)
                match, _ = self.select_image(article, pos, query, tied)
                how = f"model (vision, among {len(tied)} near-tied candidates)"
                signals.append("vision")
                if match.sha256 != placement.match.sha256 and caption_how == "library":
                    caption = person_caption(match) or caption
            alt, alt_how = alt_for(match)
            runner = placement.runner_up
            provenance = {
                "position": "evidence",
                "caption": caption_how,
                "image": how,
                "alt": alt_how,
                "signals": "+".join(signals),
                "score": f"{placement.score:.4f}",
                "runner_up": (
                    f"{runner.relpath or runner.path} ({placement.runner_up_score:.4f})"
                    if runner is not None
                    else "none"
                ),
            }
            article.figures.append(
                Figure(
                    after=pos,
                    image=str(match.path),
                    caption=caption,
                    alt=alt,
                    score=placement.score,
                    sha256=match.sha256,
                    candidates=[
                        Candidate(str(m.path), score, m.sha256)
                        for m, score in zip(
                            placement.candidates, placement.candidate_scores, strict=True
                        )
                    ],
                    provenance=provenance,
                )
            )
            self._report("select", k + 1, len(placements))
        article.figures.sort(key=lambda f: f.after)
        return article


def person_caption(match: Match) -> str:
    """What the writer's own description of the image says, as a clean caption ('' if none)."""
    for wanted in PERSON_SOURCES:
        for source, text in match.sources:
            if source == wanted and text.strip():
                return caption_text(text, CAPTION_WORDS)
    return ""


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
        items = load_json(answer.text)
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
        # an item as long as the grammar allows was stopped there: its last word may be partial
        heading = heading_text(str(item), HEADING_CHARS, cut=len(str(item)) > HEADING_CHARS + 8)
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


def insert_figures(
    text: str,
    article: Article,
    image_url: Callable[[Figure], str] | None = None,
    figure_markdown: Callable[[Figure], str] | None = None,
) -> str:
    """``text`` (what :func:`split_paragraphs` split into ``article``) with its figures added.

    Every character of ``text`` stays where it was: each figure is inserted, as a
    blank line and the rendered figure, right after the end of its paragraph.
    ``figure_markdown`` writes a figure a front end's own way (a notebook attachment);
    by default it is :func:`render_figure` at ``image_url``.
    """
    url_of = image_url or (lambda f: Path(f.image).as_posix())
    write = figure_markdown or (lambda f: render_figure(f, url_of(f), False))
    newline = "\r\n" if "\r\n" in text else "\n"
    ends: list[int] = []
    pos = 0
    for para in article.paragraphs:
        block = para.text.replace("\n", newline)
        found = text.find(block, pos)
        if found < 0:  # never for text split here; a changed article keeps its figures out
            ends.append(-1)
            continue
        pos = found + len(block)
        ends.append(pos)
    out, last = [], 0
    for index in sorted({f.after for f in article.figures}):
        end = ends[index] if 0 <= index < len(ends) else -1
        if end < 0:
            continue
        rendered = [write(f) for f in article.figures_after(index)]
        out.append(text[last:end])
        out.append("".join(newline * 2 + r.replace("\n", newline) for r in rendered))
        last = end
    out.append(text[last:])
    return "".join(out)
