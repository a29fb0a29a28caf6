"""The listing of a sync scope sees exactly the keys a plain listing sees, whatever the server's
sort order and however odd the keys: as a plain chain (a small scope), split by delimiter into one
listing per common prefix (a large one, whose first pages are then listed twice), or as a chain
again when there are too many prefixes to split."""

from __future__ import annotations

from typing import Any

import pytest

import qbucket
from qbucket import _listing, _remote_scan
from qbucket._listing import Lister
from qbucket._listing_page import Listed
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


# (pages of the chain before a split is tried, their size, MAX_SPLIT): the 32 keys fit in the
# first pages; they do not, and the scope is split; they do not, and it has too many prefixes.
MODES = {"chain": (2, 1000, 64), "split": (1, 4, 64), "many-prefixes": (1, 4, 2)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prefix", ["", "scope/", "scope/lone/"])
def test_scope_listing_equals_plain_listing(
    bucket: qbucket.Bucket, s3: Any, prefix: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_pages, page_size, max_split = MODES[mode]
    monkeypatch.setattr(_remote_scan, "FIRST_PAGES", first_pages)
    monkeypatch.setattr(_remote_scan, "CHAIN_PAGE_SIZE", page_size)
    monkeypatch.setattr(_remote_scan, "MAX_SPLIT", max_split)
    for key in ODD_KEYS:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"1")
        s3.put_object(Bucket=bucket.uuid, Key="scope/" + key, Body=b"2")
    expected = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.uuid, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    requests = _count_requests(monkeypatch)
    found = _scan(bucket, prefix)
    assert len(found) == len(set(found)), "a key was listed twice"
    assert sorted(found) == sorted(expected)
    if len(expected) <= first_pages * page_size:
        assert requests == [None], "a scope within the first pages is one plain chain"
    else:
        assert "/" in requests, "a scope larger than the first pages looks for a split"


def _count_requests(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The delimiter of every listing the scan starts, in order."""
    started: list[str | None] = []
    listing = Lister.listing

    def recorded(self: Lister, bucket: str, prefix: str = "", **options: Any) -> Any:
        started.append(options.get("delimiter"))
        return listing(self, bucket, prefix, **options)

    monkeypatch.setattr(Lister, "listing", recorded)
    return started


def test_large_scope_splits_into_sub_prefixes(
    bucket: qbucket.Bucket, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three pages of four keys: the first is listed by the chain, then the scope is split
    # across its three directories, and the first page's keys are listed again but not
    # delivered twice.
    monkeypatch.setattr(_remote_scan, "FIRST_PAGES", 1)
    monkeypatch.setattr(_remote_scan, "CHAIN_PAGE_SIZE", 4)
    keys = [f"d{d}/f{f}" for d in range(3) for f in range(4)]
    for key in keys:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    requests = _count_requests(monkeypatch)
    found = _scan(bucket, "")
    assert sorted(found) == sorted(keys)
    assert len(found) == len(keys)
    assert requests == [None, "/", None, None, None]


def test_split_listing_pages_through_large_sub_prefixes(
    bucket: qbucket.Bucket, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More keys than one page (1000) under one sub-prefix, and a lone chain of prefixes above.
    monkeypatch.setattr(_remote_scan, "FIRST_PAGES", 1)
    keys = [f"x/y/many/{i:05d}" for i in range(1100)] + ["x/y/other/1"]
    for start in range(0, len(keys), 100):
        for key in keys[start : start + 100]:
            s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    found = _scan(bucket, "")
    assert sorted(found) == sorted(keys)


def _lister(bucket: qbucket.Bucket) -> Lister:
    return bucket._transport.lister()


def test_the_next_page_is_asked_for_before_a_page_is_used(bucket: qbucket.Bucket, s3: Any) -> None:
    keys = [f"k{i}" for i in range(7)]
    for key in keys:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    lister = _lister(bucket)
    try:
        pages = lister.listing(bucket.uuid, page_size=3)
        first = next(pages)
        assert lister._unread is not None, "the second page's GET is out while the first is in hand"
        rest = [listed.key for page in pages for listed in page.objects]
    finally:
        lister.close()
    assert [listed.key for listed in first.objects] + rest == keys


def test_a_listing_left_with_a_page_on_its_way_leaves_the_lister_usable(
    bucket: qbucket.Bucket, s3: Any
) -> None:
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    lister = _lister(bucket)
    try:
        abandoned = lister.listing(bucket.uuid, page_size=2)
        next(abandoned)  # the second page's answer is now on the connection, unread
        first = lister.first(bucket.uuid, "k3")
        whole = [listed.key for page in lister.listing(bucket.uuid) for listed in page.objects]
        abandoned.close()
    finally:
        lister.close()
    assert first is not None and first.key == "k3"
    assert whole == keys


def test_a_wrong_guess_of_the_next_token_costs_a_request_not_a_key(
    bucket: qbucket.Bucket, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    monkeypatch.setattr(_listing, "next_token", lambda body: "k0")  # always the wrong one
    lister = _lister(bucket)
    try:
        found = [
            listed.key
            for page in lister.listing(bucket.uuid, page_size=2)
            for listed in page.objects
        ]
    finally:
        lister.close()
    assert found == keys


def test_two_listings_taking_turns_on_one_lister_each_get_their_own_pages(
    bucket: qbucket.Bucket, s3: Any
) -> None:
    for key in [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)]:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    lister = _lister(bucket)
    try:
        a = lister.listing(bucket.uuid, "a", page_size=2)
        b = lister.listing(bucket.uuid, "b", page_size=2)
        turns = [next(a), next(b), next(a), next(b)]  # each sends its next GET ahead in turn
    finally:
        lister.close()
    assert [[listed.key for listed in page.objects] for page in turns] == [
        ["a0", "a1"],
        ["b0", "b1"],
        ["a2", "a3"],
        ["b2", "b3"],
    ]
