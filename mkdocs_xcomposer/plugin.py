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
from functools import partial
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, get_plugin_logger
from mkdocs.structure.files import Files, InclusionLevel
from mkdocs.utils.meta import get_data
from xcomposer import (  # the package is lazy: none of these imports pydantic
    EngineFacts,
    FolderFingerprints,
    MissingAlt,
    Outcome,
    ProjectEngines,
    ResultStore,
    Task,
    Workshop,
    WorkshopSettings,
    describes_an_image,
    images_without_alt,
)

from . import page_blocks
from .blocks import Block, BlockError, each_error, find_blocks
from .config import DEFAULT_CACHE_DIR, OLD_CACHE_DIR, XComposerConfig, resolve_frozen
from .engine_config import facts_signature_of
from .extension import PageRef, Replacement, XComposerExtension
from .page_text import lines_before, shown
from .render import FigureStyle
from .site_files import SiteImages
from .spec import BlockSpec, Folders, build_spec
from .tasks import alt_task, block_task

log = get_plugin_logger(__name__)
STATE_FILE = "plugin-state.json"
"""The remembered engine facts (``xcomposer.recall_facts``), in the cache's local index/."""


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
        self.fingerprints = FolderFingerprints()
        self.project = ProjectEngines()
        """The engine facts, and the live engines once something must be composed."""
        self.workshop: Workshop | None = None
        self.folders: Folders | None = None
        self.images: SiteImages | None = None
        self.style = FigureStyle()
        self.outcomes: dict[str, Outcome] = {}
        self.specs: dict[str, BlockSpec] = {}
        self.page_tasks: dict[tuple[str, int, str], list[tuple[Block | MissingAlt, Task]]] = {}
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
        store = ResultStore((config_dir / self.config.cache_dir).resolve())
        _migration_notice(config_dir, self.config.cache_dir)
        frozen = resolve_frozen(self.config.frozen) if frozen is None else frozen
        self.frozen = frozen
        sig = facts_signature_of(self.config, config_dir, store, frozen)
        make_config = partial(self._engine_config, config_dir, store, frozen)
        project = self.project
        facts = project.facts(sig, make_config, store.index_dir / STATE_FILE, self.backends)
        library += [Path(r) for r in facts.library_roots if Path(r) not in library]
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
        settings = WorkshopSettings(
            store,
            facts,
            lambda: project.live(sig, make_config, self.backends),
            frozen,
            fill,
            self.folders.portable(store.results),
        )
        if self.workshop is None:
            self.workshop = Workshop(settings, log)
        self.workshop.settings = settings

    @property
    def facts(self) -> EngineFacts:
        """The engine facts of this build (the workshop's)."""
        assert self.workshop is not None
        return self.workshop.settings.facts

    def _engine_config(self, config_dir: Path, store: ResultStore, frozen: bool) -> Any:
        """The EngineConfig of these settings (this imports the engine)."""
        from xcomposer import XComposerError

        from .engine_config import engine_config

        try:
            return engine_config(self.config, config_dir, store, frozen)
        except XComposerError as err:
            raise PluginError(f"xcomposer: mkdocs.yml: {err}") from None

    def model_calls(self) -> int:
        """Real model calls made so far by the live engines (none if none was needed)."""
        return self.project.model_calls()

    # Runs at the start of every build: per-build state starts empty.
    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        self.begin_build()

    def begin_build(self) -> None:
        self.outcomes = {}
        self.specs = {}
        self.page_tasks = {}
        self.calls_before = self.model_calls()
        self.counts = Counter()
        self.failed = False
        self._page_index = None
        self.fingerprints.forget()
        if self.workshop is not None:
            self.workshop.store.reset_used()

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
        for task, outcome in self.resolve_site(pages):
            spec = self.specs.get(task.digest)
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
                path = Path(file.abs_src_path or "")
                if any(path.is_relative_to(r) for r in library) and describes_an_image(path):
                    files.remove(file)
        return files

    def resolve_site(self, pages: list[tuple[str, Path, str]]) -> list[tuple[Task, Outcome]]:
        """Check and resolve every block of ``(src_uri, path, raw text)`` pages: all problems
        are reported together, before any page is rendered."""
        assert self.workshop is not None
        errors: list[str] = []
        tasks: list[Task] = []
        for src_uri, path, raw in pages:
            # The Markdown exactly as the page events will get it: front matter removed.
            markdown, _ = get_data(raw)
            try:
                page_tasks = self._page_tasks(markdown, src_uri, path, lines_before(raw, markdown))
            except BlockError as err:
                errors.extend(each_message(err))
                continue
            tasks.extend(task for _, task in page_tasks)
        if errors:
            self._fail(errors)
        outcomes = self.workshop.resolve(tasks, background=self.serving)
        self.outcomes.update(outcomes)
        unique = {t.digest: t for t in tasks}
        for task in unique.values():
            outcome = outcomes[task.digest]
            self.counts[f"alt {outcome.state}" if task.kind == "alt" else outcome.state] += 1
            if outcome.state in ("missing", "failed"):
                if task.kind == "alt":
                    log.warning("%s", outcome.error)
                else:
                    errors.append(outcome.error or f"{task.where}: failed")
            elif outcome.result is not None and task.kind in ("compose", "illustrate"):
                _warn_shortfalls(task, outcome.result)
        if errors and not (self.standalone and self.on_missing == "notice"):
            self._fail(errors)
        return [(task, outcomes[task.digest]) for task in unique.values()]

    def _page_tasks(
        self, markdown: str, page: str, path: Path, line_offset: int = 0
    ) -> list[tuple[Block | MissingAlt, Task]]:
        """The page's blocks and images without alt text, as tasks (remembered per build)."""
        key = (page, line_offset, markdown)
        if key not in self.page_tasks:
            self.page_tasks[key] = self._find_tasks(markdown, page, path, line_offset)
        return self.page_tasks[key]

    def task_for(self, spec: BlockSpec) -> Task:
        """The engine task of a checked block."""
        assert self.workshop is not None and self.folders is not None
        return block_task(self.workshop, spec, self.folders, self.fingerprints)

    def _find_tasks(
        self, markdown: str, page: str, path: Path, line_offset: int
    ) -> list[tuple[Block | MissingAlt, Task]]:
        assert self.workshop is not None and self.folders is not None
        blocks = find_blocks(markdown, page, line_offset)
        found: list[tuple[Block | MissingAlt, Task]] = []
        errors: list[BlockError] = []
        for block in blocks:
            try:
                spec = build_spec(block, self.folders, self.facts.backend_names)
            except BlockError as err:
                errors.append(err)
                continue
            found.append((block, self.task_for(spec)))
            self.specs[found[-1][1].digest] = spec
        if errors:
            from .blocks import BlockErrors

            raise BlockErrors(errors)
        if self.config.alt_text == "missing":
            spans = [(b.start, b.end) for b in blocks]
            for missing in images_without_alt(markdown, path, self.folders.docs_dir, spans):
                where = f"{page}:{missing.line + line_offset}"
                if missing.image is None:
                    log.warning("%s: %s", where, missing.problem)
                    continue
                task = alt_task(self.workshop, where, missing.image, self.fingerprints)
                found.append((missing, task))
        found.sort(key=lambda item: item[0].start)
        return found

    # -- the Markdown extension's source of rendered blocks (see page_blocks) -------------
    def page_of(self, md: Any, markdown: str) -> PageRef | None:
        return page_blocks.page_of(self, md, markdown)

    def replacements(self, markdown: str, page: PageRef) -> list[Replacement]:
        return page_blocks.replacements(self, markdown, page)

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
            removed = self.workshop.store.prune()
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
        self.workshop.store.ensure_layout()
        server.watch(str(self.workshop.store.results))
        return server

    # Runs when the process ends: background threads stop, models are released.
    def on_shutdown(self) -> None:
        if self.workshop is not None:
            self.workshop.shutdown()
        self.project.close()

    def _fail(self, errors: list[str]) -> Any:
        self.failed = True
        if self.standalone:
            from xcomposer import InputError

            raise InputError("xcomposer: " + "\n  ".join(errors))
        if len(errors) == 1:
            raise PluginError(f"xcomposer: {errors[0]}")
        listed = "\n  ".join(errors)
        raise PluginError(f"xcomposer: {len(errors)} blocks failed:\n  {listed}")


def _warn_shortfalls(task: Task, result: dict[str, Any]) -> None:
    for key, note in sorted(result.get("provenance", {}).items()):
        if key.startswith("figure_") or key == "image_count" and "asked" in str(note):
            log.warning("%s: %s", task.where, note)


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
