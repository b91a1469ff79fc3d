"""The Engine: one config, its backends, the result cache, and the public operations."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import edit
from .answers import admit_answer
from .article import Article, Candidate, Figure
from .backends import Backend, GenerateRequest, Generation, Health, create_backend
from .cache import ResultCache
from .compose import ComposeOptions, Composer, split_paragraphs
from .config import BackendConfig, EngineConfig, GenerationConfig
from .describe import DescribeStyle, describe_image
from .errors import CacheMissError, InputError, XComposerError
from .progress import Progress, ProgressCallback, ignore_progress
from .recipes import Recipe, detect_language, load_recipe

if TYPE_CHECKING:
    from .library import Library, Match

log = logging.getLogger("xcomposer")
ROLES = ("write", "place", "caption", "select", "describe")


@dataclass
class CallStats:
    """What the engine's model calls cost; ``model_calls`` counts real backend calls only."""

    model_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    evaluated_prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, answer: Generation) -> None:
        with self._lock:
            if answer.cached:
                self.cache_hits += 1
                return
            self.model_calls += 1
            self.prompt_tokens += answer.prompt_tokens
            self.evaluated_prompt_tokens += answer.evaluated_prompt_tokens
            self.completion_tokens += answer.completion_tokens
            self.generation_seconds += answer.seconds

    def summary(self) -> str:
        return f"{self.model_calls} model call(s), {self.cache_hits} answer(s) from the cache"


class Engine:
    """Composes illustrated articles and describes images with the configured models.

    Models load on first use; answers are cached by content, so the same inputs
    never call a model twice.  Thread-safe: local backends serialise their calls.
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        cache: ResultCache | None = None,
        backends: Mapping[str, Backend] | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.cache = cache or ResultCache(self.config.resolved_cache_dir())
        self.stats = CallStats()
        self._backends: dict[str, Backend] = dict(backends or {})
        self._fingerprints: dict[str, Any] = {}
        self._libraries: dict[tuple[str, ...], Library] = {}
        self._lock = threading.RLock()

    # -- models ---------------------------------------------------------------
    @property
    def generation(self) -> GenerationConfig:
        """Sampling settings (the pipeline reads them through the ModelCaller protocol)."""
        return self.config.generation

    def _backend_named(self, name: str, cfg: BackendConfig) -> Backend:
        with self._lock:
            if name not in self._backends:
                self._backends[name] = create_backend(cfg)
            return self._backends[name]

    def backend(self, role: str) -> Backend:
        """The backend that serves ``role`` (``write``, ``place``, ``caption``, ``select``, ``describe``)."""
        name, cfg = self.config.backend_for(role)
        return self._backend_named(name, cfg)

    def recipe(self, role: str) -> Recipe:
        _, cfg = self.config.backend_for(role)
        name = cfg.recipe
        if name == "auto":
            # the model's own name (file, folder or repo), never the folders above it
            model = Path(cfg.model or "").name.lower()
            # a server applies the model's own template: it only ever takes chat messages
            served = cfg.backend == "openai"
            name = "xcomposer2" if "xcomposer" in model and not served else "chat"
        return load_recipe(name)

    def has_vision(self, role: str) -> bool:
        return self.backend(role).has_vision

    def _fingerprint(self, role: str) -> Any:
        name, _ = self.config.backend_for(role)
        if name not in self._fingerprints:
            self._fingerprints[name] = self.backend(role).fingerprint()
        return self._fingerprints[name]

    def fingerprint(self, role: str = "write") -> dict[str, Any]:
        """What identifies ``role``'s answers: backend, model file identity and recipe version."""
        return {"backend": self._fingerprint(role), "recipe": self.recipe(role).key}

    def ask(self, role: str, request: GenerateRequest) -> Generation:
        """One model call through the cache (frozen mode: the cache or an error)."""
        key = {
            "v": 1,
            "backend": self._fingerprint(role),
            "recipe": self.recipe(role).key,
            "request": request.cache_payload(),
        }
        hit = self.cache.get(key)
        if hit is not None:
            answer = Generation(
                text=hit["text"],
                completion_tokens=hit.get("completion_tokens", 0),
                truncated=hit.get("truncated", False),
                cached=True,
            )
            admit_answer(answer, request)  # entries written before this check was made
        elif self.config.frozen:
            raise CacheMissError(
                "frozen mode: this model answer is not in the cache",
                "run once with a model available (without frozen/CI) and commit the cache",
            )
        else:
            answer = admit_answer(self.backend(role).generate(request), request)
            _check_constrained(request, answer)
            self.cache.put(
                key,
                {
                    "text": answer.text,
                    "completion_tokens": answer.completion_tokens,
                    "truncated": answer.truncated,
                },
            )
        self.stats.add(answer)
        return answer

    def models(self) -> list[tuple[str, str, Health]]:
        """(name, roles, health) for the main backend and every named one."""
        roles = {
            name: [r for r in ROLES if self.config.backend_for(r)[0] == name]
            for name in ["main", *self.config.backends]
        }
        rows = []
        for name, cfg in [("main", self.config.backend), *self.config.backends.items()]:
            try:
                health = self._backend_named(name, cfg).health()
            except XComposerError as err:
                health = Health(False, cfg.backend, cfg.model or "?", str(err))
            rows.append((name, ", ".join(roles[name]) or "-", health))
        return rows

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        for library in self._libraries.values():
            library.close()

    # -- library ----------------------------------------------------------------
    def open_library(
        self, library: Any = None, progress: ProgressCallback = ignore_progress
    ) -> Library:
        """An up-to-date index of ``library`` (a Library, a folder or folders; default: config roots)."""
        from .library import Library

        if isinstance(library, Library):
            return library
        if library is None:
            roots = list(self.config.library.roots)
        elif isinstance(library, (str, Path)):
            roots = [library]
        else:
            roots = list(library)
        if not roots:
            raise InputError(
                "no image library given", "pass --images DIR or set library.roots in the config"
            )
        key = tuple(str(Path(r).resolve()) for r in roots)
        with self._lock:
            lib = self._libraries.get(key)
            if lib is None:
                lib = Library.open(
                    [Path(r) for r in roots],
                    self.config.library,
                    cache=self.cache,
                    describe_image=self._library_captioner(),
                )
                self._libraries[key] = lib
            # Every call: a long-lived engine (Jupyter, mkdocs serve) sees images added since;
            # an unchanged folder costs a stat per file (0.47 s at 10,000 images).
            lib.update(progress)
            if len(lib) == 0:
                raise InputError(
                    f"image folder {', '.join(key)} has no usable images",
                    "add PNG, JPEG, WebP or GIF files (`xcomposer index DIR` lists skipped ones)",
                )
            return lib

    def _library_captioner(self) -> Any:
        """With a vision model, the library asks it for a caption of each image (cached by hash)."""
        try:
            vision = self.has_vision("describe")
        except XComposerError:
            vision = False
        if not vision:
            return None

        def caption(path: Path) -> str:
            return self.describe(path, style="caption")

        caption.fingerprint = lambda: self.fingerprint("describe")  # type: ignore[attr-defined]
        return caption

    # -- composing ------------------------------------------------------------------
    def _composer(self, options: ComposeOptions, text: str, progress: ProgressCallback) -> Composer:
        lang = options.language or detect_language(text)
        lang = lang if lang in ("en", "zh") else "en"
        return Composer(self, options, lang, progress)

    def compose(
        self,
        instruction: str,
        library: Any = None,
        *,
        n_images: int | Literal["auto"] = "auto",
        candidates: int = 4,
        language: str | None = None,
        sections: int = 4,
        words: int = 80,
        seed: int | None = None,
        title: str | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """Write an illustrated article for ``instruction`` with images from ``library``."""
        instruction = (instruction or "").strip()
        if not instruction:
            raise InputError(
                "the instruction is empty",
                'say what to write, e.g. "Write a short article about lighthouses"',
            )
        options = _options(n_images, candidates, language, sections, words, seed, title)
        lib = self.open_library(library, progress)
        composer = self._composer(options, instruction, progress)
        article = composer.write_article(instruction)
        composer.illustrate(article, lib, self._alt_writer())
        article.provenance["recipe"] = self.recipe("write").key
        progress(Progress("done", 1, 1))
        return article

    def compose_many(
        self, instructions: Iterable[str], library: Any = None, **options: Any
    ) -> list[Article]:
        """Several articles; with a remote backend they run concurrently up to its bound."""
        items = list(instructions)
        lib = self.open_library(library)
        workers = max(1, min(self.backend("write").concurrency, len(items)))
        if workers == 1:
            return [self.compose(i, lib, **options) for i in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda i: self.compose(i, lib, **options), items))

    def illustrate(
        self,
        text: str,
        library: Any = None,
        *,
        n_images: int | Literal["auto"] = "auto",
        candidates: int = 4,
        seed: int | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """Images for text a person wrote: the text stays word for word, only figures are added."""
        if not (text or "").strip():
            raise InputError("the text to illustrate is empty", "give the paragraphs to illustrate")
        options = _options(n_images, candidates, None, 4, 80, seed, "")
        lib = self.open_library(library, progress)
        article = Article(title="", paragraphs=split_paragraphs(text), instruction="")
        composer = self._composer(options, text, progress)
        composer.illustrate(article, lib, self._alt_writer())
        progress(Progress("done", 1, 1))
        return article

    def _alt_writer(self) -> Any:
        """Alt text says what the image shows: the vision model's, else the library's best description."""

        def alt_for(match: Match) -> tuple[str, str]:
            if self.has_vision("describe"):
                return self.describe(match.path, style="alt"), "model"
            if match.alt:
                return match.alt, "library"
            return Path(match.path).stem.replace("_", " ").replace("-", " "), "file name"

        return alt_for

    # -- describing --------------------------------------------------------------------
    def describe(
        self,
        image: str | Path,
        question: str | None = None,
        *,
        style: DescribeStyle = "caption",
        language: str | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> str:
        """A caption, alt text, explanation, or an answer to ``question`` about one image."""
        lang = language or (detect_language(question) if question else "en")
        progress(Progress("describe", 0, 1))
        text = describe_image(self, image, question, style, lang if lang in ("en", "zh") else "en")
        progress(Progress("describe", 1, 1))
        return text

    # -- editing ------------------------------------------------------------------------
    def _edit_composer(
        self, article: Article, seed: int | None, progress: ProgressCallback, **kw: Any
    ) -> Composer:
        text = article.instruction or " ".join(p.text for p in article.paragraphs[:3])
        options = _options(
            kw.get("n_images", 1),
            kw.get("candidates", 4),
            article.language,
            4,
            80,
            seed,
            article.title,
        )
        return self._composer(options, text, progress)

    def rewrite_paragraph(
        self,
        article: Article,
        index: int,
        how: str = "",
        *,
        seed: int | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """Paragraph ``index`` rewritten (``how``: an optional direction, e.g. "for beginners")."""
        return edit.rewrite_paragraph(
            self._edit_composer(article, seed, progress), article, index, "rewrite", how
        )

    def expand_paragraph(
        self,
        article: Article,
        index: int,
        *,
        seed: int | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        return edit.rewrite_paragraph(
            self._edit_composer(article, seed, progress), article, index, "expand"
        )

    def shorten_paragraph(
        self,
        article: Article,
        index: int,
        *,
        seed: int | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        return edit.rewrite_paragraph(
            self._edit_composer(article, seed, progress), article, index, "shorten"
        )

    def insert_paragraph(
        self,
        article: Article,
        after: int,
        topic: str,
        *,
        seed: int | None = None,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        return edit.insert_paragraph(
            self._edit_composer(article, seed, progress), article, after, topic
        )

    def insert_image(
        self,
        article: Article,
        after: int,
        library: Any = None,
        *,
        candidates: int = 4,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """An image after text paragraph ``after``: captioned, retrieved and selected like in compose."""
        edit.check_text_paragraph(article, after)
        lib = self.open_library(library, progress)
        composer = self._edit_composer(article, None, progress, candidates=candidates)
        new = copy.deepcopy(article)
        caption = composer.caption_spots(new, [after])[after]
        return self._place_figure(composer, new, lib, after, caption, exclude=set(new.used_images))

    def replace_image(
        self,
        article: Article,
        figure: int,
        library: Any = None,
        *,
        candidates: int = 4,
        progress: ProgressCallback = ignore_progress,
    ) -> Article:
        """Figure ``figure`` swapped for a new choice among fresh candidates for its caption."""
        edit.check_figure(article, figure)
        lib = self.open_library(library, progress)
        composer = self._edit_composer(article, None, progress, candidates=candidates)
        new = copy.deepcopy(article)
        old = new.figures.pop(figure)
        return self._place_figure(
            composer, new, lib, old.after, old.caption, exclude=set(article.used_images)
        )

    def remove_image(self, article: Article, figure: int) -> Article:
        return edit.remove_image(article, figure)

    def _place_figure(
        self,
        composer: Composer,
        article: Article,
        lib: Library,
        after: int,
        caption: str,
        exclude: set[str],
    ) -> Article:
        candidates = composer.retrieve_candidates(
            lib, caption, article.paragraphs[after].text, exclude
        )
        if not candidates:
            raise InputError(
                "no unused image is left in the library for this spot", "add images to the library"
            )
        match, how = composer.select_image(article, after, caption, candidates)
        alt, alt_how = self._alt_writer()(match)
        article.figures.append(
            Figure(
                after=after,
                image=str(match.path),
                caption=caption,
                alt=alt,
                score=round(float(match.score), 4),
                sha256=match.sha256,
                candidates=[
                    Candidate(str(m.path), round(float(m.score), 4), m.sha256) for m in candidates
                ],
                provenance={"position": "person", "caption": "model", "image": how, "alt": alt_how},
            )
        )
        article.figures.sort(key=lambda f: f.after)
        return article


def _options(
    n_images: Any,
    candidates: int,
    language: str | None,
    sections: int,
    words: int,
    seed: int | None,
    title: str | None,
) -> ComposeOptions:
    if n_images != "auto":
        try:
            n_images = int(n_images)
        except (TypeError, ValueError):
            raise InputError(
                f"number of images '{n_images}' is not a number", "give a number or 'auto'"
            ) from None
        if n_images < 0:
            raise InputError(
                f"number of images {n_images} is negative", "give 0 or more, or 'auto'"
            )
    if candidates < 1:
        raise InputError(
            f"candidates {candidates} must be at least 1", "give 1 or more (default 4)"
        )
    if not 1 <= sections <= 12:
        raise InputError(f"sections {sections} is out of range", "give 1 to 12")
    if words < 10:
        raise InputError(f"words {words} is too few", "give at least 10 words per section")
    return ComposeOptions(n_images, candidates, language, sections, words, seed, title)


def _check_constrained(request: GenerateRequest, answer: Generation) -> None:
    """A constrained answer that breaks its constraint is a backend bug, never silently repaired."""
    from .errors import BackendError

    if request.choices is not None and answer.text not in request.choices:
        raise BackendError(
            f"the model answered {answer.text[:40]!r} where it was constrained to one of {list(request.choices)}",
            "this backend ignored the constraint; use a backend that supports grammars or structured output",
        )
    if request.json_schema is not None:
        from .backends.structured import check_answer

        text, why = check_answer(answer.text, request)
        if text is None:
            cut = " (cut off at max_tokens)" if answer.truncated else ""
            raise BackendError(
                f"the model's answer breaks the JSON schema it was constrained to{cut}: {why}",
                "use a backend that supports grammars or structured output, or a stronger model",
            )
        answer.text = text
