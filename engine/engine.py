"""The Engine: one config, its backends, the result cache, and the public operations."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .answers import admit_answer
from .article import Article
from .backends import Backend, GenerateRequest, Generation, Health, create_backend
from .cache import ResultCache
from .compose import Composer, split_paragraphs
from .config import BackendConfig, EngineConfig, GenerationConfig
from .describe import describe_image
from .editing import EditOperations
from .errors import CacheMissError, InputError, XComposerError
from .identity import ROLES, engine_identity, recipe_for
from .jobs import run_all
from .options import ComposeOptions, DescribeOptions, IllustrateOptions
from .progress import Progress, ProgressCallback, ignore_progress
from .recipes import Recipe, detect_language

if TYPE_CHECKING:
    from .library import Library, Match

log = logging.getLogger("xcomposer")
OptionsGiven = Mapping[str, Any] | None


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


class Engine(EditOperations):
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
        return recipe_for(self.config.backend_for(role)[1])

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

    def identity(self) -> dict[str, Any]:
        """Every setting that decides this engine's output (no model needed): see
        :func:`xcomposer.engine_identity`.  Key caches of whole results on it."""
        return engine_identity(self.config)

    def model_fingerprints(self) -> dict[str, Any]:
        """Per role, the identity of the model files themselves (needs the files, not a load)."""
        return {role: self._fingerprint(role) for role in ROLES}

    def concurrency(self, role: str | None = None) -> int:
        """How many calls ``role``'s backend takes at once (1 for a local model); without a
        role, how many jobs may run at once: the least of every role's backend."""
        roles = ROLES if role is None else (role,)
        return max(1, min(self.backend(r).concurrency for r in roles))

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
        options: ComposeOptions | OptionsGiven = None,
        *,
        progress: ProgressCallback = ignore_progress,
        **values: Any,
    ) -> Article:
        """Write an illustrated article for ``instruction`` with images from ``library``.

        ``options`` and ``values`` (``n_images=2, candidates=4 ...``) are
        :class:`~xcomposer.ComposeOptions`; a bad one raises :class:`~xcomposer.OptionError`.
        """
        instruction = (instruction or "").strip()
        if not instruction:
            raise InputError(
                "the instruction is empty",
                'say what to write, e.g. "Write a short article about lighthouses"',
            )
        opts = ComposeOptions.parse(options, **values)
        lib = self.open_library(library, progress)
        composer = self._composer(opts, instruction, progress)
        article = composer.write_article(instruction)
        composer.illustrate(article, lib, self._alt_writer())
        article.provenance["recipe"] = self.recipe("write").key
        progress(Progress("done", 1, 1))
        return article

    def compose_many(
        self,
        instructions: Iterable[str],
        library: Any = None,
        options: ComposeOptions | OptionsGiven = None,
        *,
        progress: ProgressCallback = ignore_progress,
        **values: Any,
    ) -> list[Article]:
        """Several articles, as jobs: concurrently up to the write backend's concurrency.

        The first failure cancels the others (between model calls) and is raised.
        """
        items = list(instructions)
        opts = ComposeOptions.parse(options, **values)
        lib = self.open_library(library)
        works = [
            lambda report, text=text: self.compose(text, lib, opts, progress=report)
            for text in items
        ]
        return run_all(works, self.concurrency(), name="compose", progress=progress)

    def illustrate(
        self,
        text: str,
        library: Any = None,
        options: IllustrateOptions | OptionsGiven = None,
        *,
        progress: ProgressCallback = ignore_progress,
        **values: Any,
    ) -> Article:
        """Images for text a person wrote: the text stays word for word, only figures are added.

        ``options`` and ``values`` are :class:`~xcomposer.IllustrateOptions`.
        """
        if not (text or "").strip():
            raise InputError("the text to illustrate is empty", "give the paragraphs to illustrate")
        given = IllustrateOptions.parse(options, **values)
        opts = ComposeOptions.model_construct(**given.model_dump(), title="")
        lib = self.open_library(library, progress)
        article = Article(title="", paragraphs=split_paragraphs(text), instruction="")
        composer = self._composer(opts, text, progress)
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

    def alt_text(self, image: str | Path) -> tuple[str, str]:
        """Alt text for one image, and where it came from (``model`` or ``library``).

        The vision model's when the describe role has one; else the library's words for
        the image (a sidecar, an alt text or a caption a person wrote), never a text made
        of its file name alone: no description is an :class:`InputError` with the fix.
        """
        path = Path(image)
        if self.has_vision("describe"):
            return self.describe(path, style="alt"), "model"
        match = self.open_library([path.parent]).entry(path)
        described = match is not None and any(source != "filename" for source, _ in match.sources)
        text = (match.alt or match.description).strip() if described and match else ""
        if not text:
            raise InputError(
                f"no description of image {path.name} to write its alt text from",
                f"write the alt text, add a sidecar {path.stem}.txt, or configure a vision model",
            )
        return text, "library"

    # -- describing --------------------------------------------------------------------
    def describe(
        self,
        image: str | Path,
        question: str | None = None,
        options: DescribeOptions | OptionsGiven = None,
        *,
        progress: ProgressCallback = ignore_progress,
        **values: Any,
    ) -> str:
        """A caption, alt text, explanation, or an answer to ``question`` about one image.

        ``options`` and ``values`` (``style="alt", language="en"``) are
        :class:`~xcomposer.DescribeOptions`.
        """
        opts = DescribeOptions.parse(options, question=question, **values)
        question = opts.question
        lang = opts.language or (detect_language(question) if question else "en")
        progress(Progress("describe", 0, 1))
        text = describe_image(
            self, image, question, opts.style, lang if lang in ("en", "zh") else "en"
        )
        progress(Progress("describe", 1, 1))
        return text


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
