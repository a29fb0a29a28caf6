"""The download-direction planner (qbucket._pull): pure decisions from a listing and a walk."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from qbucket._exceptions import UnsafeKeyError
from qbucket._hashing import Digests, digest_bytes
from qbucket._objects import ObjectSummary
from qbucket._pull import PullPlan, RemoteFile, plan_pull, remote_files
from qbucket._scan import LocalFile

WHEN = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
MULTIPART = '"0123456789abcdef0123456789abcdef-3"'


def summary(key: str, data: bytes = b"x", *, e_tag: str | None = None) -> ObjectSummary:
    tag = e_tag if e_tag is not None else f'"{hashlib.md5(data).hexdigest()}"'
    return ObjectSummary("bkt", key, len(data), tag, WHEN)


def remote(*items: tuple[str, bytes], e_tag: str | None = None) -> dict[str, RemoteFile]:
    return {key: RemoteFile(key, summary(key, data, e_tag=e_tag)) for key, data in items}


def local(*items: tuple[str, bytes]) -> dict[str, LocalFile]:
    return {path: LocalFile(path, f"/dst/{path}", len(data), 0) for path, data in items}


def digests(*items: tuple[str, bytes]) -> dict[str, Digests]:
    return {path: digest_bytes(data) for path, data in items}


def fetched(plan: PullPlan) -> list[str]:
    return [item.relative for item in plan.fetches]


# -- remote_files: keys to safe relative paths ---------------------------------------------------


def test_keys_below_the_prefix_become_relative_paths() -> None:
    listed = [summary("data/a.txt"), summary("data/sub/b.txt"), summary("data/")]
    found, refused, excluded = remote_files(listed, "data/", bucket="bkt")
    assert sorted(found) == ["a.txt", "sub/b.txt"]  # the dir/ marker is no file
    assert found["sub/b.txt"].summary.key == "data/sub/b.txt"
    assert (refused, excluded) == ([], 0)


def test_keys_outside_the_prefix_are_ignored() -> None:
    found, _, _ = remote_files([summary("data2/x"), summary("data/x")], "data/", bucket="bkt")
    assert list(found) == ["x"]


@pytest.mark.parametrize(
    "key",
    ["../evil", "a/../../evil", "/etc/passwd", "a//b", "./x", "a/./b", "back\\slash", "a/.."],
)
def test_hostile_keys_are_refused_each_with_its_key(key: str) -> None:
    found, refused, _ = remote_files([summary(key), summary("fine.txt")], "", bucket="bkt")
    assert list(found) == ["fine.txt"]
    assert len(refused) == 1
    assert isinstance(refused[0], UnsafeKeyError)
    assert refused[0].key == key and refused[0].bucket == "bkt"


def test_hostile_keys_below_a_prefix_are_refused_with_the_whole_key() -> None:
    _, refused, _ = remote_files([summary("data/../../x")], "data/", bucket="bkt")
    assert [error.key for error in refused] == ["data/../../x"]


def test_keep_excludes_and_counts() -> None:
    listed = [summary("p/a.tmp"), summary("p/b.txt"), summary("p/c.tmp")]
    found, _, excluded = remote_files(
        listed, "p/", bucket="bkt", keep=lambda path: not path.endswith(".tmp")
    )
    assert (list(found), excluded) == (["b.txt"], 2)


# -- plan_pull ----------------------------------------------------------------------------------


def test_new_objects_are_fetched() -> None:
    plan = plan_pull(remote(("a", b"1"), ("b/c", b"2")), {}, {})
    assert fetched(plan) == ["a", "b/c"]
    assert plan.bytes_to_fetch == 2
    assert not plan.is_noop


def test_size_change_is_fetched_without_hashing() -> None:
    plan = plan_pull(remote(("a", b"new content")), local(("a", b"old")), {})
    assert fetched(plan) == ["a"]
    assert plan.to_hash == []


def test_same_size_needs_the_local_digests_first() -> None:
    plan = plan_pull(remote(("a", b"one"), ("b", b"new")), local(("a", b"one"), ("b", b"xyz")), {})
    assert plan.to_hash == ["a", "b"]
    assert plan.fetches == [] and plan.deletes == []


def test_md5_etag_decides_same_size() -> None:
    plan = plan_pull(
        remote(("a", b"one"), ("b", b"new")),
        local(("a", b"one"), ("b", b"old")),
        digests(("a", b"one"), ("b", b"old")),
    )
    assert plan.unchanged == ["a"]
    # "b": same size, the ETag is an MD5 that differs: only the stored SHA-1 may tell
    assert plan.unresolved == ["b"]


def test_stored_sha1_decides_when_the_etag_cannot() -> None:
    objects = remote(("same", b"one"), ("changed", b"new"), ("bare", b"abc"), e_tag=MULTIPART)
    objects["same"] = RemoteFile("same", objects["same"].summary, digest_bytes(b"one").sha1)
    objects["changed"] = RemoteFile(
        "changed", objects["changed"].summary, digest_bytes(b"new").sha1
    )
    objects["bare"] = RemoteFile("bare", objects["bare"].summary, "")  # no SHA-1 stored
    have = (("same", b"one"), ("changed", b"old"), ("bare", b"abc"))
    plan = plan_pull(objects, local(*have), digests(*have))
    assert plan.unchanged == ["same"]
    assert fetched(plan) == ["bare", "changed"]  # "bare" cannot be proved equal: fetched again


def test_local_extras_are_deleted_only_when_asked() -> None:
    objects = remote(("keep", b"1"))
    files = local(("keep", b"1"), ("extra", b"2"), ("sub/extra", b"3"))
    known = digests(("keep", b"1"))
    assert plan_pull(objects, files, known).deletes == []
    plan = plan_pull(objects, files, known, delete=True)
    assert [item.relative for item in plan.deletes] == ["extra", "sub/extra"]
    assert plan.unchanged == ["keep"]


def test_nothing_to_do() -> None:
    plan = plan_pull(remote(("a", b"1")), local(("a", b"1")), digests(("a", b"1")), delete=True)
    assert plan.is_noop and plan.unchanged == ["a"]
