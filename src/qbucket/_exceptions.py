"""The one exception tree of qbucket.

Every public failure is a :class:`QBucketError` that carries the bucket, key and/or local path it
is about, and that also subclasses the builtin a Python user would catch (the original SDK's
documentation names ``ValueError``, ``IOError`` and ``KeyError``)::

    QBucketError
    ├── ConfigurationError (ValueError)          bad endpoint, credentials or config file
    ├── InvalidBucketNameError (ValueError)      not a valid S3 bucket name
    ├── InvalidKeyError (ValueError)             a key qbucket refuses to write or read
    │   └── UnsafeKeyError                       a key that would land outside the target dir
    ├── MissingBucketException (LookupError)     the bucket does not exist
    ├── MissingKeyError (KeyError, ValueError)   no object under this key
    ├── LocalPathError (OSError)                 a local file or directory problem
    │   ├── LocalFileNotFoundError (FileNotFoundError)
    │   ├── LocalNotADirectoryError (NotADirectoryError)
    │   └── IncompleteScanError                  a local tree could not be read completely
    ├── BucketStorageUnavailableException (ConnectionError)  server unreachable or failing
    ├── UnauthorizedException (PermissionError)  wrong or insufficient credentials
    ├── BucketNotEmptyError                      refusing to delete a non-empty bucket
    ├── TransferError (OSError)                  an upload, download, copy or delete failed
    ├── BatchError                               several operations failed; ``.failures``
    ├── TooManyDeletesError                      a sync would delete more than allowed
    └── EmbeddedServerError (RuntimeError)       the local SeaweedFS could not be started

The names ``MissingBucketException``, ``BucketStorageUnavailableException`` and
``UnauthorizedException`` are the original SDK's, kept so that existing ``except`` clauses work.
"""

from __future__ import annotations

from collections.abc import Sequence


class QBucketError(Exception):
    """Base of every qbucket error.

    Attributes:
        bucket: the bucket the error is about, if any.
        key: the object key the error is about, if any.
        path: the local path the error is about, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        bucket: str | None = None,
        key: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.bucket = bucket
        self.key = key
        self.path = path

    def __str__(self) -> str:
        # KeyError would otherwise print the repr of the message, quotes and all.
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes survive pickling (multiprocessing, logging handlers).
        return (
            _rebuild,
            (type(self), self.message, {"bucket": self.bucket, "key": self.key, "path": self.path}),
        )


def _rebuild(cls: type[QBucketError], message: str, attrs: dict[str, str | None]) -> QBucketError:
    error = cls.__new__(cls)
    QBucketError.__init__(error, message, **attrs)
    return error


class ConfigurationError(QBucketError, ValueError):
    """The endpoint, the credentials or the config file are missing or malformed."""


class InvalidBucketNameError(QBucketError, ValueError):
    """The name is not a valid S3 bucket name (3-63 lowercase letters, digits, '-' and '.')."""


class InvalidKeyError(QBucketError, ValueError):
    """A remote key that is not a valid unix-like relative path (empty, '.', '..', NUL...)."""


class UnsafeKeyError(InvalidKeyError):
    """A remote key that would be written outside the target directory (``../x``, ``/etc/x``)."""


class MissingBucketException(QBucketError, LookupError):
    """The bucket does not exist on the server."""


class MissingKeyError(QBucketError, KeyError, ValueError):
    """No object under this key: ``ValueError`` for ``get_file``, ``KeyError`` for ``bucket[k]``."""


class LocalPathError(QBucketError, OSError):
    """A local file or directory could not be read or written."""


class LocalFileNotFoundError(LocalPathError, FileNotFoundError):
    """A local file or directory that does not exist."""


class LocalNotADirectoryError(LocalPathError, NotADirectoryError):
    """A local path that should be a directory and is not."""


class IncompleteScanError(LocalPathError):
    """A local tree could not be read completely, so nothing remote was deleted."""


class BucketStorageUnavailableException(QBucketError, ConnectionError):
    """The storage server cannot be reached, times out or keeps failing."""


class UnauthorizedException(QBucketError, PermissionError):
    """The credentials are wrong or not allowed to do this."""


class BucketNotEmptyError(QBucketError):
    """The bucket still holds objects and the operation would not empty it."""


class TransferError(QBucketError, OSError):
    """One upload, download, copy or delete failed for a reason not covered above."""


class BatchError(QBucketError):
    """Several operations failed; each one is in :attr:`failures`, with its own error.

    Raised by :meth:`Bucket.flush` (every failed background upload), by syncs and by
    :meth:`Bucket.get_all_files`, after everything that could be done was done.
    """

    def __init__(
        self,
        message: str,
        failures: Sequence[QBucketError],
        *,
        bucket: str | None = None,
    ) -> None:
        lines = [message, *(f"  {failure}" for failure in failures)]
        super().__init__("\n".join(lines), bucket=bucket)
        self.summary = message
        self.failures: list[QBucketError] = list(failures)

    @property
    def keys(self) -> list[str]:
        """The keys of the failed operations that name one."""
        return [failure.key for failure in self.failures if failure.key is not None]

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.summary, self.failures), {"bucket": self.bucket})


class TooManyDeletesError(QBucketError):
    """A sync planned more deletes than its ``max_delete`` allows; nothing was changed."""


class EmbeddedServerError(QBucketError, RuntimeError):
    """The embedded SeaweedFS server could not be started or reached."""
