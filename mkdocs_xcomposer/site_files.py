"""Images in the built site: where a figure's image file ends up, and its URL from a page.

Images inside docs_dir are MkDocs' own files.  Library images outside docs_dir
are added to the build as files under ``assets/xcomposer/<folder>/`` (only the
ones a page shows), so MkDocs copies them like any other static file.  URLs are
MkDocs' relative URLs, right from nested pages with ``use_directory_urls`` on or off.
"""

from __future__ import annotations

import threading
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from xcomposer import is_svg  # the package is lazy: no pydantic

ASSETS = "assets/xcomposer"


class SiteImages:
    """The site files of the images that generated blocks show."""

    def __init__(self, docs_dir: Path, library: tuple[Path, ...]) -> None:
        self.docs_dir = docs_dir
        self.library = library
        self._prefixes = _unique_names(library)
        self._sizes: dict[Path, tuple[int, int] | None] = {}
        self._lock = threading.Lock()

    def src_uri(self, image: Path) -> str:
        """Where ``image`` is in the site, relative to docs_dir: as is inside docs_dir, else
        under ``assets/xcomposer/<library folder>/`` (where ``site fill`` copies it)."""
        if image.is_relative_to(self.docs_dir):
            return image.relative_to(self.docs_dir).as_posix()
        root = next((r for r in self.library if image.is_relative_to(r)), image.parent)
        prefix = self._prefixes.get(root, root.name)
        return f"{ASSETS}/{prefix}/{image.relative_to(root).as_posix()}"

    def copy_into_docs(self, image: Path, replace: bool = True) -> Path | None:
        """Copy a library image from outside docs_dir to its ``src_uri`` under docs_dir, so
        generators that run only the Markdown extension publish it (``None``: nothing to do).

        ``replace=False``: a different file already there is an InputError, not overwritten.
        """
        from xcomposer import InputError, write_atomic

        if image.is_relative_to(self.docs_dir):
            return None
        target = self.docs_dir / self.src_uri(image)
        data = site_bytes(image)
        if target.is_file() and target.read_bytes() == data:
            return None
        if target.exists() and not replace:
            raise InputError(
                f"{target} exists and differs from the library's {image}",
                "move it away, then try again",
            )
        write_atomic(target, data)
        return target

    def file_for(self, image: Path, files: Files, config: MkDocsConfig) -> File:
        """The site file that serves ``image``, added to ``files`` if it is not there yet."""
        src_uri = self.src_uri(image)
        found = files.get_file_from_path(src_uri)
        if found is None and is_svg(image):  # .svg and .svgz: sanitised, never as they are
            found = File.generated(config, src_uri, content=site_bytes(image))
            files.append(found)
        elif found is None:
            found = File.generated(config, src_uri, abs_src_path=str(image))
            files.append(found)
        return found

    def url(self, image: Path, page: Page, files: Files, config: MkDocsConfig) -> str:
        """The image's URL relative to ``page``'s URL."""
        return self.file_for(image, files, config).url_relative_to(page.file)

    def size(self, image: Path) -> tuple[int, int] | None:
        """Pixel size from the image header (for width/height attributes); ``None`` if unreadable."""
        with self._lock:
            if image in self._sizes:
                return self._sizes[image]
        from xcomposer import display_size  # as a browser shows it (EXIF rotation, SVG)

        size = display_size(image)
        with self._lock:
            self._sizes[image] = size
        return size


def site_bytes(image: Path) -> bytes:
    """The bytes a copy of a library image gets: its own, an SVG sanitised (no script, no fetch)."""
    from xcomposer import EVERY_FORMAT, image_bytes

    return image_bytes(image, keep=EVERY_FORMAT)[1]


def _unique_names(roots: tuple[Path, ...]) -> dict[Path, str]:
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for root in roots:
        name = root.name or "images"
        candidate, n = name, 2
        while candidate in taken:
            candidate, n = f"{name}-{n}", n + 1
        taken.add(candidate)
        names[root] = candidate
    return names
