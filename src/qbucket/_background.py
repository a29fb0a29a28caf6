"""Background uploads of one Bucket: bounded, ordered per key, and never silently dropped.

``add_file`` hands its upload to the transport's loop and returns. This queue

* bounds the uploads waiting at once (``add_file`` blocks beyond it, so memory stays flat);
* orders writes to the same key: a later upload of a key starts after the earlier one ended, so
  the last write wins as the caller expects;
* records every failure until :meth:`flush` raises them all in one :class:`BatchError`;
* lets reads wait for earlier writes (:meth:`wait`), and is flushed at interpreter exit for every
  bucket that still has work, with failures printed to stderr.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread  # registers its exit hook before ours, see below
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from ._exceptions import BatchError, QBucketError, TransferError
from ._transport import Transport

MAX_PENDING = 1024
_QUEUES: weakref.WeakSet[BackgroundUploads] = weakref.WeakSet()


class BackgroundUploads:
    def __init__(self, transport: Callable[[], Transport], bucket: str) -> None:
        self._transport = transport
        self._bucket = bucket
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_PENDING)
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._last_by_key: dict[str, concurrent.futures.Future[Any]] = {}
        self._failures: list[QBucketError] = []
        _QUEUES.add(self)

    def submit(self, key: str, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Start the upload that ``make()`` returns, after any earlier upload of ``key``."""
        transport = self._transport()
        self._slots.acquire()
        with self._lock:
            previous = self._last_by_key.get(key)

            async def ordered() -> Any:
                if previous is not None:
                    await asyncio.wait([asyncio.wrap_future(previous)])
                async with transport.limit:
                    return await make()

            try:
                future = transport.submit(ordered())
            except BaseException:
                self._slots.release()
                raise
            self._pending.add(future)
            self._last_by_key[key] = future
        future.add_done_callback(lambda done: self._finished(key, done))

    def _finished(self, key: str, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)
            if self._last_by_key.get(key) is future:
                del self._last_by_key[key]
            if not future.cancelled() and future.exception() is not None:
                error = future.exception()
                if not isinstance(error, QBucketError):
                    error = TransferError(
                        f"upload of s3://{self._bucket}/{key} failed: {error}",
                        bucket=self._bucket,
                        key=key,
                    )
                self._failures.append(error)
        self._slots.release()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait(self) -> None:
        """Wait until every upload submitted so far has ended (failures stay recorded)."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            concurrent.futures.wait(pending)

    def flush(self) -> None:
        """Wait for every upload; raise one :class:`BatchError` naming every failed key."""
        self.wait()
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            raise BatchError(
                f"{len(failures)} background upload(s) to bucket {self._bucket!r} failed",
                failures,
                bucket=self._bucket,
            )


def _flush_at_exit() -> None:
    """Nothing queued is dropped when the interpreter exits: wait, and say what failed."""
    for queue in list(_QUEUES):
        try:
            queue.flush()
        except BatchError as exc:
            print(f"qbucket: at exit, {exc}", file=sys.stderr)


# A plain atexit hook would run after concurrent.futures has shut its thread pools down, and the
# uploads still queued need them to read their files. threading's exit hooks run before that, in
# reverse order of registration: ours, registered after concurrent.futures.thread's, runs first.
getattr(threading, "_register_atexit")(_flush_at_exit)  # noqa: B009 - private, stable since 3.9
