"""Object transfers as coroutines on the transport's loop thread.

Uploads store the content's SHA-1 in the object's metadata. Downloads are atomic: bytes go to a
hidden temporary file beside the target, the size (and the MD5, when the ETag is one) is checked,
and only then is the file renamed to its final name; a failure removes the temporary file.
Blocking file work (reading, hashing, writing) runs in the loop's default executor, so the loop
keeps many requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._error_mapping import translate
from ._exceptions import TransferError
from ._hashing import SHA1_METADATA, Digests, digest_bytes, digest_file, plain_md5_etag
from ._objects import ObjectSummary
from ._progress import ProgressSink

if TYPE_CHECKING:
    from obstore.store import S3Store

# Below this size a file is read into memory and sent in one PUT; above, obstore streams it in
# parallel multipart chunks from the file.
SINGLE_PUT_LIMIT = 16 << 20
PART_SIZE = 16 << 20
PART_CONCURRENCY = 8
DOWNLOAD_CHUNK = 4 << 20
DELETE_BATCH = 1000  # the S3 DeleteObjects limit
TEMP_MARK = ".qbucket-part-"  # temporary download files: ".<name>.qbucket-part-<random>"


def _attributes(digests: Digests) -> dict[str, str]:
    return {SHA1_METADATA: digests.sha1}


async def _in_thread(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def _read_small_file(path: str) -> tuple[bytes, Digests, os.stat_result]:
    with open(path, "rb") as stream:
        before = os.fstat(stream.fileno())
        data = stream.read()
    return data, digest_bytes(data), before


def _unchanged_since(path: str, before: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_size, now.st_mtime_ns, now.st_ctime_ns) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )


async def put_bytes(
    store: S3Store, bucket: str, key: str, data: bytes, digests: Digests | None = None
) -> Digests:
    """PUT ``data`` under ``key`` with its SHA-1 in the metadata."""
    from obstore import put_async

    digests = digests or digest_bytes(data)
    try:
        await put_async(store, key, data, attributes=_attributes(digests), use_multipart=False)
    except Exception as exc:
        raise translate(exc, action="upload", bucket=bucket, key=key) from exc
    return digests


async def put_file(
    store: S3Store,
    bucket: str,
    key: str,
    path: str,
    digests: Digests | None = None,
) -> Digests:
    """Upload the file at ``path`` under ``key``; returns the digests of what was sent.

    ``digests`` (from a sync's scan) saves a read for small files. A file modified while it is
    uploaded is an error: the object may hold a mix, and the caller must not record it as synced.
    """
    from obstore import put_async

    try:
        before = await _in_thread(os.stat, path)
        if before.st_size <= SINGLE_PUT_LIMIT:
            data, digests, before = await _in_thread(_read_small_file, path)
            await put_async(store, key, data, attributes=_attributes(digests), use_multipart=False)
        else:
            if digests is None or digests.size != before.st_size:
                digests = await _in_thread(digest_file, path)
            await put_async(
                store,
                key,
                Path(path),
                attributes=_attributes(digests),
                use_multipart=True,
                chunk_size=PART_SIZE,
                max_concurrency=PART_CONCURRENCY,
            )
    except Exception as exc:
        raise translate(exc, action="upload", bucket=bucket, key=key, path=path) from exc
    if digests.size != before.st_size or not await _in_thread(_unchanged_since, path, before):
        raise TransferError(
            f"{path} changed while it was uploaded to s3://{bucket}/{key}; upload it again",
            bucket=bucket,
            key=key,
            path=path,
        )
    return digests


async def copy_object(store: S3Store, bucket: str, source: str, key: str) -> None:
    """Server-side copy of ``source`` to ``key`` (metadata, and so the SHA-1, included)."""
    from obstore import copy_async

    try:
        await copy_async(store, source, key, overwrite=True)
    except Exception as exc:
        raise translate(exc, action=f"copy {source!r} to", bucket=bucket, key=key) from exc


async def delete_objects(store: S3Store, bucket: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` in batches of 1000 (S3's DeleteObjects)."""
    from obstore import delete_async

    for start in range(0, len(keys), DELETE_BATCH):
        batch = list(keys[start : start + DELETE_BATCH])
        try:
            await delete_async(store, batch)
        except Exception as exc:
            raise translate(exc, action="delete", bucket=bucket, key=batch[0]) from exc


async def head_sha1(store: S3Store, bucket: str, key: str) -> str | None:
    """The SHA-1 stored in ``key``'s metadata, if any (a GET with ``head``: obstore's HEAD does
    not return user metadata)."""
    from obstore import get_async

    try:
        result = await get_async(store, key, options={"head": True})
    except Exception as exc:
        raise translate(exc, action="read metadata of", bucket=bucket, key=key) from exc
    value = result.attributes.get(SHA1_METADATA)
    return str(value) if value else None


async def list_objects(
    store: S3Store, bucket: str, prefix: str = ""
) -> AsyncIterator[ObjectSummary]:
    """Every object under ``prefix`` (a ``/``-terminated key prefix, or ``""``), page by page."""
    from obstore import list as obstore_list

    segment_prefix = prefix.rstrip("/") or None
    stream = obstore_list(store, prefix=segment_prefix, chunk_size=1000)
    try:
        async for page in stream:
            for meta in page:
                yield ObjectSummary(
                    bucket_name=bucket,
                    key=meta["path"],
                    size=meta["size"],
                    e_tag=meta["e_tag"] or "",
                    last_modified=meta["last_modified"],
                )
    except Exception as exc:
        raise translate(exc, action="list", bucket=bucket, key=prefix or None) from exc


def temporary_path(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}{TEMP_MARK}{secrets.token_hex(4)}")


async def download(
    store: S3Store,
    bucket: str,
    key: str,
    destination: Path,
    sink: ProgressSink,
    *,
    expected_etag: str | None = None,
) -> Path:
    """GET ``key`` into ``destination`` atomically (temporary file, checks, rename).

    Args:
        expected_etag: the listing's ETag; the GET must see the same object (``If-Match``), so a
            file is never a mix of two versions.
    """
    from obstore import get_async

    options: dict[str, Any] = {"if_match": expected_etag} if expected_etag else {}
    try:
        result = await get_async(store, key, options=options)  # type: ignore[arg-type]
    except Exception as exc:
        raise translate(exc, action="download", bucket=bucket, key=key) from exc
    total = int(result.meta["size"])
    md5_expected = plain_md5_etag(result.meta["e_tag"])
    temporary = temporary_path(destination)
    received = 0
    try:
        digest = hashlib.md5() if md5_expected else None
        stream = await _in_thread(open, temporary, "xb")
        try:
            sink.update(key, 0, total)
            async for chunk in result.stream(min_chunk_size=DOWNLOAD_CHUNK):
                await _in_thread(stream.write, chunk)
                if digest is not None:
                    digest.update(chunk)
                received += len(chunk)
                sink.update(key, received, total)
        finally:
            await _in_thread(stream.close)
        if received != total:
            raise TransferError(
                f"download of s3://{bucket}/{key} got {received} of {total} bytes",
                bucket=bucket,
                key=key,
            )
        if digest is not None and digest.hexdigest() != md5_expected:
            raise TransferError(
                f"download of s3://{bucket}/{key} does not match its MD5 ETag",
                bucket=bucket,
                key=key,
            )
        await _in_thread(_set_mtime, temporary, result.meta["last_modified"])
        await _in_thread(os.replace, temporary, destination)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, Exception):
            raise translate(
                exc, action="download", bucket=bucket, key=key, path=str(destination)
            ) from exc
        raise
    return destination


def _set_mtime(path: Path, when: datetime.datetime) -> None:
    """The object's time becomes the file's mtime, as ``aws s3 sync`` and rclone do."""
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))
