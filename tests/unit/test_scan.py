"""Walking local trees (qbucket._scan): regular files only, no symlinks, no silent gaps."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qbucket import (
    IncompleteScanError,
    LocalFileNotFoundError,
    LocalNotADirectoryError,
    LocalPathError,
    QBucketError,
)
from qbucket._hashing import stat_key
from qbucket._scan import LocalFile, check_directory, walk_files


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def relatives(root: Path, **kwargs: Any) -> list[str]:
    return [found.relative for found in walk_files(root, **kwargs)]


class SkipLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, path: str, reason: str) -> None:
        self.calls.append((path, reason))


def test_regular_files_with_relative_posix_paths(tmp_path: Path) -> None:
    make_tree(
        tmp_path, {"a.txt": b"a", "sub/b.bin": b"bb", "sub/deep/er/c": b"", "e m/ü.txt": b"x"}
    )
    (tmp_path / "empty-dir").mkdir()
    found = list(walk_files(tmp_path))
    assert sorted(f.relative for f in found) == ["a.txt", "e m/ü.txt", "sub/b.bin", "sub/deep/er/c"]
    for entry in found:
        assert isinstance(entry, LocalFile)
        assert "\\" not in entry.relative
        assert not entry.relative.startswith("/")
        assert Path(entry.path) == tmp_path / entry.relative
        stat = os.stat(entry.path)
        assert entry.size == stat.st_size
        assert entry.stamp == stat_key(stat)
    by_name = {f.relative: f for f in found}
    assert by_name["sub/b.bin"].size == 2
    assert by_name["sub/deep/er/c"].size == 0


def test_accepts_str_and_path_roots(tmp_path: Path) -> None:
    make_tree(tmp_path, {"x": b"1", "d/y": b"2"})
    assert relatives(tmp_path) == [f.relative for f in walk_files(str(tmp_path))]


def test_empty_directory(tmp_path: Path) -> None:
    assert list(walk_files(tmp_path)) == []


def test_symlinks_are_skipped_reported_and_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    make_tree(root, {"real.txt": b"r", "dir/inner.txt": b"i"})
    make_tree(outside, {"secret.txt": b"s", "nested/more.txt": b"m"})
    (root / "link-to-file").symlink_to(root / "real.txt")
    (root / "link-to-outside-file").symlink_to(outside / "secret.txt")
    (root / "link-to-dir").symlink_to(root / "dir", target_is_directory=True)
    (root / "dir" / "link-to-outside-dir").symlink_to(outside, target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "does-not-exist")
    (root / "loop").symlink_to(root / "loop")

    skipped = SkipLog()
    assert sorted(relatives(root, on_skip=skipped)) == ["dir/inner.txt", "real.txt"]
    assert sorted(skipped.calls) == sorted(
        (str(root / name), "symlink, not followed")
        for name in (
            "link-to-file",
            "link-to-outside-file",
            "link-to-dir",
            "dir/link-to-outside-dir",
            "dangling",
            "loop",
        )
    )


def test_symlinks_are_skipped_silently_without_on_skip(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real.txt": b"r"})
    (tmp_path / "link").symlink_to(tmp_path / "real.txt")
    assert relatives(tmp_path) == ["real.txt"]


def test_fifo_is_skipped_as_not_a_regular_file(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "sub/b.txt": b"b"})
    os.mkfifo(tmp_path / "sub" / "pipe")
    skipped = SkipLog()
    # A FIFO with no writer would block an open(): the walk must not open it.
    assert relatives(tmp_path, on_skip=skipped) == ["a.txt", "sub/b.txt"]
    assert skipped.calls == [(str(tmp_path / "sub" / "pipe"), "not a regular file")]


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(LocalFileNotFoundError) as info:
        list(walk_files(missing))
    error = info.value
    assert isinstance(error, FileNotFoundError)
    assert isinstance(error, LocalPathError)
    assert isinstance(error, QBucketError)
    assert error.path == str(missing)
    assert str(missing) in str(error)


def test_file_as_root(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_bytes(b"x")
    with pytest.raises(LocalNotADirectoryError) as info:
        list(walk_files(file))
    error = info.value
    assert isinstance(error, NotADirectoryError)
    assert isinstance(error, OSError)
    assert isinstance(error, QBucketError)
    assert error.path == str(file)
    assert str(file) in str(error)


def test_check_directory(tmp_path: Path) -> None:
    assert check_directory(tmp_path) == str(tmp_path)
    with pytest.raises(LocalFileNotFoundError):
        check_directory(tmp_path / "nope")


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/tree/b/locked``: os.scandir fails with EACCES there, as for a non-root user."""
    root = tmp_path / "tree"
    make_tree(
        root, {"a.txt": b"a", "b/ok.txt": b"ok", "b/locked/hidden.txt": b"h", "c/z.txt": b"z"}
    )
    locked = root / "b" / "locked"
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    yield locked


def test_unreadable_subdirectory_fails_the_whole_walk(tmp_path: Path, unreadable: Path) -> None:
    with pytest.raises(IncompleteScanError) as info:
        list(walk_files(tmp_path / "tree"))
    error = info.value
    assert error.path == str(unreadable)
    assert str(unreadable) in str(error)
    assert "Permission denied" in str(error)
    assert isinstance(error, LocalPathError)
    assert isinstance(error, OSError)
    assert isinstance(error.__cause__, PermissionError)


def test_unreadable_root_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(tmp_path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(IncompleteScanError) as info:
        list(walk_files(tmp_path))
    assert info.value.path == str(tmp_path)


def test_deterministic_order(tmp_path: Path) -> None:
    # Created in a scrambled order; the walk does not depend on it.
    make_tree(
        tmp_path,
        {
            "z.txt": b"",
            "b/d/e.txt": b"",
            "a.txt": b"",
            "c/x.txt": b"",
            "b/c.txt": b"",
            "b/a/f.txt": b"",
            "B.txt": b"",
        },
    )
    first = relatives(tmp_path)
    assert first == relatives(tmp_path) == relatives(tmp_path)
    # Depth first, names sorted within each directory: a directory's files, then its
    # subdirectories in name order.
    assert first == [
        "B.txt",
        "a.txt",
        "z.txt",
        "b/c.txt",
        "b/a/f.txt",
        "b/d/e.txt",
        "c/x.txt",
    ]


def test_temporary_files_of_unfinished_downloads_are_not_part_of_the_tree(tmp_path: Path) -> None:
    # A download killed between write and rename leaves `.<name>.qbucket-part-<tag>` behind.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "data.bin").write_bytes(b"whole")
    (tmp_path / "d" / ".data.bin.qbucket-part-1a2b3c4d0").write_bytes(b"wh")
    (tmp_path / "notes.qbucket-part-.txt").write_bytes(b"a user's own file")  # not hidden: kept
    skipped: list[tuple[str, str]] = []
    found = [f.relative for f in walk_files(tmp_path, on_skip=lambda p, r: skipped.append((p, r)))]
    assert sorted(found) == ["d/data.bin", "notes.qbucket-part-.txt"]
    assert skipped == [
        (
            str(tmp_path / "d" / ".data.bin.qbucket-part-1a2b3c4d0"),
            "an unfinished download's temporary file",
        )
    ]
