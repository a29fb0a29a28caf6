"""LocalDigests: the cache settles what it can while the walk goes on; the rest is read."""

from __future__ import annotations

import os
import time
from pathlib import Path

from qbucket._hashcache import HashCache
from qbucket._hashing import digest_bytes
from qbucket._scan import SourceFile
from qbucket._sync import LOOKUP_BATCH, LocalDigests

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
