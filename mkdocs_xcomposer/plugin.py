"""The ``xcomposer`` MkDocs plugin: compose blocks become illustrated pages, reproducibly.

A thin adapter over the engine.  The work happens in ``on_files``, before any
page is rendered or written: every block of every page is checked, looked up in
the block cache, and the missing ones composed (concurrently, or under
``mkdocs serve`` in the background).  A block that fails stops the build
before a single page is written, with ``page.md:LINE`` and the fix.  Pages are
then rendered by the ``xcomposer`` Markdown extension (extension.py), which the
plugin adds to the site's Markdown with its own results: the same renderer that
Zensical runs from the committed cache.

Outside MkDocs (``standalone``) the same class, configured from the site's config
file and frozen, is the extension's source of cached blocks (standalone.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, get_plugin_logger
from mkdocs.structure.files import Files, InclusionLevel
from mkdocs.utils.meta import get_data

from . import engine_state, page_blocks
from .alt_text import MissingAlt, find_missing
from .block_cache import BlockCache
from .blocks import Block, BlockError, each_error, find_blocks
from .config import DEFAULT_CACHE_DIR, OLD_CACHE_DIR, XComposerConfig, resolve_frozen
from .engine_state import EngineFacts
from .extension import NoticePart, PageRef, Replacement, XComposerExtension
from .fingerprint import Fingerprints
from .jobs import BuildSettings, Job, Outcome, Workshop
from .page_text import lines_before, shown
from .render import FigureStyle
from .site_files import SiteImages, is_sidecar
from .spec import BlockSpec, Folders, build_spec

log = get_plugin_logger(__name__)


def each_message(err: BlockError) -> list[str]:
    return [str(e) for e in each_error(err)]


class XComposerPlugin(BasePlugin[XComposerConfig]):
    """Expands ``/// compose``, ``/// illustrate`` and ``/// describe`` blocks."""

    def __init__(self) -> None:
        self.serving = False
        self.standalone = False
        """Configured outside MkDocs (the Markdown extension's cache, ``xcomposer site``)."""
        self.on_missing = "fail"
        """Standalone: a block missing from the cache fails (``fail``) or shows a notice."""
        #: Backends by name that replace the configured ones (tests, embedding applications).
        self.backends: dict[str, Any] | None = None
        self.fingerprints = Fingerprints()
        self.engines: Any = None
        """The live engines (``engines.Engines``), created when something must be composed."""
        self.facts: EngineFacts | None = None
        self._engine_key: Any = None
        self.workshop: Workshop | None = None
        self.folders: Folders | None = None
        self.images: SiteImages | None = None
        self.style = FigureStyle()
        self.outcomes: dict[str, Outcome] = {}
        self.specs: dict[str, BlockSpec] = {}
        self.page_jobs: dict[tuple[str, int, str], list[tuple[Block | MissingAlt, Job]]] = {}
        self.calls_before = 0
        self.counts: Counter[str] = Counter()
        self.failed = False
        self.frozen = False
        self._page_index: dict[str, str] | None = None

    # Runs once per process.  Defining it makes MkDocs keep this instance across the
    # rebuilds of `mkdocs serve`, so background compositions, loaded models and file
    # hashes survive an edit.
    def on_startup(self, *, command: str, dirty: bool) -> None:
        self.serving = command == "serve"

    # Runs when mkdocs.yml is loaded (again on every serve rebuild): paths are resolved
    # relative to mkdocs.yml and the engine config is checked before any page is read;
    # the Markdown extension joins the site's extensions, fed by this plugin.
    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        if not self.config.enabled:
            return config
        config_file = Path(config.config_file_path or "mkdocs.yml").resolve()
        self.configure(config_file, Path(config.docs_dir).resolve())
        # A site that lists the extension too (for Zensical) renders it once, from here.
        extensions = config.markdown_extensions
        for name in ("xcomposer", "mkdocs_xcomposer.extension"):
            while name in extensions:
                extensions.remove(name)
            config.mdx_configs.pop(name, None)
        extensions[:] = [e for e in extensions if not isinstance(e, XComposerExtension)]
        extensions.append(XComposerExtension(source=self))
        return config

    def configure(self, config_file: Path, docs_dir: Path, frozen: bool | None = None) -> None:
        """Resolve paths against the site config's folder, check the engine settings."""
        config_dir = config_file.parent
        library = []
        for folder in self.config.library:
            path = (config_dir / folder).resolve()
            if not path.is_dir():
                what = "is a file, not a folder" if path.exists() else "does not exist"
                raise PluginError(
                    f"xcomposer: library folder '{folder}' {what} (relative to "
                    f"{config_dir}); fix 'library:' in {config_file.name}"
                )
            library.append(path)
        cache_dir = (config_dir / self.config.cache_dir).resolve()
        _migration_notice(config_dir, self.config.cache_dir)
        frozen = resolve_frozen(self.config.frozen) if frozen is None else frozen
        self.frozen = frozen
        facts, roots = self._engine_facts(config_dir, cache_dir, frozen)
        library += [Path(r) for r in roots if Path(r) not in library]
        self.facts = facts
        self.folders = Folders(config_dir, docs_dir, tuple(library))
        self.images = SiteImages(docs_dir, tuple(library))
        self._page_index = None
        self.style = FigureStyle(
            self.config.figure_class, self.config.image_width, self.config.figure_caption
        )
        if self.standalone:
            fill = f"xcomposer site fill {shown(str(config_file))}"
        else:
            fill = f"XCOMPOSER_FROZEN=0 mkdocs build -f {shown(str(config_file))}"
        settings = BuildSettings(
            BlockCache(cache_dir),
            facts,
            lambda: self._live_engines(config_dir, cache_dir, frozen),
            self.folders,
            self.fingerprints,
            frozen,
            fill,
        )
        if self.workshop is None:
            self.workshop = Workshop(settings)
        self.workshop.settings = settings

    def _engine_facts(
        self, config_dir: Path, cache_dir: Path, frozen: bool
    ) -> tuple[EngineFacts, list[str]]:
        """The engine's identity and model fingerprints: remembered from an earlier build when
        nothing they derive from changed (no engine import), else from the live engine."""
        sig = engine_state.signature(self.config, config_dir, cache_dir)
        if self.engines is not None and self._engine_key == (sig, frozen, self._backends_key()):
            return self.engines, list(self.engines.config.library.roots)
        if self.backends is None:
            remembered = engine_state.load(cache_dir, sig)
            if remembered is not None:
                self._close_engines()
                return remembered, remembered.library_roots
        engines = self._live_engines(config_dir, cache_dir, frozen)
        roots = list(engines.config.library.roots)
        if self.backends is None:
            engine_state.store(cache_dir, sig, engines, roots)
        return engines, roots

    def _live_engines(self, config_dir: Path, cache_dir: Path, frozen: bool) -> Any:
        """The live engines for these settings (this imports the engine)."""
        from xcomposer import XComposerError

        from .engines import Engines, engine_config

        sig = engine_state.signature(self.config, config_dir, cache_dir)
        key = (sig, frozen, self._backends_key())
        if self.engines is not None and self._engine_key == key:
            return self.engines
        try:
            engine_cfg = engine_config(self.config, config_dir, cache_dir, frozen)
        except XComposerError as err:
            raise PluginError(f"xcomposer: mkdocs.yml: {err}") from None
        self._close_engines()
        self.engines = Engines(engine_cfg, self.backends)
        self._engine_key = key
        return self.engines

    def _backends_key(self) -> tuple:
        # By the backends' identities: live engines hold them, so the ids stay unique.
        return tuple(sorted((k, id(v)) for k, v in (self.backends or {}).items()))

    def _close_engines(self) -> None:
        if self.engines is not None:
            self.engines.close()
        self.engines, self._engine_key = None, None

    def model_calls(self) -> int:
        """Real model calls made so far by the live engines (none if none was needed)."""
        return self.engines.model_calls() if self.engines is not None else 0

    # Runs at the start of every build: per-build state starts empty.
    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        self.begin_build()

    def begin_build(self) -> None:
        self.outcomes = {}
        self.specs = {}
        self.page_jobs = {}
        self.calls_before = self.model_calls()
        self.counts = Counter()
        self.failed = False
        self._page_index = None
        self.fingerprints.begin_build()
        if self.workshop is not None:
            self.workshop.cache.reset_used()

    # Runs once the site's files are known and before any page is rendered: the whole
    # site's blocks are checked and composed here, so a failure stops the build before
    # anything is written, blocks compose concurrently, and the library images they
    # show can still join the site's files (caption sidecars leave them).
    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files | None:
        if not self.config.enabled:
            return files
        assert self.images is not None and self.folders is not None
        pages = []
        for file in files.documentation_pages(inclusion=InclusionLevel.is_in_serve):
            try:
                pages.append((file.src_uri, Path(file.abs_src_path or ""), file.content_string))
            except (OSError, ValueError):
                continue  # MkDocs reports unreadable pages itself
        for job, outcome in self.resolve_site(pages):
            spec = self.specs.get(job.digest)
            if spec is None or outcome.result is None:
                continue
            for image in page_blocks.images_of(self, spec, outcome.result):
                self.images.file_for(image, files, config)
        if not self.config.publish_sidecars:
            # Sidecars of the configured library and of every folder a block draws from.
            block_dirs = {d for spec in self.specs.values() for d in spec.image_dirs}
            library = (*self.folders.library, *sorted(block_dirs - set(self.folders.library)))
            if self.config.alt_text == "missing":  # alt text is read from docs_dir's sidecars
                library = (*library, self.folders.docs_dir)
            for file in list(files):
                if file.abs_src_path and is_sidecar(Path(file.abs_src_path), library):
                    files.remove(file)
        return files

    def resolve_site(self, pages: list[tuple[str, Path, str]]) -> list[tuple[Job, Outcome]]:
        """Check and resolve every block of ``(src_uri, path, raw text)`` pages: all problems
        are reported together, before any page is rendered."""
        assert self.workshop is not None
        errors: list[str] = []
        jobs: list[Job] = []
        for src_uri, path, raw in pages:
            # The Markdown exactly as the page events will get it: front matter removed.
            markdown, _ = get_data(raw)
            try:
                page_jobs = self._page_jobs(markdown, src_uri, path, lines_before(raw, markdown))
            except BlockError as err:
                errors.extend(each_message(err))
                continue
            jobs.extend(job for _, job in page_jobs)
        if errors:
            self._fail(errors)
        outcomes = self.workshop.resolve(jobs, background=self.serving)
        self.outcomes.update(outcomes)
        unique = {j.digest: j for j in jobs}
        for job in unique.values():
            outcome = outcomes[job.digest]
            self.counts[f"alt {outcome.state}" if job.kind == "alt" else outcome.state] += 1
            if outcome.state in ("missing", "failed"):
                if job.kind == "alt":
                    log.warning("%s", outcome.error)
                else:
                    errors.append(outcome.error or f"{job.where}: failed")
            elif outcome.result is not None and job.kind in ("compose", "illustrate"):
                _warn_shortfalls(job, outcome.result)
        if errors and not (self.standalone and self.on_missing == "notice"):
            self._fail(errors)
        return [(job, outcomes[job.digest]) for job in unique.values()]

    def _page_jobs(
        self, markdown: str, page: str, path: Path, line_offset: int = 0
    ) -> list[tuple[Block | MissingAlt, Job]]:
        """The page's blocks and images without alt text, as jobs (remembered per build)."""
        key = (page, line_offset, markdown)
        if key not in self.page_jobs:
            self.page_jobs[key] = self._find_jobs(markdown, page, path, line_offset)
        return self.page_jobs[key]

    def _find_jobs(
        self, markdown: str, page: str, path: Path, line_offset: int
    ) -> list[tuple[Block | MissingAlt, Job]]:
        assert self.workshop is not None and self.folders is not None and self.facts
        blocks = find_blocks(markdown, page, line_offset)
        found: list[tuple[Block | MissingAlt, Job]] = []
        errors: list[BlockError] = []
        for block in blocks:
            try:
                spec = build_spec(block, self.folders, self.facts.backend_names)
            except BlockError as err:
                errors.append(err)
                continue
            found.append((block, self.workshop.job_for(spec)))
            self.specs[found[-1][1].digest] = spec
        if errors:
            from .blocks import BlockErrors

            raise BlockErrors(errors)
        if self.config.alt_text == "missing":
            spans = [(b.start, b.end) for b in blocks]
            for missing in find_missing(markdown, path, self.folders.docs_dir, spans):
                where = f"{page}:{missing.line + line_offset}"
                if missing.image is None:
                    log.warning("%s: %s", where, missing.problem)
                    continue
                found.append((missing, self.workshop.alt_job(where, missing.image)))
        found.sort(key=lambda item: item[0].start)
        return found

    # -- the Markdown extension's source of rendered blocks (see page_blocks) -------------
    def page_of(self, md: Any, markdown: str) -> PageRef | None:
        return page_blocks.page_of(self, md, markdown)

    def replacements(self, markdown: str, page: PageRef) -> list[Replacement]:
        return page_blocks.replacements(self, markdown, page)

    def jobs_of_page(self, markdown: str, page: PageRef) -> list[tuple[Block | MissingAlt, Job]]:
        return page_blocks.jobs_of_page(self, markdown, page)

    def missing_block(self, job: Job, outcome: Outcome) -> NoticePart:
        return page_blocks.missing_block(self, job, outcome)

    def page_index(self) -> dict[str, str]:
        return page_blocks.page_index(self)

    # Runs after every page is written: the summary, then the cache entries no page used
    # are removed (only after a full, successful build, and never while serve composes).
    def on_post_build(self, *, config: MkDocsConfig) -> None:
        if not self.config.enabled or self.workshop is None:
            return
        c = self.counts
        blocks = c["cached"] + c["composed"] + c["pending"] + c["failed"] + c["missing"]
        if blocks or c["alt filled"]:
            calls = self.model_calls() - self.calls_before
            log.info(
                "%d block(s): %d composed, %d from cache, %d being composed, %d failed; "
                "%d alt text(s) filled; %d model call(s)",
                blocks,
                c["composed"],
                c["cached"],
                c["pending"],
                c["failed"] + c["missing"],
                c["alt filled"],
                calls,
            )
        if self.config.prune and not self.failed and self.workshop.pending() == 0:
            removed = self.workshop.cache.prune()
            if removed:
                log.info("removed %d cache entr(ies) no page uses any more", len(removed))

    # Runs when a build fails: nothing to undo (no page was half written), only noted.
    def on_build_error(self, *, error: Exception) -> None:
        self.failed = True

    # Runs once when `mkdocs serve` starts watching: the library folders and the block
    # cache are watched too, so a new image or a block finished in the background
    # triggers a rebuild and the page reloads.
    def on_serve(self, server: Any, *, config: MkDocsConfig, builder: Any) -> Any:
        if not self.config.enabled or self.workshop is None or self.folders is None:
            return server
        for folder in self.folders.library:
            if not folder.is_relative_to(self.folders.docs_dir):
                server.watch(str(folder))
        self.workshop.cache.ensure_layout()
        server.watch(str(self.workshop.cache.blocks))
        return server

    # Runs when the process ends: background threads stop, models are released.
    def on_shutdown(self) -> None:
        if self.workshop is not None:
            self.workshop.shutdown()
        self._close_engines()

    def _fail(self, errors: list[str]) -> Any:
        self.failed = True
        if self.standalone:
            from xcomposer import InputError

            raise InputError("xcomposer: " + "\n  ".join(errors))
        if len(errors) == 1:
            raise PluginError(f"xcomposer: {errors[0]}")
        listed = "\n  ".join(errors)
        raise PluginError(f"xcomposer: {len(errors)} blocks failed:\n  {listed}")


def _warn_shortfalls(job: Job, result: dict[str, Any]) -> None:
    for key, note in sorted(result.get("provenance", {}).items()):
        if key.startswith("figure_") or key == "image_count" and "asked" in str(note):
            log.warning("%s: %s", job.where, note)


def _migration_notice(config_dir: Path, cache_dir: str) -> None:
    old = config_dir / OLD_CACHE_DIR / "blocks"
    if cache_dir == DEFAULT_CACHE_DIR and old.is_dir() and not (config_dir / cache_dir).exists():
        log.warning(
            "the block cache moved out of .cache/ (Zensical's --clean deletes it): "
            "run `git mv %s/blocks %s/blocks` beside %s",
            OLD_CACHE_DIR,
            DEFAULT_CACHE_DIR,
            "the site config",
        )
