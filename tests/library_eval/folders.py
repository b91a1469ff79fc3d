"""Small image folders for the library tests: real photos, captions, and every kind of bad file."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

from PIL import Image

from . import SKIMAGE_DATA

GOOD = {
    # name in the folder: (file in skimage/data, sidecar caption)
    "cat.png": ("chelsea.png", "A tabby cat looking to the side"),
    "rocket.jpg": ("rocket.jpg", "A rocket on the launch pad before lift-off"),
    "coffee.png": ("coffee.png", "A cup of coffee on a saucer, seen from above"),
    "astronaut.png": ("astronaut.png", "An astronaut in a white spacesuit beside a flag"),
}


def png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG that claims ``width`` x ``height`` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def add_good_images(folder: Path, names: list[str] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names or list(GOOD):
        source, caption = GOOD[name]
        shutil.copy(SKIMAGE_DATA / source, folder / name)
        (folder / name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
        out.append(folder / name)
    return out


def make_mixed_folder(folder: Path, outside: Path) -> dict[str, Path]:
    """Good captioned images plus one of each bad file; returns the bad ones by kind."""
    add_good_images(folder)
    bad = {
        "corrupt": folder / "truncated.png",
        "bomb": folder / "bomb.png",
        "loop": folder / "loop.png",
        "text": folder / "notes.png",
        "empty": folder / "empty.jpg",
        "outside": folder / "elsewhere.png",
        "dir_loop": folder / "sub" / "back",
    }
    data = (SKIMAGE_DATA / "coffee.png").read_bytes()
    bad["corrupt"].write_bytes(data[: len(data) // 2])
    png_header_only(bad["bomb"], 30_000, 30_000)
    os.symlink("loop.png", bad["loop"])
    bad["text"].write_text("these are my notes, not a picture\n", encoding="utf-8")
    bad["empty"].write_bytes(b"")
    outside.mkdir(parents=True, exist_ok=True)
    Image.open(SKIMAGE_DATA / "moon.png").save(outside / "moon.png")
    os.symlink(outside / "moon.png", bad["outside"])
    (folder / "sub").mkdir()
    shutil.copy(SKIMAGE_DATA / "horse.png", folder / "sub" / "horse.png")
    os.symlink("..", bad["dir_loop"])
    return bad
