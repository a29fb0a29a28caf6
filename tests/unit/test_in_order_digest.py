"""The digest of a file written out of order by parallel ranges (qbucket._ranged)."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from qbucket import _ranged
from qbucket._ranged import _InOrderDigest

SIZE = 5 * 4096 + 77


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    descriptor = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    yield descriptor
    os.close(descriptor)


def _chunks(data: bytes, size: int) -> list[tuple[int, bytes]]:
    return [(start, data[start : start + size]) for start in range(0, len(data), size)]


def _write(fd: int, digest: _InOrderDigest, start: int, chunk: bytes) -> None:
    os.pwrite(fd, chunk, start)
    digest.written(start, start + len(chunk), memoryview(chunk))


def test_chunks_in_any_order_hash_to_the_digest_of_the_whole(fd: int) -> None:
    data = os.urandom(SIZE)
    digest = _InOrderDigest(fd)
    digest.expect("md5", hashlib.md5(data).hexdigest())
    pieces = _chunks(data, 1000)
    random.Random(7).shuffle(pieces)
    for start, chunk in pieces:
        _write(fd, digest, start, chunk)
    assert digest.matches(SIZE)


def test_extents_that_never_passed_through_python_are_read_back_from_the_file(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spliced bodies land in the file without a chunk in hand, even at the frontier.
    monkeypatch.setattr(_ranged, "READ_BACK", 1500)
    data = os.urandom(SIZE)
    digest = _InOrderDigest(fd)
    digest.expect("sha1", hashlib.sha1(data).hexdigest())
    pieces = _chunks(data, 1000)
    random.Random(11).shuffle(pieces)
    for number, (start, chunk) in enumerate(pieces):
        os.pwrite(fd, chunk, start)
        digest.written(start, start + len(chunk), memoryview(chunk) if number % 3 else None)
    assert digest.matches(SIZE)
    assert digest._pending == {}


def test_what_landed_before_the_digest_was_known_is_hashed_once_it_is(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ranged, "READ_BACK", 1500)  # read back in several pieces
    data = os.urandom(SIZE)
    digest = _InOrderDigest(fd)
    later = _chunks(data, 1000)
    for start, chunk in later[8:]:  # the other ranges, before the first one's answer
        _write(fd, digest, start, chunk)
    digest.expect("sha1", hashlib.sha1(data).hexdigest())
    for start, chunk in later[:8]:  # the first range, after it
        _write(fd, digest, start, chunk)
    assert digest.matches(SIZE)


def test_contiguous_extents_waiting_to_be_hashed_are_kept_as_one(fd: int) -> None:
    data = os.urandom(SIZE)
    digest = _InOrderDigest(fd)
    pieces = _chunks(data, 100)
    for start, chunk in pieces[50:]:
        _write(fd, digest, start, chunk)
    for start, chunk in reversed(pieces[10:40]):
        _write(fd, digest, start, chunk)
    assert digest._pending == {1000: 4000, 5000: SIZE}
    assert digest._pending_ends == {4000: 1000, SIZE: 5000}


def test_a_different_content_does_not_match(fd: int) -> None:
    data = os.urandom(SIZE)
    digest = _InOrderDigest(fd)
    digest.expect("sha1", hashlib.sha1(data).hexdigest())
    corrupted = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    for start, chunk in _chunks(corrupted, 1000):
        _write(fd, digest, start, chunk)
    assert not digest.matches(SIZE)


def test_a_file_short_of_its_size_does_not_match(fd: int) -> None:
    data = os.urandom(SIZE)
    digest = _InOrderDigest(fd)
    digest.expect("md5", hashlib.md5(data).hexdigest())
    for start, chunk in _chunks(data, 1000)[1:]:
        _write(fd, digest, start, chunk)
    assert not digest.matches(SIZE)


def test_with_nothing_to_expect_nothing_is_kept(fd: int) -> None:
    digest = _InOrderDigest(fd)
    _write(fd, digest, 4096, b"x" * 100)
    digest.nothing_to_expect()
    _write(fd, digest, 8192, b"y" * 100)
    assert digest.algorithm is None
    assert digest._pending == {} and digest._pending_ends == {}
