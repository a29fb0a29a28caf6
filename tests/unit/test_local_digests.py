"""LocalDigests: the cache settles what it can while the walk goes on; the rest is read."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from qbucket import _sync
from qbucket._hashcache import HashCache
from qbucket._hashing import digest_bytes
from qbucket._scan import SourceFile
from qbucket._sync import (
    HASH_BATCH,
    HASH_CONCURRENCY,
    LOOKUP_BATCH,
    SERIAL_HASH_BELOW,
    LocalDigests,
)

DAY_AGO_NS = time.time_ns() - 86_400 * 10**9


def _tree(root: Path, count: int) -> list[SourceFile]:
    """``count`` files, a day old (so their digests may be cached), as a walk finds them."""
    root.mkdir()
    files = []
    for i in range(count):
        path = root / f"f{i}"
        path.write_bytes(b"%d" % i)
        os.utime(path, ns=(DAY_AGO_NS, DAY_AGO_NS))
        files.append(SourceFile(f"f{i}", str(path), path.stat().st_size))
    return files


def test_on_read_is_called_once_as_soon_as_a_looked_up_batch_has_a_file_to_read(
    tmp_path: Path,
) -> None:
    files = _tree(tmp_path / "t", LOOKUP_BATCH + 20)
    calls: list[int] = []
    cache = HashCache(tmp_path / "c.sqlite")
    local = LocalDigests("b", cache, on_read=lambda: calls.append(1))
    for file in files[: LOOKUP_BATCH - 1]:
        local.add(file)
    assert calls == []  # nothing looked up yet: the batch is not full
    local.add(files[LOOKUP_BATCH - 1])
    assert calls == [1]  # during the walk, long before finish()
    for file in files[LOOKUP_BATCH:]:
        local.add(file)
    entries, failures = local.finish()
    cache.close()
    assert calls == [1]
    assert failures == []
    assert {entry.key: entry.digests for entry in entries} == {
        f"f{i}": digest_bytes(b"%d" % i) for i in range(len(files))
    }


def test_on_read_is_never_called_when_the_cache_settles_every_file(tmp_path: Path) -> None:
    files = _tree(tmp_path / "t", 30)
    first = HashCache(tmp_path / "c.sqlite")
    reading = LocalDigests("b", first)
    for file in files:
        reading.add(file)
    reading.finish()
    first.close()

    calls: list[int] = []
    second = HashCache(tmp_path / "c.sqlite")
    cached = LocalDigests("b", second, on_read=lambda: calls.append(1))
    for file in files:
        cached.add(file)
    entries, _ = cached.finish()
    second.close()
    assert len(entries) == 30
    assert calls == []


def _record_threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Which thread hashes each file (by key); a batch of large files takes 20 ms more, so
    that the batches overlap whatever the scheduling."""
    threads: dict[str, str] = {}
    real = _sync._digest_batch

    def recording(batch, bucket, cache):  # type: ignore[no-untyped-def]
        for file in batch:
            threads[file.key] = threading.current_thread().name
        if batch[0].size >= SERIAL_HASH_BELOW:
            time.sleep(0.02)
        return real(batch, bucket, cache)

    monkeypatch.setattr(_sync, "_digest_batch", recording)
    return threads


def test_small_files_alone_are_hashed_on_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Threads around the short reads of small files only fight over the GIL: see
    # SERIAL_HASH_BELOW.
    files = _tree(tmp_path / "t", 3 * HASH_BATCH)
    threads = _record_threads(monkeypatch)
    local = LocalDigests("b", HashCache(tmp_path / "c.sqlite"))
    for file in files:
        local.add(file)
    entries, failures = local.finish()
    assert (len(entries), failures) == (len(files), [])
    assert set(threads.values()) == {threading.current_thread().name}


def test_large_files_are_hashed_on_several_threads_beside_the_small_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _tree(tmp_path / "small", 2 * HASH_BATCH)
    (tmp_path / "large").mkdir()
    large = []
    for i in range(2 * HASH_CONCURRENCY):
        path = tmp_path / "large" / f"big{i}"
        path.write_bytes(os.urandom(SERIAL_HASH_BELOW))
        large.append(SourceFile(f"big{i}", str(path), SERIAL_HASH_BELOW))
    monkeypatch.setattr(_sync, "HASH_BATCH", 1)  # a batch per large file
    threads = _record_threads(monkeypatch)
    local = LocalDigests("b", HashCache(tmp_path / "c.sqlite"))
    for file in small + large:
        local.add(file)
    entries, failures = local.finish()
    assert failures == []
    assert sorted(entry.key for entry in entries) == sorted(f.key for f in small + large)
    assert len({threads[file.key] for file in small}) == 1  # one after the other
    assert len({threads[file.key] for file in large}) > 1
