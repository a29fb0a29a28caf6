"""Content digests: one read of a file computes every digest qbucket needs.

MD5 is what S3 reports as the ETag of a single-part upload, so it lets a listing tell unchanged
files without extra requests; SHA-1 is the seed API's sync criterion and is stored in each object's
metadata (``x-amz-meta-qbucket-sha1``) for objects whose ETag is not an MD5 (multipart uploads,
encrypted buckets).
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

CHUNK = 1 << 20
SHA1_METADATA = "qbucket-sha1"  # user metadata name; S3 sends it as x-amz-meta-qbucket-sha1


class Digests(NamedTuple):
    """Size and hex digests of one content."""

    size: int
    md5: str
    sha1: str


Stamp = tuple[int, int, int, int, int]


def stat_key(info: os.stat_result) -> Stamp:
    """The stat fields that change whenever a file's content may have: device, inode, size,
    mtime_ns and ctime_ns (rewriting a file and restoring its mtime still moves the ctime)."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def digest_bytes(data: bytes | memoryview) -> Digests:
    return Digests(len(data), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest())


def digest_file(path: str | os.PathLike[str]) -> Digests:
    """Digests of the file at ``path``, read once. Raises OSError as the OS does."""
    return digest_file_checked(path)[0]


def digest_file_checked(
    path: str | os.PathLike[str], *, with_md5: bool = True
) -> tuple[Digests, os.stat_result, bool]:
    """Digests of the file at ``path``, its stat when opened, and whether it stayed unchanged
    while it was read (only then may the digests be remembered for that stat).

    ``with_md5=False`` leaves ``md5`` empty: for files uploaded in parts, whose ETag is never an
    MD5, it would cost CPU for nothing.
    """
    md5, sha1 = (hashlib.md5() if with_md5 else _NoDigest()), hashlib.sha1()
    size = 0
    with open(path, "rb", buffering=0) as stream:
        before = os.fstat(stream.fileno())
        if before.st_size <= CHUNK:
            data = stream.read()
            md5.update(data)
            sha1.update(data)
            size = len(data)
        else:
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            while count := stream.readinto(buffer):
                chunk = view[:count]
                md5.update(chunk)
                sha1.update(chunk)
                size += count
        after = os.fstat(stream.fileno())
    stable = size == before.st_size and stat_key(after) == stat_key(before)
    return Digests(size, md5.hexdigest(), sha1.hexdigest()), before, stable


class _NoDigest:
    def update(self, data: bytes | memoryview) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


def plain_md5_etag(e_tag: str | None) -> str | None:
    """The MD5 an ETag stands for, or None when it is not a plain MD5 (multipart ``...-N``,
    missing, or some other server's format)."""
    if not e_tag:
        return None
    value = e_tag.strip('"').lower()
    # strip() of the hex digits leaves nothing only if there is nothing else: ~20x faster than
    # a test per character, and the planner calls this for every listed object.
    if len(value) == 32 and not value.strip("0123456789abcdef"):
        return value
    return None
