"""Downloads: atomic, checked, and never outside the target directory.

Bytes go to a hidden temporary file beside the target (``.<name>.qbucket-part-<random>``); the
size, and the MD5 when the ETag is one (else the SHA-1 qbucket stored at upload, for objects
fetched in parallel ranges), are checked; only then is the file renamed to its final name. A
failure removes the temporary file. When the listing's ETag is known, the GET is conditional on
it (``If-Match``), or for a small object whose ETag is its MD5 checked against it, so a file is
never a mix of two versions of an object. The small objects of a batch are written by threads of
their own (:mod:`qbucket._file_writer`) while the next requests go out.
Keys obstore cannot name exactly are fetched through boto3.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import itertools
import os
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ._error_mapping import translate
from ._exceptions import (
    LocalPathError,
    MissingKeyError,
    QBucketError,
    TransferError,
    UnsafeKeyError,
)
from ._file_writer import FileWriter
from ._hashing import SHA1_METADATA, plain_md5_etag
from ._keys import is_directory_marker, local_path_for_key, obstore_can_address
from ._objects import ObjectSummary
from ._progress import ProgressSink
from ._scan import TEMP_MARK
from ._transfer import each_bounded, in_thread, repeated, repeated_in_thread
from ._transport import Transport

if TYPE_CHECKING:
    from obstore import Bytes

CHUNK = 4 << 20
INLINE_WRITE = 256 << 10  # the general path writes these on the loop thread itself
SMALL_OBJECT = 8 << 20  # read whole into memory, written in one go
# Bytes of small listed objects fetched and not yet written, at most: further GETs wait (64
# requests in flight of 8 MiB objects would otherwise hold 512 MiB). 4 KiB objects never reach it.
UNWRITTEN_BUDGET = 64 << 20
# Downloads of a batch under way at once: requests in flight (Transport.concurrency) and, beyond
# them, small objects fetched and waiting for the writer threads.
JOBS_PER_REQUEST_SLOT = 4
PARALLEL_THRESHOLD = 64 << 20  # above: parallel ranged GETs into one file
# Measured on 2 x 256 MiB, medians of 11 alternating runs: 32 MiB ranges 1.00 s, 64 MiB 0.95 s
# (SeaweedFS spends less CPU per byte on fewer, longer reads; 16 MiB was slower still).
PART = 64 << 20
PART_CONCURRENCY = 4  # per file; Transport.ranges bounds the streams of all files together
PART_CHUNK = 256 << 10  # measured: 1 MiB chunks cost 2.5x the page faults, no speed
PROGRESS_STEP = 1 << 20  # a ranged download reports progress every MiB


class _Body(NamedTuple):
    size: int
    e_tag: str | None
    last_modified: datetime.datetime
    chunks: AsyncIterator[bytes]


# Temporary names: a random tag per process and a counter (a getrandom call per file showed in
# the profile of many small downloads); the file is created with O_EXCL all the same.
_names = itertools.count()
_process_tag = secrets.token_hex(4)


def _new_process_tag() -> None:
    global _process_tag
    _process_tag = secrets.token_hex(4)


os.register_at_fork(after_in_child=_new_process_tag)


def temporary_path(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}{TEMP_MARK}{_process_tag}{next(_names):x}")


async def _open_boto3(transport: Transport, bucket: str, key: str, e_tag: str | None) -> _Body:
    client = transport.s3client
    if e_tag:
        request = functools.partial(client.get_object, Bucket=bucket, Key=key, IfMatch=e_tag)
    else:
        request = functools.partial(client.get_object, Bucket=bucket, Key=key)
    response: Any = await in_thread(request)
    stream = response["Body"]

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await in_thread(stream.read, CHUNK):
                yield chunk
        finally:
            stream.close()

    return _Body(
        int(response["ContentLength"]), response.get("ETag"), response["LastModified"], chunks()
    )


def _check(
    bucket: str, key: str, received: int, size: int, md5: str | None, expected: str | None
) -> None:
    if received != size:
        raise TransferError(
            f"download of s3://{bucket}/{key} got {received} of {size} bytes",
            bucket=bucket,
            key=key,
        )
    if expected is not None and md5 != expected:
        raise TransferError(
            f"download of s3://{bucket}/{key} does not match its MD5 ETag", bucket=bucket, key=key
        )


def _install(temporary: Path, destination: Path, when: datetime.datetime) -> None:
    """The complete, checked temporary file becomes ``destination`` (the object's time as its
    mtime, as ``aws s3 sync`` and rclone do)."""
    stamp = when.timestamp()
    os.utime(temporary, (stamp, stamp))
    os.replace(temporary, destination)


def _write_whole(
    bucket: str,
    key: str,
    data: bytes | Bytes,
    size: int,
    md5_expected: str | None,
    temporary: Path,
    destination: Path,
    when: datetime.datetime,
) -> None:
    """A small object, already in memory: check, write and install it in one go (os-level
    calls: open() adds an fstat, an ioctl and an lseek per file)."""
    _check(
        bucket,
        key,
        len(data),
        size,
        hashlib.md5(data).hexdigest() if md5_expected else None,
        md5_expected,
    )
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        stamp = when.timestamp()
        os.utime(fd, (stamp, stamp))
    finally:
        os.close(fd)
    os.replace(temporary, destination)


def _write_new(
    bucket: str,
    key: str,
    data: bytes | Bytes,
    temporary: Path,
    destination: Path,
    when: datetime.datetime,
) -> None:
    """:func:`_write_whole` of checked bytes, on the writer thread: no temporary file is left
    behind when it fails."""
    try:
        _write_whole(bucket, key, data, len(data), None, temporary, destination, when)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


async def _fetched_small(
    transport: Transport,
    writer: FileWriter,
    bucket: str,
    listed: ObjectSummary,
    destination: Path,
) -> bool:
    """A small listed object whose ETag is its MD5, in one request: a GET of its listed byte
    range, whose MD5 proves it is the listed version (an If-Match GET needs a second round
    trip through obstore for the body), then written by ``writer`` once the request's slot is
    free. False, having written nothing, for any other object, or when the object is not that
    version any more: the caller then takes the general path, which reports why."""
    from obstore import get_range_async

    md5_expected = plain_md5_etag(listed.e_tag)
    if not (md5_expected and 0 < listed.size <= SMALL_OBJECT and obstore_can_address(listed.key)):
        return False
    key, size = listed.key, listed.size
    await writer.reserve(size)
    try:
        async with transport.limit:
            try:
                data = await get_range_async(transport.store(bucket), key, start=0, end=size)
            except Exception:  # noqa: BLE001 - the general path repeats the GET and names the error
                return False
        if len(data) != size or hashlib.md5(data).hexdigest() != md5_expected:
            return False
        when = listed.last_modified
        try:
            await writer.write(
                functools.partial(
                    _write_new, bucket, key, data, temporary_path(destination), destination, when
                )
            )
        except Exception as exc:
            raise translate(
                exc, action="download", bucket=bucket, key=key, path=str(destination)
            ) from exc
    finally:
        writer.release(size)
    return True


async def _stream_into(
    bucket: str, key: str, body: _Body, temporary: Path, sink: ProgressSink
) -> None:
    """Any object, as one stream: written chunk by chunk, MD5 checked on the way."""
    md5_expected = plain_md5_etag(body.e_tag)
    digest = hashlib.md5() if md5_expected else None
    received = 0
    stream = await in_thread(open, temporary, "xb")
    try:
        async for chunk in body.chunks:
            await in_thread(stream.write, chunk)
            if digest is not None:
                digest.update(chunk)
            received += len(chunk)
            if received < body.size:
                sink.update(key, received, body.size)
    finally:
        await in_thread(stream.close)
    _check(bucket, key, received, body.size, digest.hexdigest() if digest else None, md5_expected)


class _InOrderDigest:
    """The MD5 or SHA-1 of a file written out of order (parallel ranges), computed as the written
    prefix grows: each extent is hashed once the bytes before it are, from the chunk in hand
    when it is the next one, else read back from the file (page cache). The hashing overlaps
    the download instead of re-reading the whole file at the end."""

    def __init__(self, fd: int, algorithm: str, expected: str) -> None:
        self._fd = fd
        self.algorithm = algorithm
        self._expected = expected
        self._digest = hashlib.new(algorithm)
        self._frontier = 0
        self._pending: dict[int, int] = {}  # written, not yet hashed: start -> end
        self._lock = threading.Lock()

    def written(self, start: int, chunk: bytes) -> None:
        """``chunk`` is now in the file at ``start`` (blocking: call from a worker thread)."""
        with self._lock:
            self._pending[start] = start + len(chunk)
            while self._frontier in self._pending:
                begin = self._frontier
                end = self._pending.pop(begin)
                if begin == start:
                    self._digest.update(chunk)
                else:
                    self._digest.update(os.pread(self._fd, end - begin, begin))
                self._frontier = end

    def matches(self, size: int) -> bool:
        """The whole ``size`` bytes were hashed, to the expected digest."""
        return self._frontier == size and self._digest.hexdigest() == self._expected


class _RangedFile:
    """The temporary file of one ranged download, filled by worker threads, a range each.

    A range is fetched and written by one thread with obstore's blocking API, so its chunks go
    from the network to ``pwrite`` without a hop through the event loop per chunk (measured on
    2 x 256 MiB: 1.5 s -> 1.0 s, half the system time, and level with s5cmd). The descriptor
    is closed by whoever leaves last: a range still running after another one failed, or after
    a cancellation, never writes through a descriptor number that was closed and reused; it
    notices :attr:`stop` at its next chunk."""

    def __init__(
        self, fd: int, report: Callable[[int], object], answered: Callable[[], object]
    ) -> None:
        self.fd = fd
        self.stop = threading.Event()
        # What the whole file must hash to: the MD5 of a plain ETag, known up front, else the
        # SHA-1 that qbucket stored at upload, known once the first range answered.
        self.hashing: _InOrderDigest | None = None
        self.received = 0
        self._report = report
        self._answered = answered  # called once the first range's answer is in
        self._reported = 0
        self._users = 1  # the coroutine that opened it
        self._lock = threading.Lock()

    def fetch(self, store: Any, bucket: str, key: str, e_tag: str, start: int, end: int) -> None:
        """Write bytes ``start``-``end`` of the object, as it is at ``e_tag`` (blocking)."""
        from obstore import get

        with self._lock:
            if self._users == 0 or self.stop.is_set():
                return
            self._users += 1
        try:
            options: Any = {"range": (start, end), "if_match": e_tag}
            result = repeated_in_thread(lambda: get(store, key, options=options))
            if start == 0:
                if self.hashing is None and result.attributes.get(SHA1_METADATA):
                    self.expect("sha1", str(result.attributes[SHA1_METADATA]))
                self._answered()
            offset = start
            for chunk in result.stream(min_chunk_size=PART_CHUNK):
                if self.stop.is_set():
                    return
                os.pwrite(self.fd, chunk, offset)
                if self.hashing is not None:
                    self.hashing.written(offset, chunk)
                offset += len(chunk)
                self._count(len(chunk))
            if offset != end:
                raise TransferError(
                    f"download of s3://{bucket}/{key}: bytes {start}-{end} came back short",
                    bucket=bucket,
                    key=key,
                )
        finally:
            self.release()

    def expect(self, algorithm: str, hexdigest: str) -> None:
        """Check the file against ``hexdigest``: call before any byte is written."""
        self.hashing = _InOrderDigest(self.fd, algorithm, hexdigest)

    def _count(self, nbytes: int) -> None:
        with self._lock:
            self.received += nbytes
            if self.received - self._reported < PROGRESS_STEP:
                return
            self._reported = self.received
        self._report(self.received)

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            os.close(self.fd)


async def _ranges_into(
    transport: Transport,
    bucket: str,
    key: str,
    size: int,
    e_tag: str,
    temporary: Path,
    sink: ProgressSink,
) -> None:
    """A large object: parallel ranged GETs, each pinned to ``e_tag`` (If-Match) so that the
    parts cannot come from two versions, written in place with pwrite. The file must match the
    MD5 of a plain ETag, else the SHA-1 that qbucket stored at upload, if any (an ETag of
    parts is no digest of the content)."""
    import asyncio

    store = transport.store(bucket)
    loop = asyncio.get_running_loop()
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # read back to hash
    answered = asyncio.Event()
    target = _RangedFile(
        await in_thread(os.open, temporary, flags, 0o666),
        lambda received: loop.call_soon_threadsafe(sink.update, key, min(received, size - 1), size),
        lambda: loop.call_soon_threadsafe(answered.set),
    )
    md5 = plain_md5_etag(e_tag)
    if md5 is not None:
        target.expect("md5", md5)

    async def part(start: int) -> None:
        async with transport.ranges:
            end = min(start + PART, size)
            await in_thread(target.fetch, store, bucket, key, e_tag, start, end)

    # The first range starts alone and the others once its answer is in, so that a stored SHA-1
    # is known before any other byte is written: then every chunk is hashed as it lands.
    # (Waiting for the whole first range instead cost ~0.1 s on 2 x 256 MiB.)
    first = asyncio.ensure_future(part(0))
    try:
        heard = asyncio.ensure_future(answered.wait())
        await asyncio.wait([first, heard], return_when=asyncio.FIRST_COMPLETED)
        heard.cancel()
        if first.done():
            first.result()  # its error, if it failed before answering
        await each_bounded(range(PART, size, PART), part, PART_CONCURRENCY)
        await first
    finally:
        first.cancel()  # if still running after another range failed: its thread sees stop
        target.stop.set()
        target.release()
    _check(bucket, key, target.received, size, None, None)
    if target.hashing is not None and not target.hashing.matches(size):
        by_md5 = target.hashing.algorithm == "md5"
        what = "the MD5 of its ETag" if by_md5 else "the SHA-1 stored at its upload"
        raise TransferError(
            f"download of s3://{bucket}/{key} does not match {what}", bucket=bucket, key=key
        )


async def download(
    transport: Transport,
    bucket: str,
    key: str,
    destination: Path,
    sink: ProgressSink,
    *,
    listed: ObjectSummary | None = None,
) -> Path:
    """GET ``key`` into ``destination`` atomically: temporary file, checks, rename.

    Args:
        listed: what a listing said of the object; the GET must then see that same object
            (If-Match on its ETag), and a large one is fetched in parallel ranges at once.
    """
    temporary = temporary_path(destination)
    expected_etag = listed.e_tag if listed is not None and listed.e_tag else None
    try:
        if (
            listed is not None
            and expected_etag
            and listed.size > PARALLEL_THRESHOLD
            and obstore_can_address(key)
        ):
            sink.update(key, 0, listed.size)
            await _ranges_into(transport, bucket, key, listed.size, expected_etag, temporary, sink)
            await in_thread(_install, temporary, destination, listed.last_modified)
            sink.update(key, listed.size, listed.size)
        elif obstore_can_address(key):
            await _download_obstore(
                transport, bucket, key, destination, temporary, sink, expected_etag
            )
        else:
            body = await _open_boto3(transport, bucket, key, expected_etag)
            if body.size:
                sink.update(key, 0, body.size)
            await _stream_into(bucket, key, body, temporary, sink)
            await in_thread(_install, temporary, destination, body.last_modified)
            sink.update(key, body.size, body.size)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, Exception):
            error = translate(exc, action="download", bucket=bucket, key=key, path=str(destination))
            if isinstance(error, MissingKeyError):
                error.path = None  # a remote miss, whatever local path was at hand
            raise error from exc
        raise
    return destination


async def _download_obstore(
    transport: Transport,
    bucket: str,
    key: str,
    destination: Path,
    temporary: Path,
    sink: ProgressSink,
    expected_etag: str | None,
) -> None:
    from obstore import get_async

    options: Any = {"if_match": expected_etag} if expected_etag else {}
    store = transport.store(bucket)
    try:
        result = await repeated(lambda: get_async(store, key, options=options))
    except Exception as exc:
        raise translate(exc, action="download", bucket=bucket, key=key) from exc
    meta = result.meta
    size, e_tag, when = int(meta["size"]), meta["e_tag"], meta["last_modified"]
    md5_expected = plain_md5_etag(e_tag)
    if size <= SMALL_OBJECT:
        data = bytes(await result.bytes_async())
        if size <= INLINE_WRITE:
            # A few syscalls: cheaper on the loop than the thread handoffs of the executor.
            _write_whole(bucket, key, data, size, md5_expected, temporary, destination, when)
        else:
            await in_thread(
                _write_whole, bucket, key, data, size, md5_expected, temporary, destination, when
            )
    else:
        sink.update(key, 0, size)
        if size > PARALLEL_THRESHOLD and md5_expected is None and e_tag:
            # The open GET's body is not read: dropping it closes that connection early.
            del result
            await _ranges_into(transport, bucket, key, size, e_tag, temporary, sink)
        else:
            body = _Body(size, e_tag, when, result.stream(min_chunk_size=CHUNK).__aiter__())
            await _stream_into(bucket, key, body, temporary, sink)
        await in_thread(_install, temporary, destination, when)
    sink.update(key, size, size)  # the last call, once the file is in place


Job = tuple[ObjectSummary, Path]  # a listed object and its destination below the root


async def download_all(
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
    failures: list[QBucketError] = []
    jobs: list[Job] = []
    for summary in summaries:
        if is_directory_marker(summary.key):
            continue
        try:
            jobs.append((summary, local_path_for_key(root, summary.key, bucket=bucket)))
        except UnsafeKeyError as exc:
            failures.append(exc)
    sink.add_total(len(jobs), sum(summary.size for summary, _ in jobs))
    done, errors = await download_jobs(transport, bucket, jobs, root, sink)
    return sorted(str(destination) for _, destination in done), failures + errors


async def download_jobs(
    transport: Transport,
    bucket: str,
    jobs: Sequence[Job],
    root: Path,
    sink: ProgressSink,
    report: Callable[[str], None] | None = None,
) -> tuple[list[Job], list[QBucketError]]:
    """Download each object to its destination (already checked to be below ``root``), many at
    once; returns (the jobs done, per-key failures). A directory that resolves outside ``root``
    (a planted symlink) receives nothing."""
    # Every directory once, before any download: per job, the many workers starting together
    # would each make and check the same few directories (a thread hop each).
    directories = sorted({destination.parent for _, destination in jobs})
    problems = await in_thread(_prepare_directories, root, directories)
    done: list[Job] = []
    failures: list[QBucketError] = []
    writer = FileWriter(UNWRITTEN_BUDGET)

    async def one(job: Job) -> None:
        summary, destination = job
        problem = problems.get(destination.parent)
        if problem is not None:
            failures.append(_directory_failure(problem, bucket, summary.key, destination))
            return
        try:
            if await _fetched_small(transport, writer, bucket, summary, destination):
                sink.update(summary.key, summary.size, summary.size)
            else:
                await transport.bounded(
                    download(transport, bucket, summary.key, destination, sink, listed=summary)
                )
        except MissingKeyError:
            failures.append(
                MissingKeyError(
                    f"s3://{bucket}/{summary.key} was deleted during the download",
                    bucket=bucket,
                    key=summary.key,
                )
            )
            return
        except (QBucketError, OSError) as exc:
            error = translate(exc, action="download", bucket=bucket, key=summary.key)
            error.key = error.key or summary.key
            error.path = error.path or str(destination)
            failures.append(error)
            return
        done.append(job)
        if report:
            report(f"download s3://{bucket}/{summary.key} -> {destination}")

    try:
        await each_bounded(
            across_directories(jobs), one, JOBS_PER_REQUEST_SLOT * transport.concurrency
        )
    finally:
        writer.close()
    return done, failures


def across_directories(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` taken from each destination directory in turn (each one's in their order), so
    that the writer threads seldom create files in the same directory at once: ext4 takes the
    directory's lock for each create. On 2000 x 4 KiB in 20 directories, medians of 11
    alternating runs: 3.20 -> 2.96 s, a seventh less system time."""
    by_directory: dict[Path, list[Job]] = {}
    for job in jobs:
        by_directory.setdefault(job[1].parent, []).append(job)
    rounds = itertools.zip_longest(*by_directory.values())
    return [job for one_each in rounds for job in one_each if job is not None]


def _prepare_directories(root: Path, directories: Sequence[Path]) -> dict[Path, Exception]:
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


def _directory_failure(
    problem: Exception, bucket: str, key: str, destination: Path
) -> QBucketError:
    """The error of one job whose directory cannot take it (each job gets its own)."""
    if isinstance(problem, LocalPathError):
        return LocalPathError(str(problem), bucket=bucket, key=key, path=problem.path)
    error = translate(problem, action="download", bucket=bucket, key=key)
    error.path = error.path or str(destination)
    return error
