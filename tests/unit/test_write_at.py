"""Downloads write their bytes in small pieces at their offsets, all of them or an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qbucket import _download_batch
from qbucket._download_batch import WRITE, write_at


def test_bytes_land_at_their_offset_in_pieces_no_larger_than_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * WRITE + 123)
    sizes: list[int] = []
    real_pwrite = os.pwrite

    def recording_pwrite(fd: int, piece: memoryview, offset: int) -> int:
        sizes.append(len(piece))
        return real_pwrite(fd, piece, offset)

    monkeypatch.setattr(_download_batch.os, "pwrite", recording_pwrite)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        write_at(fd, data, 10)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(10) + data
    assert sizes == [WRITE, WRITE, WRITE, 123]


def test_a_short_write_is_continued_not_left_as_a_hole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(1000)
    real_pwrite = os.pwrite

    def at_most_300(fd: int, piece: memoryview, offset: int) -> int:
        return real_pwrite(fd, piece[:300], offset)

    monkeypatch.setattr(_download_batch.os, "pwrite", at_most_300)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        write_at(fd, data, 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_a_write_that_takes_nothing_raises_instead_of_looping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_download_batch.os, "pwrite", lambda fd, piece, offset: 0)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="took none of the bytes"):
            write_at(fd, b"abc", 0)
    finally:
        os.close(fd)
