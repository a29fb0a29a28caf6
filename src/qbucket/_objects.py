"""The records qbucket hands back: object summaries (listings) and sync summaries."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._exceptions import QBucketError
    from ._planner import Plan
    from ._pull import PullPlan

# qbucket's records are NamedTuples, not dataclasses: a dataclass costs ~1.2 ms to define (its
# methods are compiled from source), and the module pulls in inspect, ~10 ms more; a NamedTuple
# costs ~0.3 ms. With some fifteen records on the way to a sync, that was a quarter of
# ``import qbucket`` (~25 ms), which every short command pays: a no-op sync takes ~0.25 s.


def repr_without(record: Any, *left_out: str) -> str:
    """The repr of a NamedTuple ``record`` without the fields ``left_out`` (secrets, or
    lists thousands of entries long)."""
    fields = ", ".join(
        f"{name}={getattr(record, name)!r}" for name in record._fields if name not in left_out
    )
    return f"{type(record).__name__}({fields})"


class ObjectSummary(NamedTuple):
    """One object of a listing, with the attributes users read on boto3's ``S3.ObjectSummary``.
    Immutable; ``summary._replace(size=...)`` makes a changed copy.

    Attributes:
        bucket_name: the bucket the object is in.
        key: the object's key.
        size: its size in bytes.
        e_tag: its ETag, quoted as S3 sends it (the MD5 for single-part uploads).
        last_modified: when it was last written (UTC).
    """

    bucket_name: str
    key: str
    size: int
    e_tag: str
    last_modified: datetime.datetime

    def __str__(self) -> str:
        return f"s3://{self.bucket_name}/{self.key}"


class SyncSummary(NamedTuple):
    """What a sync did (or, with ``dry_run``, would do). Returned by :meth:`Bucket.sync_directory`,
    :meth:`Bucket.sync_files`, :meth:`Bucket.sync_to_directory` and :meth:`Bucket.put_files`.

    Attributes:
        uploaded: files sent.
        copied: objects copied server-side instead of sent (same content as another object).
        deleted: remote extras deleted (upload direction), local extras deleted (download).
        unchanged: files whose content was already there.
        bytes_uploaded: bytes sent.
        seconds: wall time.
        downloaded: objects fetched (download direction).
        bytes_downloaded: bytes fetched.
        excluded: files left out by the include/exclude rules (a local directory that they
            exclude as a whole is not walked, and its files are not counted).
        dry_run: nothing was changed; the counts say what would be done.
        plan: what was (or would be) done, operation by operation.
        failures: with ``dry_run``, what would fail (unreadable files, refused keys). A real
            run raises :class:`BatchError` instead.
    """

    uploaded: int
    copied: int
    deleted: int
    unchanged: int
    bytes_uploaded: int
    seconds: float
    downloaded: int = 0
    bytes_downloaded: int = 0
    excluded: int = 0
    dry_run: bool = False
    plan: Plan | PullPlan | None = None
    failures: tuple[QBucketError, ...] = ()

    def __repr__(self) -> str:
        return repr_without(self, "plan", "failures")
