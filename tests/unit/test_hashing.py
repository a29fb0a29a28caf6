"""Content digests (qbucket._hashing)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from qbucket._hashing import CHUNK, Digests, digest_bytes, digest_file, plain_md5_etag

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def expected(data: bytes) -> Digests:
    return Digests(len(data), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest())


def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@pytest.mark.parametrize(
    "size",
    [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 12345],
    ids=lambda size: f"{size}B",
)
def test_digest_file_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = payload(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert digest_file(path) == expected(data)
    assert digest_file(str(path)) == expected(data)


def test_digest_of_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.touch()
    assert digest_file(path) == Digests(0, EMPTY_MD5, EMPTY_SHA1)


def test_multi_chunk_file_is_more_than_one_mib(tmp_path: Path) -> None:
    assert CHUNK == 1 << 20
    data = payload(3 * CHUNK + 7)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    digests = digest_file(path)
    assert digests.size == 3 * CHUNK + 7
    assert digests.md5 == hashlib.md5(data).hexdigest()
    assert digests.sha1 == hashlib.sha1(data).hexdigest()


def test_digest_file_raises_os_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        digest_file(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        digest_file(tmp_path)


@pytest.mark.parametrize("data", [b"", b"abc", b"\x00" * 10, payload(5000)], ids=len)
def test_digest_bytes(data: bytes) -> None:
    assert digest_bytes(data) == expected(data)
    assert digest_bytes(memoryview(data)) == expected(data)


def test_digest_bytes_known_values() -> None:
    assert digest_bytes(b"") == Digests(0, EMPTY_MD5, EMPTY_SHA1)
    assert digest_bytes(b"abc") == Digests(
        3, "900150983cd24fb0d6963f7d28e17f72", "a9993e364706816aba3e25717850c26c9cd0d89d"
    )


def test_digest_file_equals_digest_bytes(tmp_path: Path) -> None:
    data = payload(CHUNK + 3)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert digest_file(path) == digest_bytes(data)


@pytest.mark.parametrize(
    ("e_tag", "md5"),
    [
        (f'"{EMPTY_MD5}"', EMPTY_MD5),
        (EMPTY_MD5, EMPTY_MD5),
        (f'"{EMPTY_MD5.upper()}"', EMPTY_MD5),
        ('"900150983cd24fb0d6963f7d28e17f72"', "900150983cd24fb0d6963f7d28e17f72"),
        (f'"{EMPTY_MD5}-3"', None),
        (f"{EMPTY_MD5}-12", None),
        (None, None),
        ("", None),
        ('""', None),
        ("garbage", None),
        ('"' + "g" * 32 + '"', None),
        ('"' + "a" * 31 + '"', None),
        ('"' + "a" * 33 + '"', None),
        (f'W/"{EMPTY_MD5}"', None),
        (f'"{EMPTY_SHA1}"', None),
    ],
)
def test_plain_md5_etag(e_tag: str | None, md5: str | None) -> None:
    assert plain_md5_etag(e_tag) == md5
