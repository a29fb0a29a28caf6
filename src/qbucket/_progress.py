"""Progress reporting for transfers: user callbacks and the optional terminal bar.

The seed API's ``progress`` argument is either a callback ``(read, total, filename)`` — ``read``
cumulative for that file, with a last call where ``read == total`` — or ``True`` for a progress bar.
Transfers report to a :class:`ProgressSink`; no transfer code knows which kind it talks to.
Reports arrive from qbucket's transfer thread, and from the threads of large downloads.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[int, int, str], object]


class ProgressSink:
    """Receives per-file progress. The base class ignores everything."""

    def add_total(self, files: int, nbytes: int) -> None:
        """Announce more work: ``files`` files of ``nbytes`` bytes in all."""

    def update(self, name: str, done: int, total: int) -> None:
        """``done`` of ``total`` bytes of ``name`` are transferred (cumulative)."""

    def close(self) -> None:
        """The work is over (done or failed)."""


class CallbackSink(ProgressSink):
    """Forwards each update to the user's ``(read, total, filename)`` callback, one call at a
    time: the ranges of large downloads report from threads of their own."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback
        self._lock = threading.Lock()

    def update(self, name: str, done: int, total: int) -> None:
        with self._lock:
            self._callback(done, total, name)


class BarSink(ProgressSink):
    """A rich progress bar on stderr: files and bytes done, throughput and ETA over every
    file."""

    def __init__(self, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._files_done = 0
        self._files_total = 0
        self._finished: set[str] = set()
        self._announced = False  # add_total was called: the total is known up front
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task(description, total=0, files="0/0")
        self._bar.start()

    def add_total(self, files: int, nbytes: int) -> None:
        with self._lock:
            self._announced = True
            self._files_total += files
            self._grow(nbytes)
            self._show_files()

    def _show_files(self) -> None:
        self._bar.update(self._task, files=f"{self._files_done}/{self._files_total}")

    def _grow(self, nbytes: int) -> None:
        task = self._bar.tasks[self._task]
        self._bar.update(self._task, total=(task.total or 0) + nbytes)

    def update(self, name: str, done: int, total: int) -> None:
        with self._lock:
            if not self._announced and name not in self._seen:
                self._grow(total)  # a single download: its size is known only now
                self._files_total += 1
            before = self._seen.get(name, 0)
            self._seen[name] = done
            self._bar.advance(self._task, done - before)
            if done >= total and name not in self._finished:  # its last call
                self._finished.add(name)
                self._files_done += 1
            self._show_files()

    def close(self) -> None:
        self._bar.stop()


def make_sink(progress: bool | ProgressCallback | None, description: str) -> ProgressSink:
    """The sink for the seed API's ``progress`` argument.

    ``True`` draws a bar when stderr is a terminal and stays silent otherwise, so that logs and
    pipes never fill with control characters.
    """
    if progress is None or progress is False:
        return ProgressSink()
    if progress is True:
        return BarSink(description) if _stderr_is_terminal() else ProgressSink()
    if callable(progress):
        return CallbackSink(progress)
    raise TypeError(f"progress must be None, a bool or a callable, not {type(progress).__name__}")


def _stderr_is_terminal() -> bool:
    stream: Any = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
