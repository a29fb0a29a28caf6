"""The delete guard (issue 6, case 10): ``max_delete=`` refuses, before the first change, a sync
that would delete more than allowed — in both directions, and in a dry run too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import qbucket

from ..integration.helpers import make_tree, remote_objects


def test_upload_sync_over_the_limit_changes_nothing(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    for i in range(5):
        s3.put_object(Bucket=bucket.uuid, Key=f"old{i}", Body=b"old")
    before = remote_objects(s3, bucket.uuid)
    tree = make_tree(tmp_path / "tree", {"new": b"new"})
    for dry_run in (True, False):
        with pytest.raises(qbucket.TooManyDeletesError) as caught:
            bucket.sync_directory(str(tree), max_delete=4, dry_run=dry_run)
        assert "5" in str(caught.value) and "4" in str(caught.value)
    assert remote_objects(s3, bucket.uuid) == before  # not even the new file was sent
    summary = bucket.sync_directory(str(tree), max_delete=5)
    assert summary.deleted == 5
    assert remote_objects(s3, bucket.uuid) == {"new": b"new"}


def test_download_sync_over_the_limit_changes_nothing(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="kept", Body=b"remote")
    local = make_tree(tmp_path / "local", {f"extra{i}": b"local" for i in range(3)})
    with pytest.raises(qbucket.TooManyDeletesError):
        bucket.sync_to_directory(str(local), delete=True, max_delete=2)
    assert sorted(p.name for p in local.iterdir()) == ["extra0", "extra1", "extra2"]
    summary = bucket.sync_to_directory(str(local), delete=True, max_delete=3)
    assert summary.deleted == 3
    assert sorted(p.name for p in local.iterdir()) == ["kept"]
