"""A batch of downloads: where each object lands, the checks before any byte is fetched, how a
failure of one is reported, and which engine fetches them.

Two engines share this: the event loop of :mod:`qbucket._download` (many objects at once, small
ones above all), and the plain threads of :mod:`qbucket._ranged` (large objects in parallel
ranges). A batch made only of large objects never starts the loop: asyncio's import and the
loop's start were ~0.1 s of a ~1 s download of 2 x 256 MiB.
"""

from __future__ import annotations

import datetime
import itertools
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._error_mapping import translate
from ._exceptions import LocalPathError, MissingKeyError, QBucketError, UnsafeKeyError
from ._keys import is_directory_marker, local_path_for_key
from ._objects import ObjectSummary
from ._progress import ProgressSink
from ._scan import TEMP_MARK

if TYPE_CHECKING:
    from ._transport import Transport

Job = tuple[ObjectSummary, Path]  # a listed object and its destination below the root

# Temporary names: a random tag per process and a counter (a getrandom call per file showed in
# the profile of many small downloads); the file is created with O_EXCL all the same.
_names = itertools.count()
_process_tag = secrets.token_hex(4)


def _new_process_tag() -> None:
    global _process_tag
    _process_tag = secrets.token_hex(4)


os.register_at_fork(after_in_child=_new_process_tag)


def temporary_path(destination: Path) -> Path:
    """A hidden name beside ``destination`` for its bytes until they are checked."""
    return destination.with_name(f".{destination.name}{TEMP_MARK}{_process_tag}{next(_names):x}")


def install(temporary: Path, destination: Path, when: datetime.datetime) -> None:
    """The complete, checked temporary file becomes ``destination`` (the object's time as its
    mtime, as ``aws s3 sync`` and rclone do)."""
    stamp = when.timestamp()
    os.utime(temporary, (stamp, stamp))
    os.replace(temporary, destination)


def jobs_below(
    root: Path, summaries: Sequence[ObjectSummary], bucket: str
) -> tuple[list[Job], list[QBucketError]]:
    """The download of each listed object below ``root``, and a failure for each key that would
    land outside it. ``dir/`` markers never become files."""
    jobs: list[Job] = []
    refused: list[QBucketError] = []
    for summary in summaries:
        if is_directory_marker(summary.key):
            continue
        try:
            jobs.append((summary, local_path_for_key(root, summary.key, bucket=bucket)))
        except UnsafeKeyError as exc:
            refused.append(exc)
    return jobs, refused


def prepare_directories(root: Path, directories: Sequence[Path]) -> dict[Path, Exception]:
    """Make ``root`` (its failure raises), then each directory; return why each one that
    cannot take files cannot: it could not be made, or it resolves outside ``root`` (a planted
    symlink)."""
    root.mkdir(parents=True, exist_ok=True)
    real_root = os.path.realpath(root)
    problems: dict[Path, Exception] = {}
    for directory in directories:
        real = os.path.realpath(directory)  # resolved first: not even an empty directory outside
        if real != real_root and not real.startswith(real_root + os.sep):
            problems[directory] = LocalPathError(
                f"{directory} leads outside {root} (a symlink?)", path=str(directory)
            )
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problems[directory] = exc
    return problems


def directories_of(jobs: Sequence[Job]) -> list[Path]:
    """Every destination directory once: per job, the many workers starting together would each
    make and check the same few directories."""
    return sorted({destination.parent for _, destination in jobs})


def directory_failure(problem: Exception, bucket: str, key: str, destination: Path) -> QBucketError:
    """The error of one job whose directory cannot take it (each job gets its own)."""
    if isinstance(problem, LocalPathError):
        return LocalPathError(str(problem), bucket=bucket, key=key, path=problem.path)
    error = translate(problem, action="download", bucket=bucket, key=key)
    error.path = error.path or str(destination)
    return error


def job_failure(exc: QBucketError | OSError, bucket: str, job: Job) -> QBucketError:
    """The per-key failure of a download that raised ``exc``: it names the key and the file."""
    summary, destination = job
    if isinstance(exc, MissingKeyError):
        return MissingKeyError(
            f"s3://{bucket}/{summary.key} was deleted during the download",
            bucket=bucket,
            key=summary.key,
        )
    error = translate(exc, action="download", bucket=bucket, key=summary.key)
    error.key = error.key or summary.key
    error.path = error.path or str(destination)
    return error


def download_all(
    transport: Transport,
    bucket: str,
    summaries: Sequence[ObjectSummary],
    root: Path,
    sink: ProgressSink,
) -> tuple[list[str], list[QBucketError]]:
    """Download every listed object below ``root``; returns (paths written, per-key failures).

    Unsafe keys and ``dir/`` markers never become files; a symlink inside ``root`` never
    carries a file outside it.
    """
    from . import _ranged

    jobs, failures = jobs_below(root, summaries, bucket)
    sink.add_total(len(jobs), sum(summary.size for summary, _ in jobs))
    if all(_ranged.takes(summary) for summary, _ in jobs):
        problems = prepare_directories(root, directories_of(jobs))
        done, errors = _ranged.download_jobs(transport, bucket, jobs, problems, sink)
    else:
        from ._download import download_jobs

        done, errors = transport.run(download_jobs(transport, bucket, jobs, root, sink))
    return sorted(str(destination) for _, destination in done), failures + errors
