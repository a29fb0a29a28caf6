"""The digest cache: trusted only while path, device, inode, size, mtime and ctime all match."""

from __future__ import annotations

import os
import time
from pathlib import Path

from qbucket._hashcache import HashCache
from qbucket._hashing import digest_bytes, digest_file_checked, stat_key

DAY_AGO_NS = time.time_ns() - 86_400 * 10**9


def _old_file(path: Path, data: bytes) -> os.stat_result:
    path.write_bytes(data)
    os.utime(path, ns=(DAY_AGO_NS, DAY_AGO_NS))
    return path.stat()


def test_remembered_digest_is_returned_while_stat_matches(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "c.sqlite")
    info = _old_file(tmp_path / "f", b"data")
    cache.remember(str(tmp_path / "f"), info, digest_bytes(b"data"))
    cache.commit()
    assert cache.lookup(str(tmp_path / "f"), (tmp_path / "f").stat()) == digest_bytes(b"data")
    cache.close()


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    info = _old_file(tmp_path / "f", b"data")
    first = HashCache(tmp_path / "c.sqlite")
    first.remember(str(tmp_path / "f"), info, digest_bytes(b"data"))
    first.close()
    second = HashCache(tmp_path / "c.sqlite")
    assert second.lookup(str(tmp_path / "f"), info) == digest_bytes(b"data")
    second.close()


def test_rewrite_with_restored_mtime_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "f"
    info = _old_file(path, b"version-1")
    cache = HashCache(tmp_path / "c.sqlite")
    cache.remember(str(path), info, digest_bytes(b"version-1"))
    cache.commit()
    time.sleep(0.01)
    path.write_bytes(b"version-2")  # same size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # mtime restored: only ctime moved
    now = path.stat()
    assert (now.st_size, now.st_mtime_ns) == (info.st_size, info.st_mtime_ns)
    assert now.st_ctime_ns != info.st_ctime_ns
    assert cache.lookup(str(path), now) is None
    cache.close()


def test_other_path_or_inode_is_a_miss(tmp_path: Path) -> None:
    info = _old_file(tmp_path / "f", b"data")
    cache = HashCache(tmp_path / "c.sqlite")
    cache.remember(str(tmp_path / "f"), info, digest_bytes(b"data"))
    cache.commit()
    assert cache.lookup(str(tmp_path / "g"), info) is None
    (tmp_path / "f").unlink()
    replacement = _old_file(tmp_path / "f", b"data")  # same content, new inode/ctime
    if replacement.st_ino != info.st_ino or replacement.st_ctime_ns != info.st_ctime_ns:
        assert cache.lookup(str(tmp_path / "f"), replacement) is None
    cache.close()


def test_recently_modified_files_are_not_remembered(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    path.write_bytes(b"just written")
    cache = HashCache(tmp_path / "c.sqlite")
    cache.remember(str(path), path.stat(), digest_bytes(b"just written"))
    cache.commit()
    assert cache.lookup(str(path), path.stat()) is None
    cache.close()


def test_unusable_cache_location_disables_the_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    cache = HashCache(blocker / "c.sqlite")
    info = _old_file(tmp_path / "f", b"data")
    cache.remember(str(tmp_path / "f"), info, digest_bytes(b"data"))
    cache.commit()
    assert cache.lookup(str(tmp_path / "f"), info) is None
    cache.close()


def test_digest_file_checked_reports_stability(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    digests, info, stable = digest_file_checked(path)
    assert digests == digest_bytes(b"x" * 3_000_000)
    assert stable and info.st_size == 3_000_000


def test_lookup_many_matches_lookup_per_file(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "c.sqlite")
    infos = {}
    for name in ("a", "b", "c"):
        infos[name] = _old_file(tmp_path / name, name.encode() * 3)
        if name != "c":  # c is never remembered
            cache.remember(str(tmp_path / name), infos[name], digest_bytes(name.encode() * 3))
    cache.commit()
    (tmp_path / "b").write_bytes(b"BBB")  # b changed since: its stat no longer matches
    infos = {n: (tmp_path / n).stat() for n in ("a", "b", "c")}
    entries = [(str(tmp_path / n), stat_key(info)) for n, info in infos.items()]
    assert cache.lookup_many(entries) == [cache.lookup(str(tmp_path / n), infos[n]) for n in infos]
    assert cache.lookup_many(entries) == [digest_bytes(b"aaa"), None, None]
    assert cache.lookup_many([]) == []
    cache.close()
