"""The split listing of a sync scope (delimiter, then one listing per common prefix) sees exactly
the keys a plain listing sees, whatever the server's sort order and however odd the keys."""

from __future__ import annotations

from typing import Any

import pytest

import qbucket
from qbucket import _remote_scan
from qbucket._listing import Listed
from qbucket._remote_scan import scan_scope

ODD_KEYS = [
    "top.txt",
    "a",
    "a/b",
    "a.x",
    "a0",
    "a/b/c/d",
    "a//double",
    "/leading",
    "dir/",
    "dir/inside",
    "tab\there/x",
    "new\nline/y",
    "space here/z",
    "plus+and%percent/w",
    "é/ü",
    "lone/only/deep/file",
]


def _scan(bucket: qbucket.Bucket, prefix: str) -> list[str]:
    keys: list[str] = []

    def add(objects: list[Listed]) -> None:
        keys.extend(listed.key for listed in objects)

    transport = bucket._transport
    scan_scope(transport, bucket.uuid, prefix, add)
    return keys


@pytest.mark.parametrize("max_split", [64, 2], ids=["split", "many-prefixes"])
@pytest.mark.parametrize("prefix", ["", "scope/", "scope/lone/"])
def test_split_listing_equals_plain_listing(
    bucket: qbucket.Bucket, s3: Any, prefix: str, max_split: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With more common prefixes than MAX_SPLIT the scope is listed in one chain instead.
    monkeypatch.setattr(_remote_scan, "MAX_SPLIT", max_split)
    for key in ODD_KEYS:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"1")
        s3.put_object(Bucket=bucket.uuid, Key="scope/" + key, Body=b"2")
    expected = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.uuid, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    found = _scan(bucket, prefix)
    assert len(found) == len(set(found)), "a key was listed twice"
    assert sorted(found) == sorted(expected)


def test_split_listing_pages_through_large_sub_prefixes(bucket: qbucket.Bucket, s3: Any) -> None:
    # More keys than one page (1000) under one sub-prefix, and a lone chain of prefixes above.
    keys = [f"x/y/many/{i:05d}" for i in range(1100)] + ["x/y/other/1"]
    for start in range(0, len(keys), 100):
        for key in keys[start : start + 100]:
            s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    found = _scan(bucket, "")
    assert sorted(found) == sorted(keys)
