"""Which objects of a batch come down on plain threads (qbucket._small_downloads.takes): small
ones whose ETag is their MD5 and whose key obstore names exactly; the loop's path takes the rest."""

from __future__ import annotations

import datetime

import pytest

from qbucket import _small_downloads
from qbucket._objects import ObjectSummary

MD5_ETAG = '"0123456789abcdef0123456789abcdef"'
WHEN = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _summary(key: str = "d/k", size: int = 4096, e_tag: str = MD5_ETAG) -> ObjectSummary:
    return ObjectSummary("b", key, size, e_tag, WHEN)


def test_a_small_object_with_an_md5_etag_comes_down_on_threads() -> None:
    assert _small_downloads.takes(_summary())
    assert _small_downloads.takes(_summary(size=_small_downloads.LARGEST))


@pytest.mark.parametrize(
    "summary",
    [
        _summary(size=_small_downloads.LARGEST + 1),
        _summary(size=0),  # nothing to fetch: the loop's path writes the empty file
        _summary(e_tag='"0123456789abcdef0123456789abcdef-2"'),  # of parts: no MD5 to check
        _summary(key="a//b"),
    ],
    ids=["larger", "empty", "parts-etag", "odd-key"],
)
def test_the_others_take_the_loop_s_path(summary: ObjectSummary) -> None:
    assert not _small_downloads.takes(summary)


def test_no_threads_leaves_everything_to_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_small_downloads, "THREADS", 0)
    assert not _small_downloads.takes(_summary())
