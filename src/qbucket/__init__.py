"""qbucket: object-storage buckets from Python and the shell.

The ``Bucket`` API of the original compute-cloud SDK on any S3-compatible server, and on an
embedded SeaweedFS server when none is configured::

    import qbucket

    with qbucket.Connection() as conn:          # embedded server, or QBUCKET_STORAGE_URL etc.
        bucket = conn.create_bucket("results")
        bucket.sync_directory("out/", remote="run-1")
        bucket.get_all_files("copy/")
"""

from ._bucket import Bucket
from ._connection import Connection
from ._exceptions import (
    BatchError,
    BucketNotEmptyError,
    BucketStorageUnavailableException,
    ConfigurationError,
    EmbeddedServerError,
    IncompleteScanError,
    InvalidBucketNameError,
    InvalidKeyError,
    LocalFileNotFoundError,
    LocalNotADirectoryError,
    LocalPathError,
    MissingBucketException,
    MissingKeyError,
    QBucketError,
    TooManyDeletesError,
    TransferError,
    UnauthorizedException,
    UnsafeKeyError,
)
from ._objects import ObjectSummary, SyncSummary

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "Bucket",
    "BucketNotEmptyError",
    "BucketStorageUnavailableException",
    "ConfigurationError",
    "Connection",
    "EmbeddedServerError",
    "IncompleteScanError",
    "InvalidBucketNameError",
    "InvalidKeyError",
    "LocalFileNotFoundError",
    "LocalNotADirectoryError",
    "LocalPathError",
    "MissingBucketException",
    "MissingKeyError",
    "ObjectSummary",
    "QBucketError",
    "SyncSummary",
    "TooManyDeletesError",
    "TransferError",
    "UnauthorizedException",
    "UnsafeKeyError",
    "__version__",
]
