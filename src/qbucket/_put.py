"""Uploads of a known list of files, now, with progress: what ``qbucket put`` runs.

Unlike a sync nothing is compared or deleted: every file is sent. Unlike :meth:`Bucket.add_file`
the caller waits, and gets one report of every failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import _transfer
from ._exceptions import QBucketError
from ._progress import ProgressSink
from ._scan import SourceFile

if TYPE_CHECKING:
    from ._transport import Transport


async def put_all(
    transport: Transport,
    bucket: str,
    files: Sequence[SourceFile],
    sink: ProgressSink,
    report: Callable[[str], None] | None = None,
) -> tuple[list[int], list[QBucketError]]:
    """Upload every file to its key. Returns (sizes sent, one per file uploaded; failures)."""
    sent: list[int] = []
    failures: list[QBucketError] = []
    sink.add_total(len(files), sum(file.size for file in files))

    async def one(file: SourceFile) -> None:
        try:
            digests = await transport.bounded(
                _transfer.put_file(transport, bucket, file.key, file.path)
            )
        except QBucketError as exc:
            failures.append(exc)
            return
        sent.append(digests.size)
        sink.update(file.key, digests.size, digests.size)
        if report:
            report(f"upload {file.path} -> s3://{bucket}/{file.key}")

    await _transfer.each_bounded(files, one, transport.concurrency)
    return sent, failures
