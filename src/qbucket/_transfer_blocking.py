"""Some of :mod:`qbucket._transfer`'s operations as blocking calls, for plain threads: the PUT of a
small file, a server-side copy, a batch of deletes. obstore's blocking functions run them on its
own runtime with the GIL released, so a few threads keep as many requests in flight.

A sync whose plan is a few small operations carries it out with these (see
``qbucket._sync.on_threads``): without the transfer loop, it never imports asyncio nor starts the
loop's thread, which cost ~50 ms of CPU beside the walk of the tree, on the way of a sync of a
few edited files. Only keys obstore names exactly come here (the others need boto3: the loop's
path).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from . import _transfer
from ._error_mapping import translate
from ._hashing import Digests
from ._transport import Transport

T = TypeVar("T")


def repeated(work: Callable[[], T], *, connection_errors: bool = False) -> T:
    """``work()``, again after the faults obstore does not retry: as
    :func:`qbucket._transfer.repeated`, on the calling thread."""
    for pause in _transfer.backoff():
        try:
            return work()
        except Exception as exc:
            if not _transfer.worth_repeating(exc, connection_errors=connection_errors):
                raise
        time.sleep(pause)
    return work()


def put_small_file(transport: Transport, bucket: str, key: str, path: str) -> Digests | None:
    """Upload the file at ``path`` under ``key`` in one PUT, as
    :func:`qbucket._transfer.put_file` does; returns the digests of what was sent. None, having
    sent nothing, when the file has grown past one PUT since it was planned: the caller sends
    it in parts."""
    from obstore import put

    store = transport.store(bucket)
    try:
        read = _transfer.read_small_file(path)
        if isinstance(read, os.stat_result):  # (a stat_result is a tuple too)
            return None
        data, sent, before = read
        attributes = _transfer.stored_metadata(sent)
        repeated(lambda: put(store, key, data, attributes=attributes, use_multipart=False))
        unchanged = _transfer.unchanged_since(path, before)
    except Exception as exc:
        raise translate(exc, action="upload", bucket=bucket, key=key, path=path) from exc
    if sent.size != before.st_size or not unchanged:
        raise _transfer.changed_while_sent(path, bucket, key)
    return sent


def copy_object(transport: Transport, bucket: str, source: str, key: str) -> None:
    """Server-side copy of ``source`` to ``key`` (metadata, and so the SHA-1, included)."""
    from obstore import copy

    store = transport.store(bucket)
    try:
        repeated(lambda: copy(store, source, key, overwrite=True))
    except Exception as exc:
        raise translate(exc, action=f"copy {source!r} to", bucket=bucket, key=key) from exc


def delete_objects(transport: Transport, bucket: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` in batches of 1000 (S3's DeleteObjects); missing keys are no error."""
    from obstore import delete

    store = transport.store(bucket)
    for start in range(0, len(keys), _transfer.DELETE_BATCH):
        batch = keys[start : start + _transfer.DELETE_BATCH]
        try:
            repeated(functools.partial(delete, store, batch), connection_errors=True)
        except Exception as exc:
            raise translate(exc, action="delete", bucket=bucket, key=batch[0]) from exc
