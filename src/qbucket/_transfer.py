"""Object operations as coroutines on the transport's loop thread: put, copy, delete, head, list.

Uploads store the content's SHA-1 in the object's metadata. Keys that obstore cannot name exactly
(``dir/`` markers, ``a//b``, control characters: see :func:`qbucket._keys.obstore_can_address`)
are copied and deleted through boto3, so they are never confused with a neighbour (obstore would
turn ``dir/`` into ``dir``). Blocking work (file reads, hashing, boto3 calls, listing pages) runs
in the loop's default executor, so the loop keeps many requests in flight.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ._error_mapping import translate
from ._exceptions import TransferError
from ._hashing import SHA1_METADATA, Digests, digest_bytes, digest_file_checked, stat_key
from ._keys import obstore_can_address
from ._objects import ObjectSummary
from ._transport import Transport

T = TypeVar("T")

# The coroutines here import asyncio where they use it: they run only on the transfer loop, and a
# sync that has nothing to send plans on plain threads without ever importing it (_threads).

# Below this size a file is read into memory and sent in one PUT; above, obstore streams it in
# parallel multipart chunks from the file.
SINGLE_PUT_LIMIT = 16 << 20
# Measured on 2 x 256 MiB against SeaweedFS: 5 MiB parts and one multipart upload at a time ran
# as fast as 16 MiB x 8 with a third of the peak RSS. With the bodies unsigned (less client CPU),
# 6 parts in flight beat 3: 4.62 -> 4.26 s and 5.17 -> 4.45 s (medians of 5 alternating runs,
# s5cmd 5.08 s), for +10 MiB of peak RSS; 8 were no faster, 16 MiB x 3 x 2 files slower.
PART_SIZE = 5 << 20  # the S3 minimum
PART_CONCURRENCY = 6
MAX_PARTS = 10_000  # the S3 limit; larger files get larger parts
DELETE_BATCH = 1000  # the S3 DeleteObjects limit


# obstore retries 5xx answers and dropped connections itself, but not S3's RequestTimeout (a
# 400: the server gave up waiting for the request's body) nor a connection dropped under a
# POST (DeleteObjects). Those get a few more attempts here, for requests safe to repeat.
EXTRA_ATTEMPTS = 4
EXTRA_BACKOFF_S = 0.2


def worth_repeating(exc: BaseException, *, connection_errors: bool) -> bool:
    text = str(exc)
    if "RequestTimeout" in text:
        return True
    return connection_errors and "error sending request" in text


def backoff() -> Iterator[float]:
    """The pauses between the attempts of :func:`repeated` (one fewer than EXTRA_ATTEMPTS)."""
    delay = EXTRA_BACKOFF_S
    for _ in range(EXTRA_ATTEMPTS - 1):
        yield delay
        delay *= 2


async def repeated(work: Callable[[], Awaitable[T]], *, connection_errors: bool = False) -> T:
    """``await work()``, again after the faults obstore does not retry (see EXTRA_ATTEMPTS).
    ``work`` must be idempotent; ``connection_errors`` also repeats it after a dropped
    connection (for POSTs, which obstore leaves alone)."""
    import asyncio

    for pause in backoff():
        try:
            return await work()
        except Exception as exc:
            if not worth_repeating(exc, connection_errors=connection_errors):
                raise
        await asyncio.sleep(pause)
    return await work()


def stored_metadata(digests: Digests) -> dict[str, str]:
    return {SHA1_METADATA: digests.sha1}


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking ``function(*args)`` in the loop's executor."""
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def each_bounded(
    items: Iterable[T], work: Callable[[T], Awaitable[None]], workers: int
) -> None:
    """``await work(item)`` for every item, ``workers`` at a time. Unlike gathering one task per
    item, memory stays flat however many items there are (100k files: no 100k coroutines)."""
    import asyncio

    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(workers)))


def read_small_file(path: str) -> tuple[bytes, Digests, os.stat_result] | os.stat_result:
    """The content of the file at ``path``, its digests and its status before the read; only
    the status when the file is too large for one PUT."""
    with open(path, "rb") as stream:
        before = os.fstat(stream.fileno())
        if before.st_size > SINGLE_PUT_LIMIT:
            return before
        data = stream.read()
    return data, digest_bytes(data), before


def unchanged_since(path: str, before: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return stat_key(now) == stat_key(before)


async def put_bytes(
    transport: Transport, bucket: str, key: str, data: bytes, digests: Digests | None = None
) -> Digests:
    """PUT ``data`` under ``key`` with its SHA-1 in the metadata."""
    from obstore import put_async

    digests = digests or digest_bytes(data)
    try:
        store, attributes = transport.store(bucket), stored_metadata(digests)
        await repeated(
            lambda: put_async(store, key, data, attributes=attributes, use_multipart=False)
        )
    except Exception as exc:
        raise translate(exc, action="upload", bucket=bucket, key=key) from exc
    return digests


async def put_file(
    transport: Transport,
    bucket: str,
    key: str,
    path: str,
    digests: Digests | None = None,
) -> Digests:
    """Upload the file at ``path`` under ``key``; returns the digests of what was sent.

    ``digests`` (from a sync's scan) saves a read of a large file. A file modified while it is
    uploaded is an error: the object may hold a mix, and the caller must not record it as synced.
    """
    from obstore import put_async

    store = transport.store(bucket)
    sent: Digests
    try:
        # One trip to a thread for a small file (each costs ~0.1 ms of the loop's time).
        read = await in_thread(read_small_file, path)
        if not isinstance(read, os.stat_result):  # (a stat_result is a tuple too)
            data, sent, before = read
            attributes = stored_metadata(sent)
            await repeated(
                lambda: put_async(store, key, data, attributes=attributes, use_multipart=False)
            )
            # Inline, not in a thread: a stat of the file just read takes microseconds.
            unchanged = unchanged_since(path, before)
        else:
            before = read
            if digests is None or digests.size != before.st_size:
                digest = functools.partial(
                    digest_file_checked, path, with_md5=needs_md5(before.st_size)
                )
                sent = (await in_thread(digest))[0]
            else:
                sent = digests
            multipart = functools.partial(
                put_async,
                store,
                key,
                Path(path),
                attributes=stored_metadata(sent),
                use_multipart=True,
                chunk_size=part_size(before.st_size),
                max_concurrency=PART_CONCURRENCY,
            )
            async with transport.large:
                await repeated(multipart, connection_errors=True)
            unchanged = await in_thread(unchanged_since, path, before)
    except Exception as exc:
        raise translate(exc, action="upload", bucket=bucket, key=key, path=path) from exc
    if sent.size != before.st_size or not unchanged:
        raise changed_while_sent(path, bucket, key)
    return sent


def changed_while_sent(path: str, bucket: str, key: str) -> TransferError:
    """The error of a file modified while it was uploaded: the object may hold a mix."""
    return TransferError(
        f"{path} changed while it was uploaded to s3://{bucket}/{key}; upload it again",
        bucket=bucket,
        key=key,
        path=path,
    )


def needs_md5(size: int) -> bool:
    """Files sent in parts get multipart ETags, never an MD5: only their SHA-1 serves."""
    return size <= SINGLE_PUT_LIMIT


def part_size(size: int) -> int:
    """The part size for a multipart upload of ``size`` bytes: PART_SIZE, or more when the file
    would need over MAX_PARTS parts (1 MiB multiples, with a margin)."""
    needed = -(-size // (MAX_PARTS - 100))
    return max(PART_SIZE, -(-needed // (1 << 20)) << 20)


async def copy_object(transport: Transport, bucket: str, source: str, key: str) -> None:
    """Server-side copy of ``source`` to ``key`` (metadata, and so the SHA-1, included)."""
    from obstore import copy_async

    try:
        if obstore_can_address(source) and obstore_can_address(key):
            store = transport.store(bucket)
            await repeated(lambda: copy_async(store, source, key, overwrite=True))
        else:
            client = transport.s3client
            await in_thread(
                lambda: client.copy_object(
                    Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": source}
                )
            )
    except Exception as exc:
        raise translate(exc, action=f"copy {source!r} to", bucket=bucket, key=key) from exc


async def delete_objects(transport: Transport, bucket: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` in batches of 1000 (S3's DeleteObjects); missing keys are no error."""
    from obstore import delete_async

    plain = [key for key in keys if obstore_can_address(key)]
    odd = [key for key in keys if not obstore_can_address(key)]
    for start in range(0, len(plain), DELETE_BATCH):
        batch = plain[start : start + DELETE_BATCH]
        store = transport.store(bucket)
        try:
            await repeated(functools.partial(delete_async, store, batch), connection_errors=True)
        except Exception as exc:
            raise translate(exc, action="delete", bucket=bucket, key=batch[0]) from exc
    if odd:
        client = transport.s3client
        for start in range(0, len(odd), DELETE_BATCH):
            batch = odd[start : start + DELETE_BATCH]
            request = {"Objects": [{"Key": key} for key in batch], "Quiet": True}
            try:
                response = await in_thread(
                    functools.partial(client.delete_objects, Bucket=bucket, Delete=request)  # type: ignore[arg-type]
                )
            except Exception as exc:
                raise translate(exc, action="delete", bucket=bucket, key=batch[0]) from exc
            for error in response.get("Errors", []):
                raise TransferError(
                    f"cannot delete s3://{bucket}/{error.get('Key')}: {error.get('Code')}: "
                    f"{error.get('Message')}",
                    bucket=bucket,
                    key=error.get("Key"),
                )


async def head_sha1(transport: Transport, bucket: str, key: str) -> str | None:
    """The SHA-1 stored in ``key``'s metadata, if any (a GET with ``head``: obstore's HEAD does
    not return user metadata)."""
    from obstore import get_async

    try:
        store = transport.store(bucket)
        result = await repeated(lambda: get_async(store, key, options={"head": True}))
    except Exception as exc:
        raise translate(exc, action="read metadata of", bucket=bucket, key=key) from exc
    value = result.attributes.get(SHA1_METADATA)
    return str(value) if value else None


async def list_objects(
    transport: Transport, bucket: str, prefix: str = ""
) -> AsyncIterator[ObjectSummary]:
    """Every object whose key starts with ``prefix`` (a plain S3 prefix), exactly as stored."""
    lister = transport.lister()
    pages = lister.pages(bucket, prefix)
    try:
        while True:
            page = await in_thread(next, pages, None)
            if page is None:
                return
            for summary in page:
                yield summary
    except Exception as exc:
        raise translate(exc, action="list", bucket=bucket, key=prefix or None) from exc
    finally:
        lister.close()
