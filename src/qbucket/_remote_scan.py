"""Listing a whole sync scope fast: one request per sub-prefix, several in flight.

A plain listing is a chain of pages, each waiting for the previous one's continuation token; on
SeaweedFS a page of 1000 keys costs ~40 ms of server time, so 100k keys take seconds however idle
the server's other cores are. Splitting the key space makes the pages independent, but the split
must not depend on the server's sort order: S3 sorts keys by bytes, SeaweedFS walks directories
(``a/b`` comes before ``a.x`` there), so ranges cut with ``start-after`` could miss keys.

A delimiter listing gives an exact split instead: under a prefix, every key either has no ``/``
after it (it is listed right there) or belongs to exactly one common prefix ``prefix + name + /``.
Those are then listed in full, ``LIST_CONCURRENCY`` at a time from as many threads, each by its
own kept-alive connection (unless there are so many that one plain listing is cheaper). The
caller receives each page as it arrives: nothing here holds the listing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ._error_mapping import translate
from ._listing import Listed, Lister, Page
from ._threads import each_in_threads
from ._transport import Transport

PageHandler = Callable[[list[Listed]], None]
LIST_CONCURRENCY = 4
# Descend through lone common prefixes (``data/`` holding only ``data/run-1/``) at most this deep
# to find a level worth splitting.
MAX_DESCENT = 4
# Above this many common prefixes, one chained listing: measured on 100k keys in 1000
# prefixes, splitting was no faster (SeaweedFS-bound) and cost 0.8 s more client CPU.
MAX_SPLIT = 64


def _each_page(pages: Iterator[Page], on_page: PageHandler) -> list[str]:
    """Hand every page's objects to ``on_page``; return the common prefixes."""
    prefixes: list[str] = []
    for page in pages:
        if page.objects:
            on_page(page.objects)
        prefixes += page.prefixes
    return prefixes


def scan_scope(transport: Transport, bucket: str, prefix: str, on_page: PageHandler) -> None:
    """Every object whose key starts with ``prefix``, exactly once, page by page (blocking).
    ``on_page`` is called from several threads, never two at once.

    Raises:
        QBucketError: a listing request failed (after retries).
    """
    made: list[Lister] = []
    idle: list[Lister] = []
    lock = threading.Lock()
    delivering = threading.Lock()

    def checkout() -> Lister:
        with lock:
            if idle:
                return idle.pop()
            made.append(transport.lister())
            return made[-1]

    def deliver(objects: list[Listed]) -> None:
        with delivering:
            on_page(objects)

    try:
        lister = checkout()
        level = prefix
        for _ in range(MAX_DESCENT):
            found: list[int] = []

            def counted(objects: list[Listed], found: list[int] = found) -> None:
                found.append(len(objects))
                deliver(objects)

            prefixes = _each_page(lister.listing(bucket, level, delimiter="/"), counted)
            if len(prefixes) != 1 or found:
                break
            level = prefixes[0]
        if len(prefixes) > MAX_SPLIT:
            # Many small sub-prefixes: a request each costs more client CPU (~1 ms: signing,
            # http.client) than it saves, and on a shared machine that CPU is the server's.
            # One plain listing instead, minus the objects of this level, already handed over.
            def below(objects: list[Listed], start: int = len(level)) -> None:
                deeper = [listed for listed in objects if "/" in listed.key[start:]]
                if deeper:
                    deliver(deeper)

            _each_page(lister.listing(bucket, level), below)
            return
        idle.append(lister)

        def list_prefix(sub: str) -> None:
            worker = checkout()
            _each_page(worker.listing(bucket, sub), deliver)
            with lock:
                idle.append(worker)

        each_in_threads(prefixes, list_prefix, LIST_CONCURRENCY)
    except Exception as exc:
        raise translate(exc, action="list", bucket=bucket, key=prefix or None) from exc
    finally:
        for lister in made:
            lister.close()
