"""Which engine sends each of a sync's operations (qbucket._sync.on_threads): plain threads for
small files and copies, the transfer loop for files sent in parts and for keys obstore cannot
name exactly."""

from __future__ import annotations

import pytest

from qbucket import _sync, _transfer
from qbucket._hashing import Digests
from qbucket._planner import Copy, Upload

SMALL = Digests(4096, "m" * 32, "s" * 40)


@pytest.mark.parametrize(
    "operation",
    [
        Upload("dir/a.txt", "/tree/dir/a.txt", SMALL),
        Upload("edge", "/tree/edge", SMALL._replace(size=_transfer.SINGLE_PUT_LIMIT)),
        Copy("dir/a.txt", "dir/b.txt", SMALL, True),
        Copy("large", "large-2", SMALL._replace(size=1 << 40), False),  # server-side anyway
    ],
    ids=["small", "largest-single-put", "copy", "copy-of-large"],
)
def test_small_files_and_copies_go_on_threads(operation: Upload | Copy) -> None:
    assert _sync.on_threads(operation)


@pytest.mark.parametrize(
    "operation",
    [
        Upload("big", "/tree/big", SMALL._replace(size=_transfer.SINGLE_PUT_LIMIT + 1)),
        Upload("dir/", "/tree/dir", SMALL),  # a key obstore would write as "dir"
        Copy("a//b", "c", SMALL, True),
        Copy("a", "c\x01", SMALL, False),
    ],
    ids=["in-parts", "marker-key", "odd-source", "odd-key"],
)
def test_the_rest_goes_on_the_loop(operation: Upload | Copy) -> None:
    assert not _sync.on_threads(operation)


def test_no_sync_threads_sends_everything_through_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sync, "SYNC_THREADS", 0)
    assert not _sync.on_threads(Upload("a", "/tree/a", SMALL))
    assert not _sync.on_threads(Copy("a", "b", SMALL, True))
