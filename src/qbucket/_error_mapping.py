"""The one place where botocore, obstore and OS errors become qbucket errors.

Callers wrap I/O in :func:`mapped_errors` (or call :func:`translate`) with the bucket, key and path
at hand, so every error a user sees names what it is about. Messages are cut to their first
meaningful line: obstore appends multi-line debug dumps, botocore long request ids.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any

from ._exceptions import (
    BucketNotEmptyError,
    BucketStorageUnavailableException,
    InvalidBucketNameError,
    InvalidKeyError,
    LocalFileNotFoundError,
    LocalNotADirectoryError,
    LocalPathError,
    MissingBucketException,
    MissingKeyError,
    QBucketError,
    TransferError,
    UnauthorizedException,
)


class S3ResponseError(Exception):
    """A non-2xx answer to the listing's own requests (:mod:`qbucket._listing`): ``code`` is
    S3's error code (or the status), ``status`` the HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code


class HTTPProtocolError(Exception):
    """An answer to those requests that is not HTTP/1.1 as :mod:`qbucket._http` reads it, or
    that ended early."""


_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthorizationHeaderMalformed",
    "InvalidToken",
    "ExpiredToken",
    "Forbidden",
    "403",
}
_UNAVAILABLE_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "503",
    "500",
}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
_CONNECTION_WORDS = (
    "error sending request",
    "connection refused",
    "connect error",
    "tcp connect",
    "timed out",
    "timeout",
    "connection reset",
    "broken pipe",
    "dns error",
    "incomplete message",
    "unexpected eof",
)


def _short(text: str, limit: int = 300) -> str:
    text = text.split("\n\nDebug source", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(bucket: str | None, key: str | None) -> str:
    """What an operation was about, as the object of "cannot <action>" (leading space)."""
    if bucket and key:
        return f" s3://{bucket}/{key}"
    if bucket:
        return f" in bucket {bucket!r}"
    return ""


def _from_s3_error(
    code: str, status: int | None, message: str, action: str, where: str, context: dict[str, Any]
) -> QBucketError:
    """The qbucket error for an S3 error answer (``code`` as in S3's XML, ``status`` HTTP)."""
    bucket = context["bucket"]
    if code == "NoSuchBucket":
        return MissingBucketException(
            f"cannot {action}: bucket {bucket!r} does not exist", **context
        )
    if code in _MISSING_KEY_CODES or status == 404:
        return MissingKeyError(f"cannot {action}: no such key{where}", **context)
    if code in _AUTH_CODES or status == 403:
        return UnauthorizedException(
            f"cannot {action}{where}: access denied ({code}: {message}); check the access key "
            "and secret key",
            **context,
        )
    if code == "PreconditionFailed" or status == 412:  # an If-Match that no longer holds
        return TransferError(f"cannot {action}{where}: the object changed meanwhile", **context)
    if code == "InvalidBucketName":
        return InvalidBucketNameError(f"invalid bucket name {bucket!r}: {message}", **context)
    if code == "BucketNotEmpty":
        return BucketNotEmptyError(f"cannot {action}: bucket {bucket!r} is not empty", **context)
    if code in _UNAVAILABLE_CODES or (status is not None and status >= 500):
        return BucketStorageUnavailableException(
            f"cannot {action}{where}: the server keeps failing ({code}: {message})", **context
        )
    return TransferError(f"cannot {action}{where}: {code}: {message}", **context)


def translate(
    exc: BaseException,
    *,
    action: str,
    bucket: str | None = None,
    key: str | None = None,
    path: str | None = None,
) -> QBucketError:
    """A qbucket error for ``exc``, raised while doing ``action`` (e.g. "upload") on bucket/key."""
    if isinstance(exc, QBucketError):
        return exc
    where = _where(bucket, key)
    context: dict[str, Any] = {"bucket": bucket, "key": key, "path": path}

    if isinstance(exc, S3ResponseError):
        return _from_s3_error(exc.code, exc.status, _short(str(exc)), action, where, context)
    if isinstance(exc, HTTPProtocolError):
        return BucketStorageUnavailableException(
            f"cannot {action}{where}: the storage server answered badly ({_short(str(exc))})",
            **context,
        )
    # botocore is imported by its users alone: until then no exception can come from it, and
    # importing it here would cost every command.
    boto_errors = sys.modules.get("botocore.exceptions")
    if boto_errors is not None:
        if isinstance(exc, boto_errors.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = _short(str(error.get("Message") or code))
            return _from_s3_error(code, status, message, action, where, context)
        if isinstance(exc, boto_errors.NoCredentialsError):
            return UnauthorizedException(f"cannot {action}{where}: no credentials", **context)
        if isinstance(exc, boto_errors.BotoCoreError):  # connection, timeout, endpoint errors
            return BucketStorageUnavailableException(
                f"cannot {action}{where}: the storage server is unreachable ({_short(str(exc))})",
                **context,
            )

    import obstore.exceptions as ob_errors

    text = _short(str(exc))
    if isinstance(exc, ob_errors.BaseError):
        lowered = str(exc).split("\n\nDebug source", 1)[0].lower()
        if "nosuchbucket" in lowered:
            return MissingBucketException(
                f"cannot {action}: bucket {bucket!r} does not exist", **context
            )
        if isinstance(exc, (ob_errors.PermissionDeniedError, ob_errors.UnauthenticatedError)) or (
            "403 forbidden" in lowered
        ):
            return UnauthorizedException(
                f"cannot {action}{where}: access denied; check the access key and secret key",
                **context,
            )
        if isinstance(exc, ob_errors.PreconditionError):
            return TransferError(f"cannot {action}{where}: the object changed meanwhile", **context)
        if isinstance(exc, ob_errors.InvalidPathError):
            return InvalidKeyError(f"cannot {action}{where}: {text}", **context)
        if any(word in lowered for word in _CONNECTION_WORDS) or re.search(
            r"status code: 5\d\d", lowered
        ):
            return BucketStorageUnavailableException(
                f"cannot {action}{where}: the storage server is unreachable or failing ({text})",
                **context,
            )
        return TransferError(f"cannot {action}{where}: {text}", **context)
    if isinstance(exc, FileNotFoundError) and path is None:
        # obstore raises the builtin for a missing object: a remote miss, not a local one.
        return MissingKeyError(f"cannot {action}: no such key{where}", **context)
    if isinstance(exc, FileNotFoundError):
        return LocalFileNotFoundError(f"cannot {action}: {path} does not exist", **context)
    if isinstance(exc, NotADirectoryError):
        return LocalNotADirectoryError(f"cannot {action}: {path} is not a directory", **context)
    if isinstance(exc, OSError) and path is not None:
        return LocalPathError(f"cannot {action} {path}: {exc.strerror or exc}", **context)
    if isinstance(exc, OSError):  # no local path involved: the network (refused, reset, timeout)
        return BucketStorageUnavailableException(
            f"cannot {action}{where}: the storage server is unreachable ({text})", **context
        )
    if isinstance(exc, ValueError) and "parse path" in str(exc):
        return InvalidKeyError(f"cannot {action}{where}: {text}", **context)
    return TransferError(f"cannot {action}{where}: {type(exc).__name__}: {text}", **context)


@contextlib.contextmanager
def mapped_errors(
    action: str,
    *,
    bucket: str | None = None,
    key: str | None = None,
    path: str | None = None,
) -> Iterator[None]:
    """Re-raise anything but a qbucket error as one, ``from`` the original."""
    try:
        yield
    except QBucketError:
        raise
    except Exception as exc:
        raise translate(exc, action=action, bucket=bucket, key=key, path=path) from exc
