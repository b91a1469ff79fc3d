"""The ``xcomposer`` MkDocs plugin: compose blocks become illustrated pages, reproducibly.

A thin adapter over the engine.  The work happens in ``on_files``, before any
page is rendered or written: every block of every page is checked, looked up in
the block cache, and the missing ones composed (concurrently, or under
``mkdocs serve`` in the background).  A block that fails stops the build
before a single page is written, with ``page.md:LINE`` and the fix.  The page
events then only substitute finished results and sanitise their HTML.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, get_plugin_logger
from mkdocs.structure.files import Files, InclusionLevel
from mkdocs.structure.pages import Page
from mkdocs.utils.meta import get_data

from . import engine_state
from .alt_text import MissingAlt, find_missing, with_alt
from .block_cache import BlockCache
from .blocks import Block, BlockError, find_blocks
from .config import XComposerConfig, resolve_frozen
from .engine_state import EngineFacts
from .fingerprint import Fingerprints
from .jobs import Job, Outcome, Workshop, load_article
from .page_text import front_matter_lines, has_h1, lines_before, short, shown
from .render import (
    FigureStyle,
    Regions,
    article_markdown,
    describe_markdown,
    figure_html,
    pending_html,
)
from .site_files import SiteImages
from .spec import BlockSpec, Folders, build_spec

log = get_plugin_logger(__name__)


class XComposerPlugin(BasePlugin[XComposerConfig]):
    """Expands ``/// compose``, ``/// illustrate`` and ``/// describe`` blocks."""

    def __init__(self) -> None:
        self.serving = False
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
        self.regions: dict[str, tuple[Regions, int]] = {}
        self.counts: Counter[str] = Counter()
        self.failed = False

    # Runs once per process.  Defining it makes MkDocs keep this instance across the
    # rebuilds of `mkdocs serve`, so background compositions, loaded models and file
    # hashes survive an edit.
    def on_startup(self, *, command: str, dirty: bool) -> None:
        self.serving = command == "serve"

    # Runs when mkdocs.yml is loaded (again on every serve rebuild): paths are resolved
    # relative to mkdocs.yml and the engine config is checked before any page is read.
    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        if not self.config.enabled:
            return config
        config_dir = Path(config.config_file_path or "mkdocs.yml").resolve().parent
        docs_dir = Path(config.docs_dir).resolve()
        library = []
        for folder in self.config.library:
            path = (config_dir / folder).resolve()
            if not path.is_dir():
                raise PluginError(
                    f"xcomposer: library folder '{folder}' does not exist (relative to "
                    f"{config_dir}); fix 'library:' in mkdocs.yml"
                )
            library.append(path)
        cache_dir = (config_dir / self.config.cache_dir).resolve()
        frozen = resolve_frozen(self.config.frozen)
        facts, roots = self._engine_facts(config_dir, cache_dir, frozen)
        library += [Path(r) for r in roots if Path(r) not in library]
        self.facts = facts
        self.folders = Folders(config_dir, docs_dir, tuple(library))
        self.images = SiteImages(docs_dir, tuple(library))
        self.style = FigureStyle(
            self.config.figure_class, self.config.image_width, self.config.figure_caption
        )
        fill = f"XCOMPOSER_FROZEN=0 mkdocs build -f {shown(config.config_file_path)}"
        settings = (
            BlockCache(cache_dir),
            facts,
            lambda: self._live_engines(config_dir, cache_dir, frozen),
            self.folders,
            self.fingerprints,
            frozen,
            self.config.concurrency,
            fill,
        )
        if self.workshop is None:
            self.workshop = Workshop(*settings)
        else:
            self.workshop.reconfigure(*settings)
        return config

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
        self.outcomes = {}
        self.specs = {}
        self.page_jobs = {}
        self.calls_before = self.model_calls()
        self.regions = {}
        self.counts = Counter()
        self.failed = False
        self.fingerprints.begin_build()
        if self.workshop is not None:
            self.workshop.cache.reset_used()

    # Runs once the site's files are known and before any page is rendered: the whole
    # site's blocks are checked and composed here, so a failure stops the build before
    # anything is written, blocks compose concurrently, and the library images they
    # show can still join the site's files.
    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files | None:
        if not self.config.enabled:
            return files
        assert self.workshop is not None
        errors: list[str] = []
        jobs: list[Job] = []
        for file in files.documentation_pages(inclusion=InclusionLevel.is_in_serve):
            try:
                raw = file.content_string
            except (OSError, ValueError):
                continue  # MkDocs reports unreadable pages itself
            # The Markdown exactly as the page events will get it: front matter removed.
            markdown, _ = get_data(raw)
            try:
                page_jobs = self._page_jobs(
                    markdown,
                    file.src_uri,
                    Path(file.abs_src_path or ""),
                    lines_before(raw, markdown),
                )
            except BlockError as err:
                errors.append(str(err))
                continue
            jobs.extend(job for _, job in page_jobs)
        if errors:
            self._fail(errors)
        outcomes = self.workshop.resolve(jobs, background=self.serving)
        self.outcomes.update(outcomes)
        for job in {j.digest: j for j in jobs}.values():
            outcome = outcomes[job.digest]
            self.counts[f"alt {outcome.state}" if job.kind == "alt" else outcome.state] += 1
            if outcome.state in ("missing", "failed"):
                if job.kind == "alt":
                    log.warning("%s", outcome.error)
                else:
                    errors.append(outcome.error or f"{job.where}: failed")
            elif outcome.result is not None and job.kind in ("compose", "illustrate"):
                _warn_shortfalls(job, outcome.result)
        if errors:
            self._fail(errors)
        return files

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
        for block in blocks:
            spec = build_spec(block, self.folders, self.facts.backend_names)
            found.append((block, self.workshop.job_for(spec)))
            self.specs[found[-1][1].digest] = spec
        if self.config.alt_text == "missing":
            spans = [(b.start, b.end) for b in blocks]
            for missing in find_missing(markdown, path, self.folders.docs_dir, spans):
                where = f"{page}:{missing.line + line_offset}"
                found.append((missing, self.workshop.alt_job(where, missing.image)))
        found.sort(key=lambda item: item[0].start)
        return found

    # Runs per page on its Markdown, before it is rendered: each block is replaced by
    # its finished result, each image without alt text gets one.  A page with neither
    # is returned untouched, so its HTML is byte-identical to a build without the plugin.
    def on_page_markdown(
        self, markdown: str, *, page: Page, config: MkDocsConfig, files: Files
    ) -> str | None:
        if not self.config.enabled:
            return markdown
        assert self.workshop is not None
        src = page.file.src_uri
        try:
            page_jobs = self._page_jobs(
                markdown,
                src,
                Path(page.file.abs_src_path or ""),
                front_matter_lines(page, markdown),
            )
        except BlockError as err:
            self._fail([str(err)])
        if not page_jobs:
            return markdown
        unseen = [job for _, job in page_jobs if job.digest not in self.outcomes]
        if unseen:  # another plugin changed the page after on_files read it
            self.outcomes.update(self.workshop.resolve(unseen, background=self.serving))
        regions = Regions()
        wrapped = 0
        out: list[str] = []
        pos = 0
        first_compose = True
        for item, job in page_jobs:
            outcome = self.outcomes[job.digest]
            out.append(markdown[pos : item.start])
            pos = item.end
            if isinstance(item, MissingAlt):
                if outcome.result is None:
                    out.append(markdown[item.start : item.end])
                else:
                    out.append(with_alt(item, outcome.result["alt"]))
                    self.counts["alt filled"] += 1
                continue
            if outcome.state == "pending":
                out.append(pending_html(item.kind, job.where) + "\n")
                continue
            if outcome.result is None:
                self._fail([outcome.error or f"{job.where}: failed"])
            spec = self.specs[job.digest]
            level = spec.title_level
            if level is None:
                level = 2 if not first_compose or has_h1(markdown, page_jobs) else 1
            if item.kind == "compose":
                first_compose = False
            text, count = self._render(spec, outcome.result, level, regions, page, files, config)
            wrapped += count
            out.append(text + "\n")
        out.append(markdown[pos:])
        if wrapped:
            self.regions[src] = (regions, wrapped)
        return "".join(out)

    def _render(
        self,
        spec: BlockSpec,
        result: Any,
        title_level: int,
        regions: Regions,
        page: Page,
        files: Files,
        config: MkDocsConfig,
    ) -> tuple[str, int]:
        assert self.images is not None and self.folders is not None
        images = self.images

        def figure(image: Path, alt: str, caption: str, size: Any = None) -> str:
            url = images.url(image, page, files, config)
            dims = tuple(size) if size else images.size(image)
            return figure_html(url, alt, caption, self.style, dims)

        def stored_figure(fig: dict[str, Any]) -> str:
            caption = self.style.caption_for(fig)
            return figure(Path(fig["image"]), fig["alt"], caption, fig.get("size"))

        if spec.kind == "describe":
            assert spec.image is not None
            text = result["text"]
            shown = None
            if spec.show_image:
                shown = figure(spec.image, short(text), text)
            return regions.wrap(describe_markdown(text, shown)), 1
        article = load_article(result, self.folders)
        if spec.kind == "compose":
            return regions.wrap(article_markdown(article, stored_figure, title_level)), 1
        # illustrate: the writer's text stays as written, only the figures are generated
        count = 0

        def wrapped_figure(fig: dict[str, Any]) -> str:
            nonlocal count
            count += 1
            return regions.wrap(stored_figure(fig))

        markdown = article_markdown(article, wrapped_figure, 0, writer_text=True)
        return markdown, count

    # Runs per page on its HTML, after Markdown and before the theme: the generated
    # regions are sanitised here, where the HTML they produced is final.
    def on_page_content(
        self, html: str, *, page: Page, config: MkDocsConfig, files: Files
    ) -> str | None:
        entry = self.regions.pop(page.file.src_uri, None)
        if entry is None:
            return html
        regions, expected = entry
        found = regions.count(html)
        if found != expected:
            raise PluginError(
                f"xcomposer: {page.file.src_uri}: {expected - found} generated block(s) lost "
                "their markers in Markdown rendering (a block inside a list or another block?); "
                "put compose blocks at the top level of the page"
            )
        return regions.sanitise(html)

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
        if len(errors) == 1:
            raise PluginError(f"xcomposer: {errors[0]}")
        listed = "\n  ".join(errors)
        raise PluginError(f"xcomposer: {len(errors)} blocks failed:\n  {listed}")


def _warn_shortfalls(job: Job, result: dict[str, Any]) -> None:
    for key, note in sorted(result.get("provenance", {}).items()):
        if key.startswith("figure_") or key == "image_count" and "asked" in str(note):
            log.warning("%s: %s", job.where, note)
