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
