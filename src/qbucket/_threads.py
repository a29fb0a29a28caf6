"""Blocking fan-out on plain threads, for the work a sync does before any transfer: reading the
digest cache, hashing, listing the scope. Their requests are blocking calls anyway (sqlite3,
hashlib, qbucket._http), and on threads a sync with nothing to send never starts the asyncio loop
nor imports asyncio (~45 ms of a ~0.3 s no-op resync).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_END = object()


def each_in_threads(items: Sequence[T], work: Callable[[T], None], workers: int) -> None:
    """``work(item)`` for every item, ``workers`` at a time, the calling thread being one of them.

    After a failure the workers take no new item; the first error is raised once all stopped.
    """
    workers = min(workers, len(items))
    iterator = iter(items)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            with lock:
                item = next(iterator, _END)
            if item is _END:
                return
            try:
                work(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                errors.append(exc)
                return

    helpers = [threading.Thread(target=worker, daemon=True) for _ in range(max(workers - 1, 0))]
    for helper in helpers:
        helper.start()
    try:
        worker()
    finally:
        for helper in helpers:
            helper.join()
    if errors:
        raise errors[0]


class InThread(Generic[T]):
    """``function(*args)``, started on a thread of its own at once; :meth:`result` waits."""

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = function(*args)
            except BaseException as exc:  # noqa: BLE001 - raised by result()
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self) -> T:
        """The function's return value, or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
