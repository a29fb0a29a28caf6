"""Downloads: atomic, checked, and never outside the target directory.

Bytes go to a hidden temporary file beside the target (``.<name>.qbucket-part-<random>``); the
size, and the MD5 when the ETag is one, are checked; only then is the file renamed to its final
name. A failure removes the temporary file. When the listing's ETag is known, the GET is
conditional on it (``If-Match``), so a file is never a mix of two versions of an object.
Keys obstore cannot name exactly are fetched through boto3.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from ._error_mapping import translate
from ._exceptions import (
    LocalPathError,
    MissingKeyError,
    QBucketError,
    TransferError,
    UnsafeKeyError,
)
from ._hashing import plain_md5_etag
from ._keys import is_directory_marker, local_path_for_key, obstore_can_address
from ._objects import ObjectSummary
from ._progress import ProgressSink
from ._transfer import in_thread
from ._transport import Transport

CHUNK = 4 << 20
TEMP_MARK = ".qbucket-part-"


@dataclasses.dataclass
class _Body:
    size: int
    e_tag: str | None
    last_modified: datetime.datetime
    chunks: AsyncIterator[bytes]


def temporary_path(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}{TEMP_MARK}{secrets.token_hex(4)}")


async def _open_obstore(transport: Transport, bucket: str, key: str, e_tag: str | None) -> _Body:
    from obstore import get_async

    options: Any = {"if_match": e_tag} if e_tag else {}
    result = await get_async(transport.store(bucket), key, options=options)
    meta = result.meta
    return _Body(
        int(meta["size"]),
        meta["e_tag"],
        meta["last_modified"],
        result.stream(min_chunk_size=CHUNK).__aiter__(),
    )


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
        int(response["ContentLength"]),
        response.get("ETag"),
        response["LastModified"],
        chunks(),
    )


async def download(
    transport: Transport,
    bucket: str,
    key: str,
    destination: Path,
    sink: ProgressSink,
    *,
    expected_etag: str | None = None,
) -> Path:
    """GET ``key`` into ``destination`` atomically: temporary file, checks, rename."""
    opener = _open_obstore if obstore_can_address(key) else _open_boto3
    try:
        body = await opener(transport, bucket, key, expected_etag)
    except Exception as exc:
        raise translate(exc, action="download", bucket=bucket, key=key) from exc
    md5_expected = plain_md5_etag(body.e_tag)
    temporary = temporary_path(destination)
    received = 0
    try:
        digest = hashlib.md5() if md5_expected else None
        stream = await in_thread(open, temporary, "xb")
        try:
            if body.size:
                sink.update(key, 0, body.size)
            async for chunk in body.chunks:
                await in_thread(stream.write, chunk)
                if digest is not None:
                    digest.update(chunk)
                received += len(chunk)
                if received < body.size:
                    sink.update(key, received, body.size)
        finally:
            await in_thread(stream.close)
        if received != body.size:
            raise TransferError(
                f"download of s3://{bucket}/{key} got {received} of {body.size} bytes",
                bucket=bucket,
                key=key,
            )
        if digest is not None and digest.hexdigest() != md5_expected:
            raise TransferError(
                f"download of s3://{bucket}/{key} does not match its MD5 ETag",
                bucket=bucket,
                key=key,
            )
        await in_thread(_set_mtime, temporary, body.last_modified)
        await in_thread(os.replace, temporary, destination)
        sink.update(key, body.size, body.size)  # the last call, once the file is in place
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
    real_root = await in_thread(os.path.realpath, root)
    checked: set[Path] = set()
    written: list[str] = []
    failures: list[QBucketError] = []
    jobs: list[tuple[ObjectSummary, Path]] = []
    for summary in summaries:
        if is_directory_marker(summary.key):
            continue
        try:
            jobs.append((summary, local_path_for_key(root, summary.key, bucket=bucket)))
        except UnsafeKeyError as exc:
            failures.append(exc)
    sink.add_total(len(jobs), sum(summary.size for summary, _ in jobs))

    def prepare(directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        real = os.path.realpath(directory)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise LocalPathError(
                f"{directory} leads outside {root} (a symlink?)", path=str(directory)
            )

    async def one(summary: ObjectSummary, destination: Path) -> None:
        try:
            if destination.parent not in checked:
                await in_thread(prepare, destination.parent)
                checked.add(destination.parent)
            await transport.bounded(
                download(
                    transport,
                    bucket,
                    summary.key,
                    destination,
                    sink,
                    expected_etag=summary.e_tag or None,
                )
            )
            written.append(str(destination))
        except MissingKeyError:
            failures.append(
                MissingKeyError(
                    f"s3://{bucket}/{summary.key} was deleted during the download",
                    bucket=bucket,
                    key=summary.key,
                )
            )
        except QBucketError as exc:
            exc.key = exc.key or summary.key
            exc.path = exc.path or str(destination)
            failures.append(exc)
        except OSError as exc:
            failures.append(
                translate(
                    exc, action="download", bucket=bucket, key=summary.key, path=str(destination)
                )
            )

    await asyncio.gather(*(one(summary, destination) for summary, destination in jobs))
    return sorted(written), failures
