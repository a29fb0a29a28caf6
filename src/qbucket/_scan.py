"""Walking local trees: regular files only, symlinks never followed, and no silent gaps.

A sync deletes remote objects that have no local counterpart, so a walk that misses part of the
tree (an unreadable subdirectory, a root that vanished) must fail rather than return less: every
error here raises :class:`IncompleteScanError`, naming the path, before anything is deleted.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import NamedTuple

from ._exceptions import IncompleteScanError, LocalFileNotFoundError, LocalNotADirectoryError
from ._hashing import Stamp, stat_key

SkipReporter = Callable[[str, str], None]  # (path, reason)

# Downloads write ``.<name>.qbucket-part-<tag>`` beside their target and rename it when complete.
# One left behind by a killed process is not part of the tree: never uploaded, never compared.
TEMP_MARK = ".qbucket-part-"


def is_download_temporary(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name


class LocalFile(NamedTuple):
    """A regular file found by a walk.

    Attributes:
        relative: its path below the walked root, with ``/`` separators.
        path: its full path.
        size: its size in bytes when walked.
        stamp: its :func:`stat_key` when walked, so the digest cache is read without a second
            stat of every file.
    """

    relative: str
    path: str
    size: int
    stamp: Stamp


class SourceFile(NamedTuple):
    """A local file to mirror: its key, its path, its size when it was found and, if the walk
    that found it stat'ed it, its :func:`stat_key` then."""

    key: str
    path: str
    size: int
    stamp: Stamp | None = None


def check_directory(root: str | os.PathLike[str]) -> str:
    """``root`` as a str if it is a directory, else the error that says what it is."""
    root = os.fspath(root)
    try:
        info = os.stat(root)
    except FileNotFoundError:
        raise LocalFileNotFoundError(f"directory {root} does not exist", path=root) from None
    except OSError as exc:
        raise IncompleteScanError(
            f"cannot read directory {root}: {exc.strerror}", path=root
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise LocalNotADirectoryError(f"{root} is not a directory", path=root)
    return root


def walk_files(
    root: str | os.PathLike[str],
    *,
    on_skip: SkipReporter | None = None,
    prune: Callable[[str], bool] | None = None,
) -> Iterator[LocalFile]:
    """Every regular file below ``root``, depth first, names sorted within each directory.

    Symlinks (to files or directories) and special files are skipped and reported to
    ``on_skip``; they are never followed. Directories for which ``prune(relative path)`` is
    true (a filter that excludes everything in them) are not entered.

    Raises:
        LocalFileNotFoundError: ``root`` does not exist.
        LocalNotADirectoryError: ``root`` is not a directory.
        IncompleteScanError: a directory below ``root`` could not be read.
    """
    top = check_directory(root)
    pending = [("", top)]
    while pending:
        relative_dir, directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                listed = sorted(entries, key=lambda entry: entry.name, reverse=True)
        except OSError as exc:
            raise IncompleteScanError(
                f"cannot read directory {directory}: {exc.strerror or exc}; nothing was deleted",
                path=directory,
            ) from exc
        files: list[LocalFile] = []
        for entry in listed:
            relative = f"{relative_dir}{entry.name}"
            try:
                if entry.is_symlink():
                    if on_skip:
                        on_skip(entry.path, "symlink, not followed")
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if prune is None or not prune(relative):
                        pending.append((relative + "/", entry.path))
                    continue
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walked: it is simply not part of the tree
            except OSError as exc:
                raise IncompleteScanError(
                    f"cannot read {entry.path}: {exc.strerror or exc}; nothing was deleted",
                    path=entry.path,
                ) from exc
            if not stat.S_ISREG(info.st_mode):
                if on_skip:
                    on_skip(entry.path, "not a regular file")
                continue
            if is_download_temporary(entry.name):
                if on_skip:
                    on_skip(entry.path, "an unfinished download's temporary file")
                continue
            files.append(LocalFile(relative, entry.path, info.st_size, stat_key(info)))
        yield from reversed(files)
