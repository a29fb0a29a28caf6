"""Every member and operator of the seed Bucket API against a real server, checked with boto3."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket._server import ServerInfo

from .helpers import bucket_exists, drop_bucket, make_tree, remote_objects, unique_name

TREE = {
    "a.txt": b"alpha",
    "sub/b.txt": b"bravo",
    "sub/deeper/c.bin": bytes(range(256)) * 10,
    "empty": b"",
}
TEMP_MARK = ".qbucket-part-"


def files_below(root: Path) -> set[str]:
    """Every path (files, dirs, symlinks) below root, relative, with '/' separators."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def temp_leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if TEMP_MARK in p.name]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# -- add_file -------------------------------------------------------------------------------


def test_add_file_remote_defaults_to_path_as_given(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_tree(tmp_path, {"dir/f.txt": b"relative"})
    bucket.add_file("dir/f.txt")
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {"dir/f.txt": b"relative"}


def test_add_file_absolute_path_default_remote_drops_leading_slash(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = tmp_path / "abs.txt"
    path.write_bytes(b"absolute")
    bucket.add_file(str(path))
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {str(path).lstrip("/"): b"absolute"}


def test_add_file_explicit_remote_and_leading_slash_forgiven(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = tmp_path / "local-name.bin"
    path.write_bytes(b"explicit")
    bucket.add_file(str(path), "remote/name.bin")
    bucket.add_file(path, "/lead/x.bin")
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {
        "remote/name.bin": b"explicit",
        "lead/x.bin": b"explicit",
    }


def test_add_file_object_is_read_before_add_file_returns(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "stream.bin"
    path.write_bytes(data)
    with open(path, "rb") as stream:
        bucket.add_file(stream, "from/stream.bin")
    path.unlink()
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {"from/stream.bin": data}


def test_add_file_object_without_remote_uses_base_name(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = make_tree(tmp_path, {"nested/dir/named.txt": b"named"}) / "nested/dir/named.txt"
    with open(path, "rb") as stream:
        bucket.add_file(stream)
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {"named.txt": b"named"}


def test_add_file_missing_local_file_raises_synchronously(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-file.txt"
    with pytest.raises(qbucket.LocalFileNotFoundError) as info:
        bucket.add_file(str(missing), "k")
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, IOError)
    assert str(missing) in str(info.value)
    bucket.flush()  # nothing was queued, nothing to report
    assert remote_objects(s3, bucket.uuid) == {}


def test_add_file_dot_segments_are_invalid_keys(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    for key in ("../x", "a/../../x", "./x", "a/./b", ".."):
        with pytest.raises(qbucket.InvalidKeyError) as info:
            bucket.add_file(str(path), key)
        assert isinstance(info.value, ValueError)
        assert key in str(info.value)
        with open(path, "rb") as stream, pytest.raises(qbucket.InvalidKeyError):
            bucket.add_file(stream, key)
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {}


def test_add_file_stores_sha1_metadata(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hash me")
    bucket.add_file(path, "by-path")
    with open(path, "rb") as stream:
        bucket.add_file(stream, "by-stream")
    bucket.flush()
    for key in ("by-path", "by-stream"):
        head = s3.head_object(Bucket=bucket.uuid, Key=key)
        assert head["Metadata"]["qbucket-sha1"] == sha1(b"hash me")


# -- add_directory --------------------------------------------------------------------------


def test_add_directory_under_prefix_keeps_hierarchy(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    bucket.add_directory(str(src), "pre/fix")
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {f"pre/fix/{k}": v for k, v in TREE.items()}


def test_add_directory_at_root(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    bucket.add_directory(src, remote="")
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == TREE


def test_add_directory_skips_symlinks(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"real.txt": b"r", "d/inner.txt": b"i"})
    outside = make_tree(tmp_path / "outside", {"secret.txt": b"s", "deep/more.txt": b"m"})
    (src / "file-link").symlink_to(outside / "secret.txt")
    (src / "dir-link").symlink_to(outside, target_is_directory=True)
    (src / "d" / "inner-link").symlink_to(src / "real.txt")
    bucket.add_directory(src, "up")
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {"up/real.txt": b"r", "up/d/inner.txt": b"i"}


def test_add_directory_on_a_file_raises_not_a_directory(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = tmp_path / "plain.txt"
    path.write_bytes(b"x")
    with pytest.raises(NotADirectoryError) as info:
        bucket.add_directory(str(path))
    assert isinstance(info.value, IOError)
    assert isinstance(info.value, OSError)
    assert isinstance(info.value, qbucket.QBucketError)
    assert str(path) in str(info.value)
    assert remote_objects(s3, bucket.uuid) == {}


def test_add_directory_missing_raises_file_not_found(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError) as info:
        bucket.add_directory(tmp_path / "nope")
    assert isinstance(info.value, qbucket.LocalFileNotFoundError)
    assert "nope" in str(info.value)
    assert remote_objects(s3, bucket.uuid) == {}


# -- mapping operators ----------------------------------------------------------------------


def test_setitem_file_and_directory(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    single = tmp_path / "single.txt"
    single.write_bytes(b"single")
    bucket["one/file.txt"] = str(single)
    bucket["tree"] = str(src)
    bucket.flush()
    expected = {f"tree/{k}": v for k, v in TREE.items()}
    expected["one/file.txt"] = b"single"
    assert remote_objects(s3, bucket.uuid) == expected


def test_getitem_downloads_to_key_as_relative_path(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="x/y/z.txt", Body=b"zed")
    monkeypatch.chdir(tmp_path)
    result = bucket["x/y/z.txt"]
    assert isinstance(result, str)
    assert Path(result).resolve() == (tmp_path / "x/y/z.txt").resolve()
    assert (tmp_path / "x/y/z.txt").read_bytes() == b"zed"


def test_getitem_missing_key_raises_key_error(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyError) as info:
        bucket["not/there"]
    assert "not/there" in str(info.value)
    assert not (tmp_path / "not" / "there").exists()


def test_delitem_removes_and_missing_raises_key_error(bucket: qbucket.Bucket, s3: Any) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="gone", Body=b"g")
    s3.put_object(Bucket=bucket.uuid, Key="kept", Body=b"k")
    del bucket["gone"]
    assert set(remote_objects(s3, bucket.uuid)) == {"kept"}
    with pytest.raises(KeyError) as info:
        del bucket["gone"]
    assert "gone" in str(info.value)
    assert set(remote_objects(s3, bucket.uuid)) == {"kept"}


def test_contains_with_key_and_object_summary(bucket: qbucket.Bucket, s3: Any) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="data/file", Body=b"d")
    assert "data/file" in bucket
    assert "data" not in bucket  # a prefix is not an object
    assert "data/fil" not in bucket
    assert "other" not in bucket
    (summary,) = bucket.list_files()
    assert summary in bucket
    s3.delete_object(Bucket=bucket.uuid, Key="data/file")
    assert summary not in bucket
    assert "data/file" not in bucket


def test_iter_yields_object_summaries(bucket: qbucket.Bucket, s3: Any) -> None:
    for key in ("a", "b/c", "d/e/f"):
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=key.encode())
    items = list(iter(bucket))
    assert all(isinstance(item, qbucket.ObjectSummary) for item in items)
    assert sorted(item.key for item in items) == ["a", "b/c", "d/e/f"]
    assert sorted(s.key for s in bucket) == ["a", "b/c", "d/e/f"]


def test_equality_hash_uuid_description(
    connection: qbucket.Connection, bucket: qbucket.Bucket, s3_server: ServerInfo
) -> None:
    same = qbucket.Bucket(connection, bucket.uuid, create=False)
    other_conn = qbucket.Connection(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    try:
        via_other_connection = qbucket.Bucket(other_conn, bucket.uuid, create=False)
        different = qbucket.Bucket(connection, unique_name("other"), create=False)
        assert same == bucket
        assert hash(same) == hash(bucket)
        assert via_other_connection == bucket
        assert hash(via_other_connection) == hash(bucket)
        assert different != bucket
        assert len({bucket, same, via_other_connection, different}) == 2
        assert bucket != bucket.uuid
    finally:
        other_conn.close()
    assert bucket.uuid == bucket.name
    assert bucket.description == bucket.name


# -- listing --------------------------------------------------------------------------------


def test_list_files_object_summary_attributes(bucket: qbucket.Bucket, s3: Any) -> None:
    before = datetime.datetime.now(datetime.UTC)
    s3.put_object(Bucket=bucket.uuid, Key="d/one.txt", Body=b"hello world")
    s3.put_object(Bucket=bucket.uuid, Key="zero", Body=b"")
    summaries = {s.key: s for s in bucket.list_files()}
    assert set(summaries) == {"d/one.txt", "zero"}
    one = summaries["d/one.txt"]
    assert isinstance(one, qbucket.ObjectSummary)
    assert one.bucket_name == bucket.uuid
    assert one.size == 11
    assert one.e_tag == '"' + hashlib.md5(b"hello world").hexdigest() + '"'
    assert summaries["zero"].size == 0
    assert summaries["zero"].e_tag == '"' + hashlib.md5(b"").hexdigest() + '"'
    assert isinstance(one.last_modified, datetime.datetime)
    assert one.last_modified.tzinfo is not None
    assert one.last_modified.utcoffset() is not None
    slack = datetime.timedelta(minutes=2)
    assert before - slack <= one.last_modified <= datetime.datetime.now(datetime.UTC) + slack


def test_directory_uses_raw_prefix_semantics(bucket: qbucket.Bucket, s3: Any) -> None:
    keys = ["data/x", "data/sub/y", "database", "dat", "other/data/z", "a/b/c/d", "a/b/cc", "a/bc"]
    for key in keys:
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"-")

    def listed(prefix: str) -> set[str]:
        found = bucket.directory(prefix)
        assert all(isinstance(s, qbucket.ObjectSummary) for s in found)
        return {s.key for s in found}

    assert listed("data") == {"data/x", "data/sub/y", "database"}
    assert listed("data/") == {"data/x", "data/sub/y"}
    assert listed("data/s") == {"data/sub/y"}
    assert listed("dat") == {"data/x", "data/sub/y", "database", "dat"}
    assert listed("a/b/c") == {"a/b/c/d", "a/b/cc"}
    assert listed("a/b/c/") == {"a/b/c/d"}
    assert listed("a/b") == {"a/b/c/d", "a/b/cc", "a/bc"}
    assert listed("nothing") == set()
    assert listed("") == set(keys)
    assert {s.key for s in bucket.directory()} == set(keys)
    assert {s.key for s in bucket.list_files()} == set(keys)


@pytest.mark.parametrize(
    "foreign",
    ["folder/", "tab\there", "new\nline", "ctl\x01char"],
    ids=["directory-marker", "tab", "newline", "control-char"],
)
def test_list_files_reports_keys_written_by_other_tools_exactly(
    bucket: qbucket.Bucket, s3: Any, foreign: str
) -> None:
    # Any UTF-8 string is a valid S3 key; other tools (the console, rclone...) write such keys.
    for key in ("plain.txt", "folder/inside", foreign):
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"")
    expected = set(remote_objects(s3, bucket.uuid))
    assert foreign in expected
    assert {s.key for s in bucket.list_files()} == expected
    assert {s.key for s in bucket} == expected
    assert {s.key for s in bucket.directory("folder")} == {
        k for k in expected if k.startswith("folder")
    }


def test_directory_marker_is_not_a_file(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="folder/", Body=b"")
    s3.put_object(Bucket=bucket.uuid, Key="folder/inside", Body=b"in")
    with pytest.raises(qbucket.MissingKeyError):
        bucket.get_file("folder", tmp_path / "folder-file")
    assert "folder" not in bucket  # consistent with get_file: there is no object 'folder'
    out = tmp_path / "out"
    bucket.get_all_files(out)
    assert (out / "folder" / "inside").read_bytes() == b"in"


@pytest.mark.parametrize("foreign", ["new\nline", "folder/"], ids=["newline", "directory-marker"])
def test_delete_bucket_holding_keys_written_by_other_tools(
    bucket: qbucket.Bucket, s3: Any, foreign: str
) -> None:
    for key in ("plain.txt", foreign):
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"x")
    bucket.delete()
    assert not bucket_exists(s3, bucket.uuid)


# -- get_file -------------------------------------------------------------------------------


def test_get_file_creates_subfolders_and_returns_str(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="k/v.txt", Body=b"value")
    target = tmp_path / "new" / "deep" / "out.txt"
    result = bucket.get_file("k/v.txt", str(target))
    assert isinstance(result, str)
    assert Path(result) == target
    assert target.read_bytes() == b"value"


def test_get_file_default_local_is_the_key(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="k/v.txt", Body=b"value")
    monkeypatch.chdir(tmp_path)
    result = bucket.get_file("k/v.txt")
    assert isinstance(result, str)
    assert (tmp_path / result).resolve() == (tmp_path / "k/v.txt").resolve()
    assert (tmp_path / "k/v.txt").read_bytes() == b"value"


def test_get_file_into_existing_directory_uses_base_name(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="deep/path/name.bin", Body=b"n")
    target_dir = tmp_path / "into"
    target_dir.mkdir()
    result = bucket.get_file("deep/path/name.bin", target_dir)
    assert Path(result) == target_dir / "name.bin"
    assert (target_dir / "name.bin").read_bytes() == b"n"
    assert files_below(target_dir) == {"name.bin"}


def test_get_file_missing_key_raises_value_error_naming_it(
    bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_bytes(b"keep me")
    with pytest.raises(ValueError) as info:
        bucket.get_file("no/such/key", existing)
    assert isinstance(info.value, qbucket.MissingKeyError)
    assert "no/such/key" in str(info.value)
    assert existing.read_bytes() == b"keep me"
    assert temp_leftovers(tmp_path) == []


def test_get_file_progress_callback_large_object(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    data = os.urandom(9 * 1024 * 1024 + 123)
    s3.put_object(Bucket=bucket.uuid, Key="big/big.bin", Body=data)
    calls: list[tuple[int, int, str]] = []
    out = bucket.get_file(
        "big/big.bin", tmp_path / "big.bin", progress=lambda r, t, n: calls.append((r, t, n))
    )
    assert Path(out).read_bytes() == data
    assert len(calls) >= 2
    reads = [read for read, _, _ in calls]
    assert reads == sorted(reads)
    assert all(total == len(data) for _, total, _ in calls)
    assert calls[-1][0] == calls[-1][1] == len(data)
    assert all(isinstance(name, str) and name.endswith("big.bin") for _, _, name in calls)


def test_get_file_progress_callback_zero_byte_object(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="zero", Body=b"")
    calls: list[tuple[int, int, str]] = []
    out = bucket.get_file("zero", tmp_path / "zero", progress=lambda *a: calls.append(a))
    assert Path(out).read_bytes() == b""
    assert calls, "the callback must be called at least once"
    assert calls[-1][:2] == (0, 0)


def test_get_file_progress_true_prints_nothing_without_terminal(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="p", Body=os.urandom(100_000))
    s3.put_object(Bucket=bucket.uuid, Key="q", Body=b"q")
    capfd.readouterr()
    bucket.get_file("p", tmp_path / "p", progress=True)
    bucket.get_all_files(tmp_path / "all", progress=True)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
    assert (tmp_path / "p").stat().st_size == 100_000


def test_get_file_replaces_existing_file_atomically(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="f", Body=b"new content")
    target = tmp_path / "f"
    target.write_bytes(b"old content that is longer")
    witness = tmp_path / "hardlink-to-old"
    os.link(target, witness)
    old_inode = target.stat().st_ino
    bucket.get_file("f", target)
    assert target.read_bytes() == b"new content"
    # Replaced by a rename, not rewritten in place: the old inode still holds the old bytes.
    assert target.stat().st_ino != old_inode
    assert witness.read_bytes() == b"old content that is longer"
    assert temp_leftovers(tmp_path) == []
    assert files_below(tmp_path) == {"f", "hardlink-to-old"}


# -- get_all_files --------------------------------------------------------------------------


def test_get_all_files_downloads_everything_byte_identical(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    objects = {**TREE, "x/y/z/deep.bin": os.urandom(2_000_000)}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=data)
    out = tmp_path / "out"
    written = bucket.get_all_files(str(out))
    assert sorted(Path(p).resolve() for p in written) == sorted(
        (out / key).resolve() for key in objects
    )
    for key, data in objects.items():
        assert (out / key).read_bytes() == data
    assert {p for p in files_below(out) if (out / p).is_file()} == set(objects)
    assert temp_leftovers(out) == []


def test_get_all_files_overwrites_existing_files(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="a/b", Body=b"fresh")
    out = make_tree(tmp_path / "out", {"a/b": b"stale stale", "untouched": b"u"})
    bucket.get_all_files(out)
    assert (out / "a/b").read_bytes() == b"fresh"
    assert (out / "untouched").read_bytes() == b"u"


def test_get_all_files_progress_per_file_and_only_complete_files_appear(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    objects = {
        "one": os.urandom(5 * 1024 * 1024),
        "dir/two": os.urandom(1000),
        "dir/zero": b"",
    }
    for key, data in objects.items():
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=data)
    out = tmp_path / "out"
    calls: list[tuple[int, int, str]] = []
    wrong: list[str] = []
    lock = threading.Lock()

    def progress(read: int, total: int, name: str) -> None:
        with lock:
            calls.append((read, total, name))
            # While a file is being transferred its final name must not exist yet; the last
            # call (read == total) comes once it is in place, complete.
            for key in objects:
                if name.endswith(key) and (out / key).exists() != (read == total):
                    wrong.append(f"{key} exists={(out / key).exists()} at {read}/{total}")

    bucket.get_all_files(out, progress=progress)
    assert wrong == []
    for key, data in objects.items():
        assert (out / key).read_bytes() == data
        mine = [(r, t) for r, t, n in calls if n == key or n.endswith("/" + key)]
        assert mine, f"no progress for {key}: {calls}"
        reads = [r for r, _ in mine]
        assert reads == sorted(reads)
        assert mine[-1] == (len(data), len(data))
    assert temp_leftovers(out) == []


def test_get_all_files_refuses_hostile_keys_from_listing(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = {"good/one.txt": b"one", "two.txt": b"two"}
    for key, data in real.items():
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=data)
    summaries = bucket.list_files()
    hostile = ["../escape", "a/../../escape2", "/etc/escape3"]
    template = summaries[0]
    stub = list(summaries) + [
        qbucket.ObjectSummary(
            bucket_name=bucket.uuid,
            key=key,
            size=3,
            e_tag=template.e_tag,
            last_modified=template.last_modified,
        )
        for key in hostile
    ]
    monkeypatch.setattr(bucket, "list_files", lambda: stub)
    work = tmp_path / "work"
    out = work / "deeper" / "out"
    out.parent.mkdir(parents=True)
    before = files_below(tmp_path)
    with pytest.raises(qbucket.BatchError) as info:
        bucket.get_all_files(out)
    failures = info.value.failures
    assert len(failures) == len(hostile)
    assert all(isinstance(f, qbucket.UnsafeKeyError) for f in failures)
    assert sorted(info.value.keys) == sorted(hostile)
    for key in hostile:
        assert any(key in str(f) for f in failures), key
    for key, data in real.items():
        assert (out / key).read_bytes() == data
    created = files_below(tmp_path) - before
    assert {c for c in created if not c.startswith("work/deeper/out/")} == {"work/deeper/out"}
    assert not Path("/etc/escape3").exists()


def test_get_all_files_does_not_write_through_planted_symlinks(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="sub/x", Body=b"through-dir-link")
    s3.put_object(Bucket=bucket.uuid, Key="sub/y", Body=b"through-dir-link too")
    s3.put_object(Bucket=bucket.uuid, Key="filelink", Body=b"through-file-link")
    s3.put_object(Bucket=bucket.uuid, Key="ok", Body=b"fine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim"
    victim.write_bytes(b"untouched")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    (out / "filelink").symlink_to(victim)
    with pytest.raises(qbucket.BatchError) as info:
        bucket.get_all_files(out)
    assert {"sub/x", "sub/y"} <= set(info.value.keys)  # each refused with its own error
    assert all("sub" in str(f.path) for f in info.value.failures if f.key in ("sub/x", "sub/y"))
    assert files_below(elsewhere) == {"victim"}
    assert victim.read_bytes() == b"untouched"
    assert (out / "ok").read_bytes() == b"fine"


# -- copy_file, delete_file -----------------------------------------------------------------


def test_copy_file_is_server_side_with_metadata(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    data = os.urandom(50_000)
    path = tmp_path / "src"
    path.write_bytes(data)
    bucket.add_file(path, "orig/src.bin")
    bucket.flush()
    bucket.copy_file("orig/src.bin", "copies/dst.bin")
    assert remote_objects(s3, bucket.uuid) == {"orig/src.bin": data, "copies/dst.bin": data}
    head = s3.head_object(Bucket=bucket.uuid, Key="copies/dst.bin")
    assert head["Metadata"]["qbucket-sha1"] == sha1(data)
    assert head["Metadata"] == s3.head_object(Bucket=bucket.uuid, Key="orig/src.bin")["Metadata"]


def test_copy_file_missing_source_raises_missing_key(bucket: qbucket.Bucket, s3: Any) -> None:
    with pytest.raises(qbucket.MissingKeyError) as info:
        bucket.copy_file("absent/source", "dest")
    assert "absent/source" in str(info.value)
    assert info.value.key == "absent/source"
    assert remote_objects(s3, bucket.uuid) == {}


def test_delete_file_removes_and_ignores_missing(bucket: qbucket.Bucket, s3: Any) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="d/gone", Body=b"g")
    s3.put_object(Bucket=bucket.uuid, Key="d/kept", Body=b"k")
    bucket.delete_file("d/gone")
    assert set(remote_objects(s3, bucket.uuid)) == {"d/kept"}
    bucket.delete_file("d/gone")
    bucket.delete_file("never/existed")
    assert set(remote_objects(s3, bucket.uuid)) == {"d/kept"}


# -- delete, update -------------------------------------------------------------------------


def test_delete_removes_bucket_with_many_objects(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = tmp_path / "many"
    for d in range(25):
        sub = src / f"d{d:02}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}").write_bytes(b"%d-%d" % (d, f))
    bucket.add_directory(src)
    bucket.flush()
    paginator = s3.get_paginator("list_objects_v2")
    count = sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=bucket.uuid))
    assert count == 2500
    assert len(bucket.list_files()) == 2500
    bucket.delete()
    assert not bucket_exists(s3, bucket.uuid)
    with pytest.raises(qbucket.MissingBucketException):
        bucket.list_files()
    with pytest.raises(qbucket.MissingBucketException):
        bucket.add_file(src / "d00" / "f000", "again")
    with pytest.raises(qbucket.MissingBucketException):
        bucket.get_file("d00/f000", tmp_path / "x")
    with pytest.raises(qbucket.MissingBucketException):
        bucket.delete()
    assert not bucket_exists(s3, bucket.uuid)


def test_update_with_and_without_flush(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"u")
    bucket.add_file(path, "u1")
    bucket.update()
    bucket.add_file(path, "u2")
    bucket.update(flush=True)
    assert remote_objects(s3, bucket.uuid) == {"u1": b"u", "u2": b"u"}


@pytest.mark.parametrize("flush", [False, True])
def test_update_on_bucket_deleted_behind_its_back(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, flush: bool
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    bucket.add_file(path, "x")
    bucket.flush()
    s3.delete_object(Bucket=bucket.uuid, Key="x")
    s3.delete_bucket(Bucket=bucket.uuid)
    with pytest.raises(qbucket.MissingBucketException):
        bucket.update(flush=flush)
    with pytest.raises(qbucket.MissingBucketException):
        bucket.add_file(path, "y")
    assert not bucket_exists(s3, bucket.uuid)


# -- missing bucket -------------------------------------------------------------------------


def _tree(tmp: Path) -> Path:
    return make_tree(tmp / "tree", {"f.txt": b"f", "d/g.txt": b"g"})


def _add_file_object(b: qbucket.Bucket, path: Path) -> None:
    with open(path, "rb") as stream:
        b.add_file(stream, "f.txt")


MISSING_BUCKET_OPERATIONS: dict[str, Callable[[qbucket.Bucket, Path], object]] = {
    "list_files": lambda b, tmp: b.list_files(),
    "directory": lambda b, tmp: b.directory("d"),
    "get_file": lambda b, tmp: b.get_file("f.txt", tmp / "out.txt"),
    "get_all_files": lambda b, tmp: b.get_all_files(tmp / "all"),
    "add_file": lambda b, tmp: b.add_file(_tree(tmp) / "f.txt", "f.txt"),
    "add_file_object": lambda b, tmp: _add_file_object(b, _tree(tmp) / "f.txt"),
    "add_directory": lambda b, tmp: b.add_directory(_tree(tmp), "t"),
    "setitem": lambda b, tmp: b.__setitem__("f.txt", str(_tree(tmp) / "f.txt")),
    "setitem_directory": lambda b, tmp: b.__setitem__("t", str(_tree(tmp))),
    "getitem": lambda b, tmp: b["f.txt"],
    "contains": lambda b, tmp: "f.txt" in b,
    "delitem": lambda b, tmp: b.__delitem__("f.txt"),
    "copy_file": lambda b, tmp: b.copy_file("f.txt", "g.txt"),
    "delete_file": lambda b, tmp: b.delete_file("f.txt"),
    "sync_directory": lambda b, tmp: b.sync_directory(_tree(tmp)),
    "sync_files": lambda b, tmp: b.sync_files({"f.txt": _tree(tmp) / "f.txt"}),
    "delete": lambda b, tmp: b.delete(),
    "update": lambda b, tmp: b.update(),
    "update_flush": lambda b, tmp: b.update(flush=True),
    "iter": lambda b, tmp: list(b),
}


@pytest.mark.parametrize("operation", sorted(MISSING_BUCKET_OPERATIONS))
def test_missing_bucket_every_operation_raises_and_creates_nothing(
    connection: qbucket.Connection,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    name = unique_name("missing")
    b = qbucket.Bucket(connection, name, create=False)
    with pytest.raises(qbucket.MissingBucketException) as info:
        MISSING_BUCKET_OPERATIONS[operation](b, tmp_path)
    assert isinstance(info.value, LookupError)
    b.flush()  # nothing was queued in the background either
    assert not bucket_exists(s3, name)


def test_constructor_with_create_false_does_not_raise_or_create(
    connection: qbucket.Connection, s3: Any
) -> None:
    name = unique_name("missing")
    b = qbucket.Bucket(connection, name, create=False)
    assert b.uuid == name
    assert not bucket_exists(s3, name)


def test_constructor_with_create_true_creates(
    connection: qbucket.Connection, s3: Any, bucket_name: str
) -> None:
    try:
        qbucket.Bucket(connection, bucket_name)
        assert bucket_exists(s3, bucket_name)
        qbucket.Bucket(connection, bucket_name, create=True)  # an existing bucket is fine
    finally:
        drop_bucket(s3, bucket_name)


def test_failed_download_leaves_no_partial_file_and_keeps_the_old_one(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    data = os.urandom(12 * 1024 * 1024)  # several chunks, so the callback runs mid-stream
    s3.put_object(Bucket=bucket.uuid, Key="big.bin", Body=data)
    target = tmp_path / "big.bin"
    target.write_bytes(b"previous content")

    class Abort(Exception):
        pass

    def abort_midway(read: int, total: int, name: str) -> None:
        if 0 < read < total:
            raise Abort

    with pytest.raises(qbucket.QBucketError) as info:
        bucket.get_file("big.bin", str(target), progress=abort_midway)
    assert "big.bin" in str(info.value)
    assert target.read_bytes() == b"previous content"  # never a partial file under the name
    assert temp_leftovers(tmp_path) == []
    assert bucket.get_file("big.bin", str(target)) == str(target)
    assert target.read_bytes() == data


def test_large_single_put_object_downloads_in_parallel_ranges_md5_checked(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other tools send objects of hundreds of MiB in one PUT (rclone up to 200 MiB): those are
    # fetched in ranges too, and the MD5 of their ETag is checked as the ranges land.
    from qbucket import _ranged

    monkeypatch.setattr(_ranged, "PARALLEL_THRESHOLD", 6 << 20)
    monkeypatch.setattr(_ranged, "PART", 2 << 20)
    data = os.urandom((12 << 20) + 5)
    s3.put_object(Bucket=bucket.uuid, Key="single.bin", Body=data)
    ranges: list[int] = []
    real_fetch = _ranged.RangedFile.fetch

    def counted(self: Any, start: int, end: int) -> None:
        ranges.append(start)
        real_fetch(self, start, end)

    monkeypatch.setattr(_ranged.RangedFile, "fetch", counted)
    bucket.get_all_files(tmp_path / "out")
    assert sorted(ranges) == list(range(0, len(data), 2 << 20))
    assert (tmp_path / "out" / "single.bin").read_bytes() == data
    assert temp_leftovers(tmp_path) == []


def test_large_multipart_object_downloads_in_parallel_ranges_byte_identical(
    bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    from qbucket import _ranged, _transfer

    # Sent in parts, and fetched in more than one range (the last one ragged).
    size = max(_transfer.SINGLE_PUT_LIMIT, _ranged.PART) + 3 * 1024 * 1024 + 17
    data = os.urandom(size)
    (tmp_path / "big.bin").write_bytes(data)
    bucket.add_file(str(tmp_path / "big.bin"), "big.bin")
    bucket.flush()
    [summary] = bucket.list_files()
    assert "-" in summary.e_tag  # multipart: the ranged path, not the MD5-checked stream
    calls: list[tuple[int, int]] = []
    written = bucket.get_all_files(tmp_path / "out", progress=lambda r, t, n: calls.append((r, t)))
    assert written == [str(tmp_path / "out" / "big.bin")]
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert calls[-1] == (len(data), len(data))
    assert all(r < t for r, t in calls[:-1])
    assert bucket.get_file("big.bin", str(tmp_path / "single.bin")) == str(tmp_path / "single.bin")
    assert (tmp_path / "single.bin").read_bytes() == data
    assert temp_leftovers(tmp_path) == []


LIST_THEN_DOWNLOAD = """
import json, sys, qbucket
endpoint, access, secret, bucket, out = sys.argv[1:]
sync_side = ("sqlite3", "qbucket._sync", "qbucket._planner", "qbucket._hashcache")
with qbucket.Connection(endpoint, access, secret) as conn:
    b = qbucket.Bucket(conn, bucket, create=False)
    listed = sorted(summary.key for summary in b.list_files())
    after_listing = [name for name in ("asyncio", "obstore") if name in sys.modules]
    written = b.get_all_files(out)
loaded = [name for name in sync_side if name in sys.modules]
print(json.dumps({"listed": listed, "after_listing": after_listing, "written": len(written),
                  "sync_side": loaded}))
"""


def test_listing_needs_no_transfer_loop_and_a_download_no_sync_machinery(
    s3_server: ServerInfo, bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    # Short commands are start-up bound: a listing runs on the calling thread (no asyncio,
    # no obstore), and a download imports neither the planner nor the digest cache (sqlite3).
    src = make_tree(tmp_path / "src", TREE)
    bucket.sync_directory(src)
    argv = [sys.executable, "-c", LIST_THEN_DOWNLOAD, s3_server.endpoint, s3_server.access_key]
    argv += [s3_server.secret_key, bucket.uuid, str(tmp_path / "out")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result == {
        "listed": sorted(TREE),
        "after_listing": [],
        "written": len(TREE),
        "sync_side": [],
    }
