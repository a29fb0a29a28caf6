"""Rules for remote keys and the local paths they map to. Pure functions, no I/O.

Keys that qbucket writes are unix-like relative paths: no empty, ``.`` or ``..`` segment, no NUL,
at most 1024 bytes. Like the original SDK, a leading ``/`` and doubled slashes are forgiven on the
way in (``/data//x`` is stored as ``data/x``).

Keys that qbucket reads may come from any tool. Before one becomes a local path it must stay
inside the target directory: ``../x``, ``a/../../x``, ``/etc/x`` and friends are refused with an
error that names the key, whatever the server allows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from ._exceptions import InvalidKeyError, UnsafeKeyError

MAX_KEY_BYTES = 1024  # the S3 limit on a key's UTF-8 length
MAX_NAME_BYTES = 255  # the usual limit on one local file name (ext4, xfs, apfs)


# Unicode category Cc, exactly: C0 controls, DEL and C1 controls. A regex, not a
# unicodedata.category() call per character: a sync normalises every file name of the tree.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


def _has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


def normalize_key(key: object, *, bucket: str | None = None, allow_control: bool = False) -> str:
    """The key qbucket stores for ``key``, or :class:`InvalidKeyError` naming it.

    Args:
        key: what the caller passed as a remote name.
        bucket: named in the error, if any.
        allow_control: accept control characters (tab, newline...). qbucket never writes such
            keys, but reads, copies and deletes those other tools wrote.
    """
    if not isinstance(key, str):
        raise InvalidKeyError(
            f"remote key must be a str, not {type(key).__name__}: {key!r}", bucket=bucket
        )
    if "\x00" in key:
        raise InvalidKeyError(f"remote key contains a NUL byte: {key!r}", bucket=bucket, key=key)
    if not allow_control and _has_control_character(key):
        raise InvalidKeyError(
            f"remote key {key!r} contains a control character", bucket=bucket, key=key
        )
    if key.endswith("/"):
        raise InvalidKeyError(
            f"remote key {key!r} ends with '/': that names a directory, not a file",
            bucket=bucket,
            key=key,
        )
    parts = [part for part in key.split("/") if part]
    if not parts:
        raise InvalidKeyError(f"remote key {key!r} is empty", bucket=bucket, key=key)
    for part in parts:
        if part in (".", ".."):
            raise InvalidKeyError(
                f"remote key {key!r} has a {part!r} segment: keys must be plain relative paths",
                bucket=bucket,
                key=key,
            )
    normalized = "/".join(parts)
    if len(normalized.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"remote key is longer than {MAX_KEY_BYTES} bytes: {normalized[:60]!r}...",
            bucket=bucket,
            key=key,
        )
    return normalized


def normalize_prefix(remote: str | None, *, bucket: str | None = None) -> str:
    """A remote directory as a key prefix: ``""`` for the whole bucket, else ``"a/b/"``.

    The trailing slash is the boundary that keeps ``data`` from touching ``data2/``.
    """
    if remote is None or remote.strip("/") == "":
        return ""
    return normalize_key(remote.rstrip("/"), bucket=bucket) + "/"


def join_key(prefix: str, relative: str) -> str:
    """``prefix`` (from :func:`normalize_prefix`) followed by a relative posix path."""
    return prefix + relative


def relative_posix_path(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """The path of ``path`` below ``root`` with ``/`` separators, as it becomes part of a key."""
    return Path(os.path.relpath(path, root)).as_posix()


def obstore_can_address(key: str) -> bool:
    """True if obstore (object_store paths) can name ``key`` exactly.

    It cannot name keys with empty, ``.`` or ``..`` segments (``dir/`` markers, ``a//b``) or
    control characters; qbucket reaches those through boto3 instead.
    """
    if not key or key.startswith("/") or key.endswith("/") or "//" in key:
        return False
    if _has_control_character(key):
        return False
    return all(part not in (".", "..") for part in key.split("/"))


def is_directory_marker(key: str) -> bool:
    """True for the zero-length ``dir/`` objects some tools create to show empty folders."""
    return key.endswith("/")


def key_to_relative_path(key: str, *, bucket: str | None = None) -> PurePosixPath:
    """The relative local path a key is written to, or :class:`UnsafeKeyError`.

    Refuses every key that is absolute, climbs with ``..``, holds ``.`` or empty segments, NUL or a
    backslash (a separator on Windows), or a component longer than a file name may be.
    """

    def refuse(reason: str) -> UnsafeKeyError:
        return UnsafeKeyError(f"refusing to download key {key!r}: {reason}", bucket=bucket, key=key)

    if not key:
        raise refuse("it is empty")
    if "\x00" in key:
        raise refuse("it contains a NUL byte")
    if "\\" in key:
        raise refuse("it contains a backslash, a path separator on Windows")
    if key.startswith("/"):
        raise refuse("it is an absolute path")
    parts = key.split("/")
    for part in parts:
        if part == "":
            raise refuse("it has an empty path segment")
        if part in (".", ".."):
            raise refuse(f"it has a {part!r} segment that could leave the target directory")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise refuse(f"a path component is longer than {MAX_NAME_BYTES} bytes")
    return PurePosixPath(*parts)


def local_path_for_key(root: Path, key: str, *, bucket: str | None = None) -> Path:
    """Where ``key`` is written below ``root``; never outside it (see :func:`key_to_relative_path`)."""
    relative = key_to_relative_path(key, bucket=bucket)
    return root.joinpath(*relative.parts)


def validate_bucket_name(name: object) -> str:
    """``name`` if it is a valid S3 bucket name, else :class:`InvalidBucketNameError`.

    The rules every S3 server accepts: 3 to 63 characters, lowercase letters, digits, ``-`` and
    ``.``, starting and ending with a letter or digit, no ``..`` and not an IPv4 address.
    """
    from ._exceptions import InvalidBucketNameError

    if not isinstance(name, str):
        raise InvalidBucketNameError(f"bucket name must be a str, not {type(name).__name__}")
    problem = None
    if not 3 <= len(name) <= 63:
        problem = "it must be 3 to 63 characters long"
    elif any(c not in _BUCKET_CHARS for c in name):
        problem = "it may hold only lowercase letters, digits, '-' and '.'"
    elif not (name[0].isalnum() and name[-1].isalnum()):
        problem = "it must start and end with a letter or a digit"
    elif ".." in name:
        problem = "it must not contain '..'"
    elif all(part.isdigit() for part in name.split(".")) and name.count(".") == 3:
        problem = "it must not look like an IP address"
    if problem:
        raise InvalidBucketNameError(f"invalid bucket name {name!r}: {problem}", bucket=name)
    return name


_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
