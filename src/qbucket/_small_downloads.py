"""Small objects of a batch fetched on plain threads, each by obstore's blocking GET and written
by the thread that fetched it.

Per request, obstore's blocking calls on a few threads cost the client a fraction of what the
event loop's tasks do (the loop's path needs a task, a future crossing from obstore's runtime,
and a trip to a writer thread per object). Only objects this path can check on its own come
here: an ETag that is their MD5, at most ``LARGEST`` bytes (each thread holds one in memory),
a key obstore names exactly. Anything it cannot settle, it hands back to the caller, which takes
the loop's general path: that path repeats the GET and names what went wrong.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._download_batch import Job, Outcomes, temporary_path, write_whole
from ._error_mapping import translate
from ._hashing import plain_md5_etag
from ._keys import obstore_can_address
from ._objects import ObjectSummary
from ._progress import ProgressSink
from ._threads import each_in_threads

if TYPE_CHECKING:
    from ._transport import Transport

LARGEST = 1 << 20
# 2000 x 4 KiB, seconds (user CPU): the loop's path 2.42-2.99 (1.04-1.37), 16 threads 2.13-3.08
# (0.68-0.71), 32 threads 1.76-2.65 (0.54-0.70); s5cmd 2.22-2.50 (1.25-1.36). Creating the files
# is most of the rest, and as noisy for every tool (see qbucket._file_writer). 0 leaves every
# object to the loop's path.
THREADS = 32


def takes(summary: ObjectSummary) -> bool:
    """Whether ``summary``'s object comes down here."""
    return (
        THREADS > 0
        and 0 < summary.size <= LARGEST
        and plain_md5_etag(summary.e_tag) is not None
        and obstore_can_address(summary.key)
    )


def download_jobs(
    transport: Transport,
    bucket: str,
    jobs: Sequence[Job],
    outcomes: Outcomes,
    sink: ProgressSink,
    stop: threading.Event,
) -> list[Job]:
    """Download each job (see :func:`takes`) on up to THREADS threads, at most the transport's
    concurrency, into ``outcomes``; returns the jobs left to the general path (blocking). Once
    ``stop`` is set, the threads take no further job."""
    from obstore import get_range

    store = transport.store(bucket)
    left: list[Job] = []  # list.append is atomic

    def one(job: Job) -> None:
        if stop.is_set() or outcomes.refused(job):
            return
        summary, destination = job
        key, size = summary.key, summary.size
        try:
            data = get_range(store, key, start=0, end=size)
        except Exception:  # noqa: BLE001 - the general path repeats the GET and names the error
            left.append(job)
            return
        # The listed ETag is the MD5: the bytes are proved to be the listed version, not a
        # newer one (which the general path would fetch, pinned to the listing by If-Match).
        if len(data) != size or hashlib.md5(data).hexdigest() != plain_md5_etag(summary.e_tag):
            left.append(job)
            return
        try:
            write_whole(data, temporary_path(destination), destination, summary.last_modified)
        except Exception as exc:  # noqa: BLE001 - recorded, naming the key and the path
            error = translate(exc, action="download", bucket=bucket, key=key, path=str(destination))
            outcomes.failed(job, error)
            return
        sink.update(key, size, size)
        outcomes.succeeded(job)

    each_in_threads(jobs, one, min(THREADS, transport.concurrency))
    return left
