"""The object summaries that listings return."""

from __future__ import annotations

import dataclasses
import datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectSummary:
    """One object of a listing, with the attributes users read on boto3's ``S3.ObjectSummary``.

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
