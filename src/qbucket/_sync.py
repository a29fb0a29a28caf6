"""Sync execution: scan results and a listing in, the plan carried out, a summary out.

Order of work, so that a failure never loses data:

1. list the remote scope while the local tree is walked and its files looked up in the digest
   cache or hashed (plain threads: see :mod:`._threads`);
2. plan (pure, :mod:`qbucket._planner`); read the stored SHA-1 of the few objects the listing
   cannot settle, and plan again;
3. check the plan against ``max_delete`` (:class:`TooManyDeletesError` before any change);
4. upload new contents and copy from existing remote objects, then copy duplicates of what was
   just uploaded (small files and copies on plain threads, files sent in parts on the transfer
   loop: see :func:`on_threads`);
5. only if every one of those succeeded, delete the remote extras. Otherwise raise one
   :class:`BatchError` that names every failed key; nothing was deleted.

Remote objects that a filter excludes (``keep`` says no to their path below the prefix) are left
alone: neither compared nor deleted.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from . import _transfer
from ._error_mapping import translate
from ._exceptions import BatchError, QBucketError, TooManyDeletesError, TransferError
from ._hashcache import HashCache
from ._hashing import Stamp, digest_file_checked, plain_md5_etag, stat_key
from ._keys import obstore_can_address
from ._listing_page import Listed
from ._objects import SyncSummary
from ._planner import SAME_AS_LOCAL, Copy, LocalEntry, Plan, RemoteEntry, Upload, plan_sync
from ._progress import ProgressSink
from ._remote_scan import scan_scope
from ._scan import SourceFile
from ._threads import InThread, each_in_threads

if TYPE_CHECKING:
    from ._transport import Transport

T = TypeVar("T")
Reporter = Callable[[str], None]
HASH_CONCURRENCY = 4
# Files below this size are read and hashed one after the other, on one thread: each costs a
# few short system calls, around which more threads only fight over the GIL. Measured on one
# idle process: 2000 x 4 KiB took 105 ms on one thread, 216 on two, 290 on four (and a sync
# importing its transfer loop meanwhile made four threads slower still); 1000 x 64 KiB took
# 202 ms on one, 160 on four; 400 x 256 KiB 262 ms on one, 149 on four.
SERIAL_HASH_BELOW = 64 << 10
HASH_BATCH = 128
HASH_BATCH_BYTES = 32 << 20
LOOKUP_BATCH = 500  # files per digest-cache query, and per publication to the listing
# Uploads of small files and copies go out on this many plain threads (at most the transport's
# concurrency); 0 sends every operation through the transfer loop (see on_threads).
SYNC_THREADS = 32


class SyncContext(NamedTuple):
    transport: Transport
    bucket: str
    report: Reporter | None
    sink: ProgressSink


def _absolute(path: str) -> str:
    """``os.path.abspath(path)``, without its cost (~5 us) for paths that are already absolute
    and normal, as the scan's are: the cache is keyed by this path."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path
    return os.path.abspath(path)


def _cached_digests(
    files: Sequence[SourceFile], bucket: str, cache: HashCache
) -> tuple[list[LocalEntry], list[QBucketError], list[SourceFile]]:
    """The entries of the files whose digests the cache holds, the files that could not be
    stat'ed, and those still to read. One thread does it all: for an unchanged tree this is the
    whole of the local work, and spread over threads it only fights for the GIL."""
    entries: list[LocalEntry] = []
    failures: list[QBucketError] = []
    misses: list[SourceFile] = []
    for start in range(0, len(files), LOOKUP_BATCH):
        found: list[tuple[SourceFile, str, Stamp]] = []
        for file in files[start : start + LOOKUP_BATCH]:
            try:
                path = _absolute(file.path)
                found.append((file, path, file.stamp or stat_key(os.stat(path))))
            except OSError as exc:
                failures.append(
                    translate(exc, action="read", bucket=bucket, key=file.key, path=file.path)
                )
        cached = cache.lookup_many([(path, stamp) for _, path, stamp in found])
        for (file, _, _), digests in zip(found, cached, strict=True):
            if digests is None:
                misses.append(file)
            else:
                entries.append(LocalEntry(file.key, file.path, digests))
    return entries, failures, misses


def _digest_batch(
    batch: Sequence[SourceFile], bucket: str, cache: HashCache
) -> list[LocalEntry | QBucketError]:
    """Read and digest a batch of files (blocking: runs on a worker thread), and remember the
    digests of those that did not change while read. Batches, not one task per file: for small
    files the per-task overhead costs several times the hashing."""
    out: list[LocalEntry | QBucketError] = []
    for file in batch:
        try:
            path = _absolute(file.path)
            with_md5 = _transfer.needs_md5(os.stat(path).st_size)
            digests, read_info, stable = digest_file_checked(path, with_md5=with_md5)
            if stable:
                cache.remember(path, read_info, digests)
            out.append(LocalEntry(file.key, file.path, digests))
        except OSError as exc:
            out.append(translate(exc, action="read", bucket=bucket, key=file.key, path=file.path))
    return out


def _call(work: Callable[[], None]) -> None:
    work()


def _batches(files: Sequence[SourceFile]) -> list[list[SourceFile]]:
    """Groups of at most HASH_BATCH files or HASH_BATCH_BYTES bytes, so large files are hashed
    in parallel and small ones without a task each."""
    batches: list[list[SourceFile]] = []
    current: list[SourceFile] = []
    size = 0
    for file in files:
        current.append(file)
        size += file.size
        if len(current) >= HASH_BATCH or size >= HASH_BATCH_BYTES:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


class LocalDigests:
    """The digests of a sync's local files, gathered as the files arrive.

    :meth:`add` looks files up in the digest cache a batch at a time, with the stat their walk
    made: a hit becomes its :class:`LocalEntry` at once and is put in ``found``, where a listing
    running meanwhile compares against it; so an unchanged file is never held twice, and its
    remote twin is settled as soon as it is listed. :meth:`finish` reads the rest.
    ``on_read`` is called as soon as there is a file to read (a sync starts its transfers
    then).
    """

    def __init__(
        self,
        bucket: str,
        cache: HashCache,
        found: dict[str, LocalEntry] | None = None,
        on_read: Callable[[], object] | None = None,
    ) -> None:
        self.bucket = bucket
        self.cache = cache
        self.found = found
        self._on_read = on_read  # called once, when the first file the cache cannot settle shows
        self.entries: list[LocalEntry] = []
        self.failures: list[QBucketError] = []
        self._batch: list[SourceFile] = []
        self._misses: list[SourceFile] = []

    def add(self, file: SourceFile) -> None:
        self._batch.append(file)
        if len(self._batch) >= LOOKUP_BATCH:
            self._look_up()

    def _look_up(self) -> None:
        hits, errors, missed = _cached_digests(self._batch, self.bucket, self.cache)
        self._batch = []
        self.entries += hits
        self.failures += errors
        self._misses += missed
        if missed and self._on_read is not None:
            on_read, self._on_read = self._on_read, None
            on_read()
        if self.found is not None:
            self.found.update((entry.key, entry) for entry in hits)

    def finish(self) -> tuple[list[LocalEntry], list[QBucketError]]:
        """Every file's entry, reading those the cache could not settle (blocking: small
        files on one thread, large ones on HASH_CONCURRENCY), and the files that could not be
        read."""
        self._look_up()
        misses, self._misses = self._misses, []
        results: list[list[LocalEntry | QBucketError]] = []

        def one(batch: Sequence[SourceFile]) -> None:
            result = _digest_batch(batch, self.bucket, self.cache)
            results.append(result)
            if self.found is not None:
                self.found.update(
                    (item.key, item) for item in result if isinstance(item, LocalEntry)
                )

        small = [file for file in misses if file.size < SERIAL_HASH_BELOW]
        large = [file for file in misses if file.size >= SERIAL_HASH_BELOW]

        def small_ones() -> None:
            for batch in _batches(small):
                one(batch)

        # The small files are one work item, beside the batches of large ones.
        work: list[Callable[[], None]] = [small_ones] if small else []
        work += [functools.partial(one, batch) for batch in _batches(large)]
        each_in_threads(work, _call, HASH_CONCURRENCY)
        for result in results:
            self.entries += [item for item in result if isinstance(item, LocalEntry)]
            self.failures += [item for item in result if isinstance(item, QBucketError)]
        return self.entries, self.failures


def hash_all(
    files: Sequence[SourceFile],
    bucket: str,
    cache: HashCache,
    found: dict[str, LocalEntry] | None = None,
) -> tuple[list[LocalEntry], list[QBucketError]]:
    """Digests of every file: from the cache where the stat matches, else read (blocking).
    Entries are also put in ``found`` as they come (see :class:`LocalDigests`)."""
    local = LocalDigests(bucket, cache, found)
    for file in files:
        local.add(file)
    return local.finish()


class _Abandoned(Exception):
    """Stops, from inside its page handler, a listing whose sync already failed."""


def _list_scope(
    transport: Transport,
    bucket: str,
    prefix: str,
    found: Mapping[str, LocalEntry],
    abandoned: threading.Event,
) -> dict[str, RemoteEntry]:
    """The scope's objects by key, compared as they arrive: one whose size and MD5 ETag match
    the local file already hashed (in ``found``) is kept as the SAME_AS_LOCAL marker under the
    local key's string, so the listing of an unchanged tree holds next to nothing."""
    # ``prefix`` ends with "/" (or is ""): the boundary that keeps "data" from covering "data2/".
    remote: dict[str, RemoteEntry] = {}

    def add(objects: list[Listed]) -> None:
        if abandoned.is_set():
            raise _Abandoned
        for listed in objects:
            entry = found.get(listed.key)
            if (
                entry is not None
                and entry.digests.size == listed.size
                and entry.digests.md5 is not None
                and plain_md5_etag(listed.e_tag) == entry.digests.md5
            ):
                remote[entry.key] = SAME_AS_LOCAL
            else:
                remote[listed.key] = RemoteEntry(listed.key, listed.size, listed.e_tag)

    scan_scope(transport, bucket, prefix, add)
    return remote


class ScopeListing:
    """The listing of a sync's scope, on a thread of its own from the moment it is made: a sync
    starts it before walking the local tree, so that the two overlap. Local entries put in
    :attr:`hashed` meanwhile are compared with the objects as they arrive (see
    :func:`_list_scope`)."""

    def __init__(self, transport: Transport, bucket: str, prefix: str) -> None:
        self.hashed: dict[str, LocalEntry] = {}
        self._abandoned = threading.Event()
        self._thread = InThread(
            _list_scope, transport, bucket, prefix, self.hashed, self._abandoned
        )

    def result(self) -> dict[str, RemoteEntry]:
        """The scope's objects (see :func:`_list_scope`); raises what the listing raised."""
        try:
            return self._thread.result()
        finally:
            self.hashed.clear()

    def abandon(self) -> None:
        """Stop the listing after the page in hand and wait for its thread: the sync failed
        before it needed it, and no request should outlive the call that made it."""
        self._abandoned.set()
        with contextlib.suppress(Exception):
            self.result()


async def _resolve(ctx: SyncContext, remote: dict[str, RemoteEntry], keys: list[str]) -> None:
    """Fill in the stored SHA-1 of objects the listing could not settle (one HEAD each)."""

    import asyncio

    async def one(key: str) -> None:
        sha1 = await ctx.transport.bounded(_transfer.head_sha1(ctx.transport, ctx.bucket, key))
        # No stored SHA-1: record a value no content has, so the file is uploaded again.
        remote[key] = remote[key]._replace(sha1=sha1 or "")

    await asyncio.gather(*(one(key) for key in keys))


class _Outcomes:
    """What became of a plan's uploads and copies, whichever engine carries them out: the done
    ones reported (progress, verbose lines), the failed ones kept."""

    def __init__(self, ctx: SyncContext) -> None:
        self._ctx = ctx
        self.done: list[Upload | Copy] = []
        self.failures: list[QBucketError] = []

    def succeeded(self, operation: Upload | Copy) -> None:
        self.done.append(operation)
        ctx = self._ctx
        if isinstance(operation, Upload):
            size = operation.digests.size
            if size:
                ctx.sink.update(operation.key, size, size)
            line = f"upload {operation.path} -> s3://{ctx.bucket}/{operation.key}"
        else:  # server-side: no byte goes through this machine
            line = f"copy s3://{ctx.bucket}/{operation.source} -> {operation.key}"
        if ctx.report:
            ctx.report(line)


async def _run_all(
    ctx: SyncContext, operations: Sequence[Upload | Copy]
) -> tuple[list[Upload | Copy], list[QBucketError]]:
    outcomes = _Outcomes(ctx)

    async def one(operation: Upload | Copy) -> None:
        try:
            if isinstance(operation, Upload):
                work: Awaitable[object] = _transfer.put_file(
                    ctx.transport, ctx.bucket, operation.key, operation.path, operation.digests
                )
            else:
                work = _transfer.copy_object(
                    ctx.transport, ctx.bucket, operation.source, operation.key
                )
            await ctx.transport.bounded(work)
        except QBucketError as exc:
            outcomes.failures.append(exc)
            return
        outcomes.succeeded(operation)

    await _transfer.each_bounded(operations, one, ctx.transport.concurrency)
    return outcomes.done, outcomes.failures


def _run_all_on_threads(
    ctx: SyncContext, operations: Sequence[Upload | Copy]
) -> tuple[list[Upload | Copy], list[QBucketError]]:
    """:func:`_run_all` on plain threads, with obstore's blocking calls (see on_threads)."""
    from . import _transfer_blocking

    outcomes = _Outcomes(ctx)
    lock = threading.Lock()

    def one(operation: Upload | Copy) -> None:
        try:
            if isinstance(operation, Upload):
                sent = _transfer_blocking.put_small_file(
                    ctx.transport, ctx.bucket, operation.key, operation.path
                )
                if sent is None:  # grown past one PUT since the plan: in parts, on the loop
                    ctx.transport.run(
                        _transfer.put_file(ctx.transport, ctx.bucket, operation.key, operation.path)
                    )
            else:
                _transfer_blocking.copy_object(
                    ctx.transport, ctx.bucket, operation.source, operation.key
                )
        except QBucketError as exc:
            with lock:
                outcomes.failures.append(exc)
            return
        with lock:  # one report at a time from these threads (the sinks lock for the loop's)
            outcomes.succeeded(operation)

    each_in_threads(operations, one, min(SYNC_THREADS, ctx.transport.concurrency))
    return outcomes.done, outcomes.failures


def on_threads(operation: Upload | Copy) -> bool:
    """Whether ``operation`` goes out on plain threads (the upload of a small file, a copy),
    rather than on the transfer loop (a file sent in parts; keys that obstore cannot name
    exactly, which boto3 handles).

    Per request, obstore's blocking calls on a few threads cost the client a fraction of what
    asyncio's tasks do: 2000 x 4 KiB uploaded in 1.96 s instead of 2.65 s, with 1.02 s of
    client CPU instead of 2.26 s (medians of 5 alternating runs); and a sync that sends only
    these never imports asyncio (~50 ms).
    """
    if not SYNC_THREADS:
        return False
    if isinstance(operation, Upload):
        small = operation.digests.size <= _transfer.SINGLE_PUT_LIMIT
        return small and obstore_can_address(operation.key)
    return obstore_can_address(operation.key) and obstore_can_address(operation.source)


def _run_all_anywhere(
    ctx: SyncContext, operations: Sequence[Upload | Copy]
) -> tuple[list[Upload | Copy], list[QBucketError]]:
    """Every operation, those :func:`on_threads` takes on plain threads, the others on the
    transfer loop at the same time."""
    threaded = [operation for operation in operations if on_threads(operation)]
    rest = [operation for operation in operations if not on_threads(operation)]
    looped = ctx.transport.submit(_run_all(ctx, rest)) if rest else None
    try:
        done, failures = _run_all_on_threads(ctx, threaded) if threaded else ([], [])
    except BaseException:
        if looped is not None:
            looped.cancel()
        raise
    if looped is not None:
        done_there, failed_there = looped.result()
        done += done_there
        failures += failed_there
    return done, failures


def run_sync(
    ctx: SyncContext,
    files: LocalDigests,
    prefix: str,
    listing: ScopeListing,
    *,
    delete_extras: bool = True,
    dry_run: bool = False,
    max_delete: int | None = None,
    keep: Callable[[str], bool] | None = None,
) -> tuple[Plan, SyncSummary]:
    """Mirror ``files`` onto the scope ``prefix`` of the bucket (blocking). ``listing`` lists
    that scope, comparing against ``files.found``; it is waited for or abandoned in every case.

    The scan and the plan run on plain threads; the transfer loop is used only for requests
    beyond the listing, so a sync with nothing to do never starts it.

    Args:
        delete_extras: delete the objects of the scope that are not in ``files``.
        dry_run: plan only.
        max_delete: raise :class:`TooManyDeletesError` before any change if the plan deletes more.
        keep: which remote objects of the scope take part, by their key below ``prefix``.

    Raises:
        TooManyDeletesError: more deletes than ``max_delete``; nothing was changed.
        BatchError: some files could not be read or sent; nothing was deleted.
    """
    started = time.perf_counter()
    try:
        local, failures = files.finish()
    except BaseException:
        listing.abandon()
        raise
    remote = listing.result()
    if keep is not None:
        remote = {key: entry for key, entry in remote.items() if keep(key[len(prefix) :])}
    plan = plan_sync(local, remote, delete_extras=delete_extras)
    if plan.unresolved:
        ctx.transport.run(_resolve(ctx, remote, plan.unresolved))
        plan = plan_sync(local, remote, delete_extras=delete_extras)
    if failures:
        # Part of the tree could not be read: its objects must not be taken for extras.
        plan = plan._replace(deletes=[])
    check_max_delete(len(plan.deletes), max_delete, f"s3://{ctx.bucket}/{prefix}", plan.deletes)
    if dry_run:  # the summary counts what would be done
        summary = _summary(plan, [*plan.uploads, *plan.copies], len(plan.deletes), started)
        return plan, summary._replace(dry_run=True, failures=tuple(failures))

    ctx.sink.add_total(len(plan.uploads), plan.bytes_to_upload)
    done: list[Upload | Copy] = []
    if plan.uploads or plan.copies:
        done, errors = _send(ctx, plan)
        failures += errors
    if failures:
        raise BatchError(
            f"sync to s3://{ctx.bucket}/{prefix} failed for {len(failures)} file(s); "
            "no remote file was deleted",
            failures,
            bucket=ctx.bucket,
        )
    if plan.deletes:
        _delete(ctx, plan.deletes)
        if ctx.report:
            for key in plan.deletes:
                ctx.report(f"delete s3://{ctx.bucket}/{key}")
    return plan, _summary(plan, done, len(plan.deletes), started)


def _send(ctx: SyncContext, plan: Plan) -> tuple[list[Upload | Copy], list[QBucketError]]:
    """The uploads and copies of ``plan``: copies of what is uploaded here come after it, and
    are skipped (as failures) when their source failed."""
    first: list[Upload | Copy] = [*plan.uploads, *(c for c in plan.copies if not c.after_upload)]
    done, failures = _run_all_anywhere(ctx, first)
    failed = {error.key for error in failures}
    later = [c for c in plan.copies if c.after_upload]
    second = [c for c in later if c.source not in failed]
    skipped = [c for c in later if c.source in failed]
    done_second, errors = _run_all_anywhere(ctx, second)
    done += done_second
    failures += errors
    failures += [
        TransferError(
            f"s3://{ctx.bucket}/{c.key} not copied: its source {c.source!r} failed",
            bucket=ctx.bucket,
            key=c.key,
        )
        for c in skipped
    ]
    return done, failures


def _delete(ctx: SyncContext, keys: list[str]) -> None:
    """Delete ``keys``: on the calling thread where obstore names them exactly (see
    on_threads), the others through boto3 on the transfer loop."""
    from . import _transfer_blocking

    plain = [key for key in keys if SYNC_THREADS and obstore_can_address(key)]
    odd = [key for key in keys if not (SYNC_THREADS and obstore_can_address(key))]
    if plain:
        _transfer_blocking.delete_objects(ctx.transport, ctx.bucket, plain)
    if odd:
        ctx.transport.run(_transfer.delete_objects(ctx.transport, ctx.bucket, odd))


def check_max_delete(count: int, limit: int | None, scope: str, examples: Sequence[str]) -> None:
    """Raise :class:`TooManyDeletesError` when ``count`` planned deletes exceed ``limit``."""
    if limit is None or count <= limit:
        return
    shown = ", ".join(examples[:3]) + (", ..." if len(examples) > 3 else "")
    raise TooManyDeletesError(
        f"sync of {scope} would delete {count} file(s) ({shown}), more than the maximum of "
        f"{limit}; nothing was changed"
    )


def _summary(
    plan: Plan, done: Sequence[Upload | Copy], deleted: int, started: float
) -> SyncSummary:
    uploads = [op for op in done if isinstance(op, Upload)]
    return SyncSummary(
        uploaded=len(uploads),
        copied=len(done) - len(uploads),
        deleted=deleted,
        unchanged=len(plan.unchanged),
        bytes_uploaded=sum(op.digests.size for op in uploads),
        seconds=time.perf_counter() - started,
    )
