"""The SQLite store behind a library: one file, WAL journal, every write in a transaction.

A crash or Ctrl-C loses at most the batch being written (SQLite rolls it back
on the next open); readers never see half a batch; two processes may open it
at once (``busy_timeout``), and :func:`indexer_lock` makes indexing runs take
turns so they do not repeat each other's work.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
DB_NAME = "library.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    root TEXT NOT NULL,            -- the root, relative to the index folder when possible
    relpath TEXT NOT NULL,         -- '/'-separated, relative to the root
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    orientation TEXT NOT NULL,
    phash INTEGER NOT NULL,        -- 64-bit difference hash, as a signed integer
    thumbnail BLOB,
    intrinsic TEXT NOT NULL,       -- JSON [[source, text], ...] read from the image's bytes
    intrinsic_flags TEXT NOT NULL, -- which optional sources (OCR, vision) were run
    sources TEXT NOT NULL,         -- JSON: every source, most trusted first
    external_sig TEXT NOT NULL,    -- hash of the sources outside the file
    description TEXT NOT NULL,
    alt TEXT NOT NULL,
    text_model TEXT,
    text_vec BLOB,                 -- float32, unit length: the description
    source_vecs BLOB,              -- float16 rows, one per source
    image_model TEXT,
    image_vec BLOB,                -- float32, unit length
    indexed_at REAL NOT NULL,
    UNIQUE (root, relpath)
);
CREATE INDEX IF NOT EXISTS images_sha ON images (sha256);
CREATE TABLE IF NOT EXISTS derived (
    sha256 TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (sha256, kind)
);
CREATE TABLE IF NOT EXISTS queries (
    model TEXT NOT NULL, text TEXT NOT NULL, vec BLOB NOT NULL,
    PRIMARY KEY (model, text)
);
"""

ROW_FIELDS = (
    "root", "relpath", "size", "mtime_ns", "sha256", "format", "width", "height",
    "orientation", "phash", "thumbnail", "intrinsic", "intrinsic_flags", "sources",
    "external_sig", "description", "alt", "text_model", "text_vec", "source_vecs",
    "image_model", "image_vec", "indexed_at",
)  # fmt: skip


@dataclass
class StoredState:
    """What an update needs to know about an indexed file without decoding it."""

    id: int
    root: str
    relpath: str
    size: int
    mtime_ns: int
    sha256: str
    intrinsic_flags: str
    external_sig: str
    text_model: str | None
    image_model: str | None


@dataclass
class View:
    """The searchable part of the index for some roots, in memory."""

    ids: np.ndarray  # int64
    roots: list[str]
    relpaths: list[str]
    sha256: list[str]
    width: np.ndarray
    height: np.ndarray
    orientation: list[str]
    phash: np.ndarray  # uint64
    vectors: np.ndarray  # (n, d) float32
    image_vectors: np.ndarray | None  # (n, d2) float32 where every row has one
    bits: np.ndarray | None = None  # packed sign bits of ``vectors``, made when first needed

    def __len__(self) -> int:
        return len(self.ids)


def to_signed64(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


class IndexStore:
    """The library's SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.RLock()
        self.db = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA busy_timeout = 60000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            from ..errors import ConfigError

            raise ConfigError(
                f"the image index {self.path} was written by another version of xcomposer",
                "delete that file and run `xcomposer index` again",
            )
        with self.transaction() as db:
            if int(db.execute("PRAGMA user_version").fetchone()[0]) == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception, Ctrl-C included."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection commits (SQLite's ``PRAGMA data_version``)."""
        with self._lock:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str, db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ---------------------------------------------------------------- images

    def states(self) -> dict[tuple[str, str], StoredState]:
        """Every indexed file's change-detection state, by ``(root, relpath)``."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, root, relpath, size, mtime_ns, sha256, intrinsic_flags, external_sig, "
                "CASE WHEN text_vec IS NULL THEN NULL ELSE text_model END, "
                "CASE WHEN image_vec IS NULL THEN NULL ELSE image_model END FROM images"
            ).fetchall()
        return {(r[1], r[2]): StoredState(*r) for r in rows}

    def write(self, db: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Insert or replace one image (``row`` has every field of :data:`ROW_FIELDS`)."""
        values = [row[f] for f in ROW_FIELDS]
        db.execute(
            f"INSERT INTO images ({', '.join(ROW_FIELDS)}) VALUES ({', '.join('?' * len(ROW_FIELDS))}) "
            "ON CONFLICT (root, relpath) DO UPDATE SET "
            + ", ".join(f"{f} = excluded.{f}" for f in ROW_FIELDS[2:]),
            values,
        )

    def update_fields(self, db: sqlite3.Connection, image_id: int, **fields: Any) -> None:
        assigns = ", ".join(f"{k} = ?" for k in fields)
        db.execute(f"UPDATE images SET {assigns} WHERE id = ?", [*fields.values(), image_id])

    def delete(self, db: sqlite3.Connection, ids: Iterable[int]) -> None:
        db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in ids])

    def rows(self, ids: Sequence[int], fields: Sequence[str]) -> dict[int, dict[str, Any]]:
        """Some fields of some images, by id."""
        out: dict[int, dict[str, Any]] = {}
        cols = ", ".join(("id", *fields))
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                for r in self.db.execute(f"SELECT {cols} FROM images WHERE id IN ({marks})", chunk):
                    out[r[0]] = dict(zip(fields, r[1:], strict=True))
        return out

    def find(
        self, roots: Sequence[str], relpath: str | None = None, sha256: str | None = None
    ) -> int | None:
        marks = ",".join("?" * len(roots))
        if relpath is not None:
            sql, arg = f"root IN ({marks}) AND relpath = ?", relpath
        else:
            sql, arg = f"root IN ({marks}) AND sha256 = ?", sha256
        with self._lock:
            row = self.db.execute(
                f"SELECT id FROM images WHERE {sql} ORDER BY root, relpath LIMIT 1", [*roots, arg]
            ).fetchone()
        return row[0] if row else None

    def pending(self, roots: Sequence[str], text_model: str) -> list[int]:
        """Images of ``roots`` without a text embedding from ``text_model``."""
        marks = ",".join("?" * len(roots))
        with self._lock:
            rows = self.db.execute(
                f"SELECT id FROM images WHERE root IN ({marks}) AND "
                "(text_vec IS NULL OR text_model IS NOT ?)",
                [*roots, text_model],
            ).fetchall()
        return [r[0] for r in rows]

    def count(self, roots: Sequence[str]) -> int:
        marks = ",".join("?" * len(roots))
        with self._lock:
            return int(
                self.db.execute(
                    f"SELECT COUNT(*) FROM images WHERE root IN ({marks})", list(roots)
                ).fetchone()[0]
            )

    def content_rows(self, roots: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """``(root, relpath, sha256, description)`` sorted: what the fingerprint covers."""
        marks = ",".join("?" * len(roots))
        with self._lock:
            return self.db.execute(
                f"SELECT root, relpath, sha256, description FROM images WHERE root IN ({marks}) "
                "ORDER BY root, relpath",
                list(roots),
            ).fetchall()

    def load_view(self, roots: Sequence[str], text_model: str, image_model: str | None) -> View:
        """The searchable rows of ``roots`` (those embedded with ``text_model``)."""
        marks = ",".join("?" * len(roots))
        with self._lock:
            rows = self.db.execute(
                "SELECT id, root, relpath, sha256, width, height, orientation, phash, text_vec, "
                f"CASE WHEN image_model IS ? THEN image_vec END FROM images WHERE root IN ({marks}) "
                "AND text_vec IS NOT NULL AND text_model = ? ORDER BY root, relpath",
                [image_model, *roots, text_model],
            ).fetchall()
        n = len(rows)
        if n:
            dim = len(rows[0][8]) // 4
            vectors = np.frombuffer(b"".join(r[8] for r in rows), dtype=np.float32).reshape(n, dim)
        else:
            vectors = np.zeros((0, 0), dtype=np.float32)
        image_vectors = None
        if image_model and n and all(r[9] for r in rows):
            d2 = len(rows[0][9]) // 4
            image_vectors = np.frombuffer(b"".join(r[9] for r in rows), np.float32).reshape(n, d2)
        return View(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            roots=[r[1] for r in rows],
            relpaths=[r[2] for r in rows],
            sha256=[r[3] for r in rows],
            width=np.array([r[4] for r in rows], dtype=np.int64),
            height=np.array([r[5] for r in rows], dtype=np.int64),
            orientation=[r[6] for r in rows],
            phash=np.array([r[7] for r in rows], dtype=np.int64).view(np.uint64),
            vectors=vectors,
            image_vectors=image_vectors,
        )

    # ------------------------------------------------- derived text and queries

    def get_derived(self, sha256: str, kind: str) -> str | None:
        with self._lock:
            row = self.db.execute(
                "SELECT text FROM derived WHERE sha256 = ? AND kind = ?", (sha256, kind)
            ).fetchone()
        return row[0] if row else None

    def any_vision_caption(self, sha256: str) -> str | None:
        """A caption some vision model wrote for this image before, if any."""
        with self._lock:
            row = self.db.execute(
                "SELECT text FROM derived WHERE sha256 = ? AND kind LIKE 'vision:%' AND text != '' "
                "ORDER BY rowid DESC LIMIT 1",
                (sha256,),
            ).fetchone()
        return row[0] if row else None

    def put_derived(self, sha256: str, kind: str, text: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO derived VALUES (?, ?, ?)", (sha256, kind, text))

    def get_query(self, model: str, text: str) -> np.ndarray | None:
        with self._lock:
            row = self.db.execute(
                "SELECT vec FROM queries WHERE model = ? AND text = ?", (model, text)
            ).fetchone()
        return np.frombuffer(row[0], dtype=np.float32).copy() if row else None

    def put_query(self, model: str, text: str, vector: np.ndarray) -> None:
        """Remember a query's embedding, unless another process is writing right now."""
        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        with self._lock:
            self.db.execute("PRAGMA busy_timeout = 200")
            try:
                with self.transaction() as db:
                    db.execute(
                        "INSERT OR REPLACE INTO queries VALUES (?, ?, ?)", (model, text, blob)
                    )
            except sqlite3.OperationalError:  # busy or read-only: the query is not remembered
                pass
            finally:
                self.db.execute("PRAGMA busy_timeout = 60000")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@contextlib.contextmanager
def indexer_lock(index_dir: Path, on_wait: Any = None) -> Iterator[None]:
    """Let one indexing run at a time work on ``index_dir`` (others wait their turn)."""
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking still keeps the file consistent
        yield
        return
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / "index.lock", "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
