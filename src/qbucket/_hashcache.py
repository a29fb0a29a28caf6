"""A persistent cache of file digests, so that an unchanged tree is not read again.

An entry is trusted only while the file's path, device, inode, size, ``mtime_ns`` *and*
``ctime_ns`` are all unchanged. The ctime matters: rewriting a file and restoring its mtime
(``touch -r``, ``os.utime``, some copy tools) changes the ctime, and no user call can set it back.
A digest is recorded only when the file did not change while it was read, and not for files
modified in the last few seconds, whose timestamps a further write within the filesystem's
timestamp granularity could leave unchanged (git's "racy clean" problem).

The cache is SQLite in the user cache dir (``~/.cache/qbucket/digests.sqlite``), in WAL mode so
that several processes can sync at once. It is an optimisation only: any problem with it (a
read-only home, a corrupt file) disables it for the run instead of failing the sync.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path

from ._hashing import Digests, Stamp, stat_key

RACY_WINDOW_NS = 3_000_000_000  # files modified this recently are hashed, not cached
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    path TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    sha1 TEXT NOT NULL
) WITHOUT ROWID
"""


class HashCache:
    """Digests by (path, stat). Thread-safe; call :meth:`commit` to persist what was learnt.

    Args:
        path: the SQLite file; None keeps nothing (every file is hashed).
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[object, ...]] = []
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection | None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            return db
        except (OSError, sqlite3.Error):
            return None

    def lookup(self, path: str, info: os.stat_result) -> Digests | None:
        """The cached digests of ``path`` if its stat still matches, else None."""
        if self._db is None:
            return None
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT dev, ino, size, mtime_ns, ctime_ns, md5, sha1 FROM digests WHERE path = ?",
                    (path,),
                ).fetchone()
            except sqlite3.Error:
                return None
        if row is None or tuple(row[:5]) != stat_key(info):
            return None
        return Digests(info.st_size, row[5], row[6])

    def lookup_many(self, entries: list[tuple[str, Stamp]]) -> list[Digests | None]:
        """:meth:`lookup` for many files, each given with its :func:`stat_key`, in one query (a
        query per file costs ~50 us)."""
        if self._db is None or not entries:
            return [None] * len(entries)
        marks = ",".join("?" * len(entries))
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT path, dev, ino, size, mtime_ns, ctime_ns, md5, sha1 FROM digests "
                    f"WHERE path IN ({marks})",
                    [path for path, _ in entries],
                ).fetchall()
            except sqlite3.Error:
                return [None] * len(entries)
        found = {row[0]: row for row in rows}
        results: list[Digests | None] = []
        for path, stamp in entries:
            row = found.get(path)
            if row is None or tuple(row[1:6]) != stamp:
                results.append(None)
            else:
                results.append(Digests(stamp[2], row[6], row[7]))
        return results

    def remember(self, path: str, info: os.stat_result, digests: Digests) -> None:
        """Record ``digests`` for ``path`` as it was at ``info`` (unless modified too recently)."""
        if self._db is None or time.time_ns() - info.st_mtime_ns < RACY_WINDOW_NS:
            return
        with self._lock:
            self._pending.append((path, *stat_key(info), digests.md5, digests.sha1))

    def commit(self) -> None:
        """Write what :meth:`remember` collected, in one transaction."""
        with self._lock:
            rows, self._pending = self._pending, []
            if self._db is None or not rows:
                return
            try:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.executemany(
                        "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
                    )
            except sqlite3.Error:
                pass  # an optimisation only: the next run hashes these files again

    def close(self) -> None:
        self.commit()
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
