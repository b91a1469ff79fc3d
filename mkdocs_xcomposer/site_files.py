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

ASSETS = "assets/xcomposer"


class SiteImages:
    """The site files of the images that generated blocks show."""

    def __init__(self, docs_dir: Path, library: tuple[Path, ...]) -> None:
        self.docs_dir = docs_dir
        self.library = library
        self._prefixes = _unique_names(library)
        self._sizes: dict[Path, tuple[int, int] | None] = {}
        self._lock = threading.Lock()

    def file_for(self, image: Path, files: Files, config: MkDocsConfig) -> File:
        """The site file that serves ``image``, added to ``files`` if it is not there yet."""
        if image.is_relative_to(self.docs_dir):
            src_uri = image.relative_to(self.docs_dir).as_posix()
        else:
            root = next((r for r in self.library if image.is_relative_to(r)), image.parent)
            prefix = self._prefixes.get(root, root.name)
            src_uri = f"{ASSETS}/{prefix}/{image.relative_to(root).as_posix()}"
        found = files.get_file_from_path(src_uri)
        if found is None:
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
        from PIL import Image

        try:
            with Image.open(image) as img:
                size: tuple[int, int] | None = img.size
        except (OSError, ValueError):
            size = None
        with self._lock:
            self._sizes[image] = size
        return size


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
