"""The one reading of a Markdown page's images (xcomposer.page_images), as users write them."""

from __future__ import annotations

from pathlib import Path

from xcomposer import markdown_images, resolve_src

PAGE = """# Photos

![A cat](img/cat.png "On the sofa") and ![](<img/lily copy.jpg> 'A lily')
![Dog][dog] then ![Bird][] and ![][nowhere] and ![Fish](img/fish.png (In a bowl))

`![inline code](img/no.png)`

```
![in a fence](img/no.png)
```

<!-- ![commented](img/no.png) -->

[dog]: img/dog.png "A dog"
[bird]: <img/bird one.png>
"""


def test_every_image_outside_code_and_comments_with_its_alt_source_and_title() -> None:
    found = [(i.line, i.alt, i.src, i.title_text, i.ref) for i in markdown_images(PAGE)]
    assert found == [
        (3, "A cat", "img/cat.png", "On the sofa", ""),
        (3, "", "img/lily copy.jpg", "A lily", ""),
        (4, "Dog", "img/dog.png", "A dog", "dog"),
        (4, "Bird", "img/bird one.png", "", "Bird"),
        (4, "", "", "", "nowhere"),
        (4, "Fish", "img/fish.png", "In a bowl", ""),
    ]
    first = markdown_images(PAGE)[0]
    assert PAGE[first.start : first.end] == '![A cat](img/cat.png "On the sofa")'


def test_paths_resolve_like_mkdocs(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    page = docs / "guide" / "index.md"
    assert resolve_src("img/a.png", page, docs) == (docs / "guide/img/a.png").resolve()
    assert resolve_src("/img/a%20b.png", page, docs) == (docs / "img/a b.png").resolve()
    assert resolve_src("https://example.org/a.png", page, docs) is None
