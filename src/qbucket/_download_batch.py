"""A batch of downloads: where each object lands, the checks before any byte is fetched, how a
failure of one is reported, and which engine fetches them.

Three engines share this: the event loop of :mod:`qbucket._download` (any object, many at once),
the plain threads of :mod:`qbucket._small_downloads` (small objects whose ETag is their MD5)
and those of :mod:`qbucket._ranged` (large objects in parallel ranges). A batch made only of
large objects never starts the loop: asyncio's import and the loop's start were ~0.1 s of a
~1 s download of 2 x 256 MiB.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._error_mapping import translate
from ._exceptions import (
    LocalPathError,
    MissingKeyError,
    QBucketError,
    TransferError,
    UnsafeKeyError,
)
from ._keys import is_directory_marker, local_path_for_key
from ._objects import ObjectSummary
from ._progress import ProgressSink
from ._scan import TEMP_MARK

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from ._transport import Transport

Job = tuple[ObjectSummary, Path]  # a listed object and its destination below the root

# Downloads write in pieces of 32 KiB, as s5cmd does. Since Linux 6.16, ext4 caches a file in
# folios as large as the writes into it: 256 KiB writes ask the page allocator for 64-page
# blocks, while 8 pages is the largest size it keeps warm per CPU from recent frees. After
# another program's files were deleted, the large blocks came cold (on this VM, pages the host
# had taken back). 2 x 256 MiB, medians of 5 alternating runs: after s5cmd 1.25 s with 256 KiB
# writes (1.17 s of system time), 0.90 s in 32 KiB pieces (0.57 s); after the original SDK 1.08
# vs 0.88 s; after itself 0.96 s either way. 64 KiB pieces ranged 0.85-1.32 s.
WRITE = 32 << 10

# Temporary names: a random tag per process and a counter (a getrandom call per file showed in
# the profile of many small downloads); the file is created with O_EXCL all the same. Not the
# secrets module: it imports random and base64 (~2.5 ms of start-up) for the same os.urandom.
_names = itertools.count()
_process_tag = os.urandom(4).hex()


def _new_process_tag() -> None:
    global _process_tag
    _process_tag = os.urandom(4).hex()


os.register_at_fork(after_in_child=_new_process_tag)


def temporary_path(destination: Path) -> Path:
    """A hidden name beside ``destination`` for its bytes until they are checked."""
    return destination.with_name(f".{destination.name}{TEMP_MARK}{_process_tag}{next(_names):x}")


def write_at(fd: int, data: ReadableBuffer, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of the file open as ``fd``, WRITE bytes at a time (see
    there why). A short write (a disk filling up on the way) is continued, so that it raises
    instead of leaving a hole."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        written = os.pwrite(fd, view[done : done + WRITE], offset + done)
        if not written:  # no progress and no error: never loop on it
            raise OSError(errno.EIO, "the file took none of the bytes written to it")
        done += written


def write_whole(
    data: ReadableBuffer, temporary: Path, destination: Path, when: datetime.datetime
) -> None:
    """Checked bytes of a small object, written to ``temporary`` and installed as
    ``destination`` in one go (os-level calls: open() adds an fstat, an ioctl and an lseek per
    file). No temporary file is left behind when it fails."""
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            write_at(fd, data, 0)
            stamp = when.timestamp()
            os.utime(fd, (stamp, stamp))
        finally:
            os.close(fd)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def install(temporary: Path, destination: Path, when: datetime.datetime) -> None:
    """The complete, checked temporary file becomes ``destination`` (the object's time as its
    mtime, as ``aws s3 sync`` and rclone do)."""
    stamp = when.timestamp()
    os.utime(temporary, (stamp, stamp))
    os.replace(temporary, destination)


def check_size(bucket: str, key: str, received: int, size: int) -> None:
    """A download got the whole object, or it fails naming what came."""
    if received != size:
        raise TransferError(
            f"download of s3://{bucket}/{key} got {received} of {size} bytes",
            bucket=bucket,
            key=key,
        )


@contextlib.contextmanager
def removed_on_failure(temporary: Path, bucket: str, key: str, destination: Path) -> Iterator[None]:
    """A download into ``temporary``: on any failure the temporary file is removed, and an error
    becomes the qbucket error that names the key and ``destination`` (a missing key names no
    local path)."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, Exception):
            error = translate(exc, action="download", bucket=bucket, key=key, path=str(destination))
            if isinstance(error, MissingKeyError):
                error.path = None  # a remote miss, whatever local path was at hand
            raise error from exc
        raise


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


def _directory_failure(
    problem: Exception, bucket: str, key: str, destination: Path
) -> QBucketError:
    """The error of one job whose directory cannot take it (each job gets its own)."""
    if isinstance(problem, LocalPathError):
        return LocalPathError(str(problem), bucket=bucket, key=key, path=problem.path)
    error = translate(problem, action="download", bucket=bucket, key=key)
    error.path = error.path or str(destination)
    return error


def _job_failure(exc: QBucketError | OSError, bucket: str, job: Job) -> QBucketError:
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


class Outcomes:
    """What became of each job of one batch, recorded by either engine (a list append is atomic:
    the loop and the ranged threads share one).

    Args:
        problems: why each directory that cannot take files cannot (prepare_directories).
        report: told of each download done, as a line.
    """

    def __init__(
        self,
        bucket: str,
        problems: dict[Path, Exception],
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.bucket = bucket
        self._problems = problems
        self._report = report
        self.done: list[Job] = []
        self.failures: list[QBucketError] = []

    def __repr__(self) -> str:
        return f"Outcomes(done={len(self.done)}, failures={len(self.failures)})"

    def refused(self, job: Job) -> bool:
        """Whether the job's directory cannot take it (its failure is then recorded)."""
        summary, destination = job
        problem = self._problems.get(destination.parent)
        if problem is None:
            return False
        self.failures.append(_directory_failure(problem, self.bucket, summary.key, destination))
        return True

    def failed(self, job: Job, exc: QBucketError | OSError) -> None:
        self.failures.append(_job_failure(exc, self.bucket, job))

    def succeeded(self, job: Job) -> None:
        self.done.append(job)
        if self._report:
            self._report(f"download s3://{self.bucket}/{job[0].key} -> {job[1]}")


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
        outcomes = Outcomes(bucket, prepare_directories(root, directories_of(jobs)))
        _ranged.download_jobs(transport, jobs, outcomes, sink)
        done, errors = outcomes.done, outcomes.failures
    else:
        from ._download import download_jobs

        done, errors = transport.run(download_jobs(transport, bucket, jobs, root, sink))
    return sorted(str(destination) for _, destination in done), failures + errors
