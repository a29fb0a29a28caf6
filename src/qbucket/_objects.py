"""The object summaries that listings return."""

from __future__ import annotations

import datetime
from typing import NamedTuple

# qbucket's records are NamedTuples, not dataclasses: a dataclass costs ~1.2 ms to define (its
# methods are compiled from source), and the module pulls in inspect, ~10 ms more; a NamedTuple
# costs ~0.3 ms. With some fifteen records on the way to a sync, that was a quarter of
# ``import qbucket`` (~25 ms), which every short command pays: a no-op sync takes ~0.25 s.


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
