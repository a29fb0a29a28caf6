"""A download started from a listing gets the listed version of each object, or an error for
that key: never the bytes of a newer version under the listed name, never a partial file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket._download import download
from qbucket._progress import ProgressSink


@pytest.mark.parametrize(
    "replacement", [b"B" * 4096, b"B" * 100, b"B" * 9000], ids=["same-size", "shorter", "longer"]
)
def test_object_replaced_after_listing_is_not_written(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, replacement: bytes
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="k", Body=b"A" * 4096)
    (listed,) = bucket.list_files()
    s3.put_object(Bucket=bucket.uuid, Key="k", Body=replacement)
    destination = tmp_path / "k"
    transport = bucket._transport
    with pytest.raises(qbucket.TransferError) as caught:
        transport.run(
            download(transport, bucket.uuid, "k", destination, ProgressSink(), listed=listed)
        )
    assert "k" in str(caught.value)
    assert not destination.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left either


def test_listed_object_unchanged_downloads_with_its_listed_time(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="d/k", Body=b"content")
    (listed,) = bucket.list_files()
    transport = bucket._transport
    destination = tmp_path / "k"
    transport.run(
        download(transport, bucket.uuid, "d/k", destination, ProgressSink(), listed=listed)
    )
    assert destination.read_bytes() == b"content"
    assert destination.stat().st_mtime == listed.last_modified.timestamp()
