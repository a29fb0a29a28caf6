"""Odd keys that a real server accepts, downloaded (issue 6, case 11): twins that differ only by
Unicode normalisation or case stay apart, and a key that is both a file and a directory ("a" and
"a/b") fails alone, named, while everything else is downloaded. Keys no server here stores
(``../x``, ``/etc/x``, NUL, 1024+ bytes) are covered through stubbed listings in
tests/integration/test_bucket_api.py and by the property tests of tests/unit/test_keys.py."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket._scan import is_download_temporary


def _put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_normalisation_and_case_twins_stay_apart(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    composed = unicodedata.normalize("NFC", "café.txt")
    decomposed = unicodedata.normalize("NFD", "café.txt")
    assert composed != decomposed
    objects = {composed: b"NFC", decomposed: b"NFD", "Readme": b"title case", "README": b"caps"}
    _put(s3, bucket.uuid, objects)
    out = tmp_path / "out"
    bucket.get_all_files(str(out))
    assert sorted(os.listdir(out)) == sorted(objects)  # four names, none merged
    for name, data in objects.items():
        assert (out / name).read_bytes() == data


def test_a_key_that_is_both_file_and_directory_fails_alone(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    objects = {"a": b"file a", "a/b": b"file a/b", "other/c": b"c"}
    _put(s3, bucket.uuid, objects)
    out = tmp_path / "out"
    with pytest.raises(qbucket.BatchError) as caught:
        bucket.get_all_files(str(out))
    (failure,) = caught.value.failures
    assert failure.key in ("a", "a/b")
    assert failure.key in str(failure)
    survivor = "a/b" if failure.key == "a" else "a"
    assert (out / survivor).read_bytes() == objects[survivor]
    assert (out / "other" / "c").read_bytes() == b"c"
    leftovers = [p.name for p in out.rglob("*") if is_download_temporary(p.name)]
    assert leftovers == []


HOSTILE = [
    "../x",
    "a/../../x",
    "p/..",
    "/etc/x",
    "//x",
    "x/./y",
    "nul\x00byte",
    "back\\..\\..\\slash",
    "k" * 1100,  # over S3's 1024 bytes
    "d/" + "n" * 300,  # a component over 255 bytes
]


def test_hostile_keys_from_a_listing_each_fail_named_and_nothing_leaves_the_target(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No server here stores such keys (SeaweedFS refuses or rewrites them), but another S3
    # server may: the listing is stubbed, the good objects are real.
    good = {"good/one": b"one", "two": b"two"}
    _put(s3, bucket.uuid, good)
    listed = bucket.list_files()
    template = listed[0]
    stub = listed + [
        qbucket.ObjectSummary(bucket.uuid, key, 3, template.e_tag, template.last_modified)
        for key in HOSTILE
    ]
    monkeypatch.setattr(bucket, "list_files", lambda: stub)
    out = tmp_path / "sandbox" / "out"
    out.parent.mkdir()
    with pytest.raises(qbucket.BatchError) as caught:
        bucket.get_all_files(str(out))
    assert sorted(caught.value.keys) == sorted(HOSTILE)
    for failure in caught.value.failures:
        assert isinstance(failure, qbucket.UnsafeKeyError)
        assert repr(failure.key)[1:40] in str(failure) or failure.key[:40] in str(failure)
    for key, data in good.items():
        assert (out / key).read_bytes() == data
    outside = [p for p in tmp_path.rglob("*") if out not in p.parents and p != out]
    assert outside == [tmp_path / "sandbox"]
    assert not Path("/etc/x").exists()
