"""Large downloads: parallel ranged GETs on plain threads, each written in place at its offset.

Each range is one GET signed like the listing's (SigV4, :class:`qbucket._listing.SignedEndpoint`),
on a connection of its own (:mod:`qbucket._http`), its body moved from the socket into the file
at its offset by splice (:mod:`qbucket._splice`); over TLS, read into a 256 KiB buffer and written
in 32 KiB pieces (see ``write_at``). No event loop and no obstore, which carry every
other request: obstore's stream copies each chunk once more to reach the chunk size asked for,
and a batch of a few large objects would pay asyncio's import and obstore's load (~60 ms
together) before its first byte.
Measured on 2 x 256 MiB against SeaweedFS, medians of 9 alternating runs: obstore ranges on
the loop 1.009 s, obstore ranges on plain threads 0.903 s, read and written here 0.826 s (user
CPU 0.34 -> 0.17 s); spliced, ~15 % less again (see qbucket._splice). Read buffers of 1 MiB and
more cost more system time than they save: the copy out of the socket then no longer stays in
the CPU's cache for pwrite (4 MiB: 2.3 s of it).

Every range is pinned to the listed ETag (If-Match), so a file is never stitched from two
versions; a range cut off mid-body is asked again from where it stopped. The file must match the
MD5 of a plain ETag, else the SHA-1 that qbucket stored at upload, if any (an ETag of parts is no
digest of the content), hashed in order as the ranges land.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._download_batch import (
    Job,
    Outcomes,
    check_size,
    install,
    removed_on_failure,
    temporary_path,
    write_at,
)
from ._error_mapping import HTTPProtocolError, translate
from ._exceptions import QBucketError, TransferError
from ._hashing import SHA1_METADATA, plain_md5_etag
from ._http import HTTPConnection, HTTPResponse
from ._keys import obstore_can_address
from ._listing import ATTEMPTS, SignedEndpoint, backoff_s, s3_error, worth_retrying
from ._objects import ObjectSummary
from ._progress import ProgressSink
from ._splice import AVAILABLE as SPLICE_AVAILABLE
from ._splice import SocketToFile
from ._threads import each_in_threads

if TYPE_CHECKING:
    import socket

    from ._transport import Transport

# Above this size an object comes down here, in parallel ranges when it has more than one PART;
# at or below it, whole in memory on the event loop. 8 MiB rather than 64: on 32 x 16 MiB
# (medians of 4 alternating runs) 1.64 s here against 2.15 s through obstore's stream, which
# copies each chunk and faults in fresh memory for it.
PARALLEL_THRESHOLD = 8 << 20
# Measured on 2 x 256 MiB, medians of 11 alternating runs: 32 MiB ranges 1.00 s, 64 MiB 0.95 s
# (SeaweedFS spends less CPU per byte on fewer, longer reads; 16 MiB was slower still).
PART = 64 << 20
PART_CONCURRENCY = 4  # streams per file
# Files fetched at once: with PART_CONCURRENCY, 8 streams in all. On 2 x 256 MiB, 4 streams
# 0.95 s, 6 0.93 s, 8 0.90 s; each holds one buffer, so memory stays flat however many files.
FILES_AT_ONCE = 2
BUFFER = 256 << 10
READ_BACK = 1 << 20  # what a digest reads back from the file at a time
PROGRESS_STEP = 1 << 20  # a ranged download reports progress every MiB
SHA1_HEADER = f"x-amz-meta-{SHA1_METADATA}"
# Bodies of plain-HTTP ranges move from the socket to the file by splice (qbucket._splice);
# False reads every one into a buffer and writes it with pwrite, as over TLS.
SPLICE = SPLICE_AVAILABLE


def takes(listed: ObjectSummary) -> bool:
    """Whether a listed object is fetched here: a large one, with an ETag to pin the ranges to.
    Keys obstore cannot name (``a//b``, control characters) are the ones S3 servers may read
    differently in a request path: the general path fetches them through boto3."""
    return (
        bool(listed.e_tag) and listed.size > PARALLEL_THRESHOLD and obstore_can_address(listed.key)
    )


class _Retry(Exception):
    """A range's attempt failed in a way worth another: the network, or a 5xx/SlowDown.
    ``cause`` is that failure; ``reached``, the offset up to which the range is written."""

    def __init__(self, cause: Exception, reached: int | None = None) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause
        self.reached = reached


class RangeClient:
    """Opens signed ranged GETs on one endpoint (path-style), a connection each. Thread-safe."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        access_key: str,
        secret_key: str,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._endpoint = SignedEndpoint(endpoint, region, access_key, secret_key)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    def __repr__(self) -> str:
        return f"RangeClient({self._endpoint.host!r})"

    def open(
        self, bucket: str, key: str, start: int, end: int, e_tag: str
    ) -> tuple[HTTPConnection, HTTPResponse]:
        """GET bytes ``start``-``end`` of ``key`` if its ETag is still ``e_tag``: the open
        connection and its answer, whose body is the range. The caller closes the connection.

        Raises:
            _Retry: the network failed, or the server answered 5xx or SlowDown.
            S3ResponseError: any other refusal (403, 404, 412...).
        """
        path = f"/{bucket}/{key}"
        headers = self._endpoint.sign("GET", path, {})
        headers["Range"] = f"bytes={start}-{end - 1}"
        headers["If-Match"] = e_tag
        connection = self._endpoint.connection(self._connect_timeout)
        try:
            connection.connect()
            connection.settimeout(self._read_timeout)
            connection.request("GET", quote(path, safe="/-_.~"), headers=headers)
            response = connection.getresponse()
            if response.status == 206 or (response.status == 200 and start == 0):
                served = response.getheader("Content-Range") or f"bytes {start}-"
                if served.startswith(f"bytes {start}-{end - 1}/") or response.status == 200:
                    return connection, response
                connection.close()
                raise TransferError(
                    f"download of s3://{bucket}/{key}: asked for bytes {start}-{end - 1}, "
                    f"the server sent {served}",
                    bucket=bucket,
                    key=key,
                )
            error = s3_error(response.status, response.read())
        except (OSError, HTTPProtocolError) as exc:  # timeouts are OSErrors
            connection.close()
            raise _Retry(exc) from exc
        connection.close()
        if worth_retrying(error):
            raise _Retry(error) from error
        raise error


class _InOrderDigest:
    """The MD5 or SHA-1 of a file written out of order (parallel ranges), computed as the written
    prefix grows: each extent is hashed once the bytes before it are, from the chunk in hand
    when it is the next one, else read back from the file (page cache). The hashing overlaps
    the download instead of re-reading the whole file at the end.

    What to hash for may be learnt late, from the first range's answer (a stored SHA-1): the
    extents written until then are kept, merged into one per range, and hashed once it is known.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.algorithm: str | None = None  # None: nothing to check, or not known yet
        self._expected = ""
        self._digest: Any = None
        self._decided = False
        self._frontier = 0
        # Written, not yet hashed, contiguous extents merged: start -> end, and end -> start.
        self._pending: dict[int, int] = {}
        self._pending_ends: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def decided(self) -> bool:
        return self._decided

    def expect(self, algorithm: str, expected: str) -> None:
        """The file must hash to ``expected``: hash what is already written in order."""
        with self._lock:
            self._decided = True
            self.algorithm, self._expected = algorithm, expected
            self._digest = hashlib.new(algorithm)
            self._advance()

    def nothing_to_expect(self) -> None:
        """No digest is known for this object: stop keeping track."""
        with self._lock:
            self._decided = True
            self._pending.clear()
            self._pending_ends.clear()

    def written(self, start: int, end: int, chunk: memoryview | None = None) -> None:
        """Bytes ``start``-``end`` are now in the file; ``chunk`` holds them when they passed
        through Python (else they are read back from the file when their turn comes)."""
        with self._lock:
            if self._decided and self._digest is None:
                return
            if chunk is not None and self._digest is not None and start == self._frontier:
                self._digest.update(chunk)  # the usual case for the first range: no read back
                self._frontier = end
            else:
                before = self._pending_ends.pop(start, None)
                if before is not None:
                    del self._pending[before]
                    start = before
                after = self._pending.pop(end, None)
                if after is not None:
                    del self._pending_ends[after]
                    end = after
                self._pending[start] = end
                self._pending_ends[end] = start
            if self._digest is not None:
                self._advance()

    def _advance(self) -> None:
        while self._frontier in self._pending:
            begin = self._frontier
            end = self._pending.pop(begin)
            del self._pending_ends[end]
            for piece in range(begin, end, READ_BACK):
                self._digest.update(os.pread(self._fd, min(READ_BACK, end - piece), piece))
            self._frontier = end

    def matches(self, size: int) -> bool:
        """The whole ``size`` bytes were hashed, to the expected digest."""
        return self._frontier == size and self._digest.hexdigest() == self._expected


class RangedFile:
    """The temporary file of one ranged download, filled by threads, a range each.

    The descriptor is closed by whoever leaves last: a range still running after another one
    failed, or after an interruption, never writes through a descriptor number that was closed
    and reused; it notices :attr:`stop` at its next chunk."""

    def __init__(
        self,
        client: RangeClient,
        bucket: str,
        key: str,
        e_tag: str,
        fd: int,
        path: Path,
        report: Callable[[int], object],
        batch_stop: threading.Event,
    ) -> None:
        self._client = client
        self.bucket, self.key, self._e_tag = bucket, key, e_tag
        self.fd = fd
        self._path = path  # named in the errors of writes
        self.stop = threading.Event()  # this file failed
        self._batch_stop = batch_stop  # the whole batch was interrupted
        # What the whole file must hash to: the MD5 of a plain ETag, known up front, else the
        # SHA-1 that qbucket stored at upload, known once the first range answered.
        self.digest = _InOrderDigest(fd)
        md5 = plain_md5_etag(e_tag)
        if md5:
            self.digest.expect("md5", md5)
        self.received = 0
        self._report = report
        self._reported = 0
        self._users = 1  # whoever opened it
        self._lock = threading.Lock()

    def stopped(self) -> bool:
        """Whether the ranges still running should stop at their next chunk."""
        return self.stop.is_set() or self._batch_stop.is_set()

    def fetch(self, start: int, end: int) -> None:
        """Write bytes ``start``-``end`` of the object, asking again from where an attempt
        stopped (blocking)."""
        with self._lock:
            if self._users == 0 or self.stopped():
                return
            self._users += 1
        try:
            self._fetch(start, end)
        finally:
            self.release()

    def _fetch(self, start: int, end: int) -> None:
        buffer = memoryview(bytearray(BUFFER))
        offset = start
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._attempt(offset, end, buffer)
                return
            except _Retry as exc:
                if attempt == ATTEMPTS or self.stopped():
                    raise translate(
                        exc.cause, action="download", bucket=self.bucket, key=self.key
                    ) from exc.cause
                if exc.reached is not None:
                    offset = exc.reached
            time.sleep(backoff_s(attempt))

    def _attempt(self, offset: int, end: int, buffer: memoryview) -> None:
        """One GET of bytes ``offset``-``end``, written as they come. Raises _Retry with the
        offset reached when the network fails."""
        connection, response = self._client.open(self.bucket, self.key, offset, end, self._e_tag)
        try:
            if offset == 0 and not self.digest.decided:
                stored = response.getheader(SHA1_HEADER)
                if stored:
                    self.digest.expect("sha1", stored)
                else:
                    self.digest.nothing_to_expect()
            detached = None
            if SPLICE:
                try:
                    detached = response.detach_body()
                except (OSError, HTTPProtocolError) as exc:
                    raise _Retry(exc, offset) from exc
            if detached is not None:
                head, sock = detached
                head_view = memoryview(head)[: end - offset]
                self._write(head_view, offset)
                self._splice(sock, offset + len(head_view), end)
                return
            while offset < end:
                if self.stopped():
                    return
                view = buffer[: min(BUFFER, end - offset)]
                try:
                    received = response.readinto(view)
                except (OSError, HTTPProtocolError) as exc:
                    raise _Retry(exc, offset) from exc
                if not received:
                    raise _Retry(
                        HTTPProtocolError(f"body ended {end - offset} bytes early"), offset
                    )
                self._write(view[:received], offset)
                offset += received
        finally:
            connection.close()

    def _splice(self, sock: socket.socket, offset: int, end: int) -> None:
        """The rest of a range's body, bytes ``offset``-``end``, from ``sock`` into the file
        without passing through Python (qbucket._splice)."""
        with SocketToFile() as pipe:
            while offset < end:
                if self.stopped():
                    return
                try:
                    received = pipe.receive(sock, end - offset)
                except OSError as exc:  # timeouts included
                    raise _Retry(exc, offset) from exc
                if not received:
                    raise _Retry(
                        HTTPProtocolError(f"body ended {end - offset} bytes early"), offset
                    )
                try:
                    pipe.deliver(self.fd, offset, received)
                except OSError as exc:  # the disk's, never retried
                    raise self._disk_error(exc) from exc
                self._landed(offset, offset + received, None)
                offset += received

    def _write(self, chunk: memoryview, offset: int) -> None:
        try:
            write_at(self.fd, chunk, offset)
        except OSError as exc:  # the disk's, never retried
            raise self._disk_error(exc) from exc
        self._landed(offset, offset + len(chunk), chunk)

    def _disk_error(self, exc: OSError) -> QBucketError:
        return translate(
            exc, action="download", bucket=self.bucket, key=self.key, path=str(self._path)
        )

    def _landed(self, start: int, end: int, chunk: memoryview | None) -> None:
        """Bytes ``start``-``end`` are in the file: hash them in turn, report progress."""
        self.digest.written(start, end, chunk)
        with self._lock:
            self.received += end - start
            if self.received - self._reported < PROGRESS_STEP:
                return
            self._reported = received = self.received
        self._report(received)

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            os.close(self.fd)


def _fill(target: RangedFile, size: int) -> None:
    """Every range of the file, PART_CONCURRENCY at a time, all starting at once: bytes that
    land before the first range's answer says which digest to check are hashed once it does."""
    starts = iter(range(0, size, PART))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while not target.stopped():
            with lock:
                start = next(starts, None)
            if start is None:
                return
            try:
                target.fetch(start, min(start + PART, size))
            except BaseException as exc:  # noqa: BLE001 - raised by the caller below
                errors.append(exc)
                target.stop.set()  # the other ranges stop at their next chunk
                return

    threads = [
        threading.Thread(target=worker, name="qbucket-range", daemon=True)
        for _ in range(min(PART_CONCURRENCY, -(-size // PART)))
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:
        target.stop.set()  # interrupted: the ranges stop at their next chunk, the last one out
        raise  # closes the file
    if errors:
        raise errors[0]


def download(
    client: RangeClient,
    bucket: str,
    key: str,
    size: int,
    e_tag: str,
    when: datetime.datetime,
    destination: Path,
    sink: ProgressSink,
    batch_stop: threading.Event | None = None,
) -> None:
    """GET the large object ``key`` (``size`` bytes at ``e_tag``) into ``destination``, in
    parallel ranges, atomically: temporary file, checks, rename (blocking). Once
    ``batch_stop`` is set, the ranges stop at their next chunk and nothing is installed."""
    temporary = temporary_path(destination)
    sink.update(key, 0, size)
    with removed_on_failure(temporary, bucket, key, destination):
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # read back to hash
        target = RangedFile(
            client,
            bucket,
            key,
            e_tag,
            os.open(temporary, flags, 0o666),
            destination,
            lambda received: sink.update(key, min(received, size - 1), size),
            batch_stop or threading.Event(),
        )
        try:
            _fill(target, size)
        finally:
            target.release()
        check_size(bucket, key, target.received, size)
        if target.digest.algorithm is not None and not target.digest.matches(size):
            by_md5 = target.digest.algorithm == "md5"
            what = "the MD5 of its ETag" if by_md5 else "the SHA-1 stored at its upload"
            raise TransferError(
                f"download of s3://{bucket}/{key} does not match {what}", bucket=bucket, key=key
            )
        install(temporary, destination, when)
    sink.update(key, size, size)  # the last call, once the file is in place


def download_jobs(
    transport: Transport, jobs: Sequence[Job], outcomes: Outcomes, sink: ProgressSink
) -> None:
    """Download each large object to its destination (already checked to be below the root),
    FILES_AT_ONCE at a time, into ``outcomes``. Blocking: runs on the calling thread and
    threads of its own."""
    client = transport.range_client()
    # Set when a file's download is interrupted (Ctrl-C, or a BaseException from a progress
    # callback): the other files stop at their next chunk instead of running to their end.
    interrupted = threading.Event()

    def one(job: Job) -> None:
        if outcomes.refused(job):
            return
        summary, destination = job
        try:
            download(
                client,
                outcomes.bucket,
                summary.key,
                summary.size,
                summary.e_tag,
                summary.last_modified,
                destination,
                sink,
                interrupted,
            )
        except (QBucketError, OSError) as exc:
            outcomes.failed(job, exc)
            return
        except BaseException:
            interrupted.set()
            raise
        outcomes.succeeded(job)

    each_in_threads(jobs, one, FILES_AT_ONCE)
