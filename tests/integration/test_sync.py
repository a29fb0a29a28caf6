"""sync_directory / sync_files against a real server: the rules users rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import qbucket

from .helpers import make_tree, remote_objects

TREE = {
    "a.txt": b"alpha",
    "sub/b.txt": b"bravo",
    "sub/deeper/c.bin": bytes(range(256)) * 10,
    "empty": b"",
}


both_engines = pytest.mark.usefixtures("engine")  # see tests/conftest.py


@both_engines
def test_sync_directory_uploads_tree_with_relative_keys(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", TREE)
    summary = bucket.sync_directory(str(tmp_path / "src"))
    assert remote_objects(s3, bucket.uuid) == TREE
    assert summary.uploaded == len(TREE)


@both_engines
def test_sync_directory_with_remote_prefixes_keys(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", TREE)
    bucket.sync_directory(tmp_path / "src", remote="data")
    assert remote_objects(s3, bucket.uuid) == {f"data/{k}": v for k, v in TREE.items()}


@both_engines
def test_unchanged_tree_is_not_resent(bucket: qbucket.Bucket, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", TREE)
    bucket.sync_directory(tmp_path / "src")
    again = bucket.sync_directory(tmp_path / "src")
    assert (again.uploaded, again.copied, again.deleted) == (0, 0, 0)
    assert again.unchanged == len(TREE)


@both_engines
def test_same_size_same_mtime_change_is_uploaded(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"f.txt": b"version-1"})
    bucket.sync_directory(src)
    path = src / "f.txt"
    before = path.stat()
    path.write_bytes(b"version-2")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    summary = bucket.sync_directory(src)
    assert summary.uploaded == 1
    assert remote_objects(s3, bucket.uuid) == {"f.txt": b"version-2"}


@both_engines
def test_remote_extras_are_deleted_under_the_prefix_only(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    for key in ("data/old.txt", "data2/keep.txt", "datafile", "other/keep.txt"):
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=b"x")
    src = make_tree(tmp_path / "src", {"new.txt": b"new"})
    summary = bucket.sync_directory(src, remote="data")
    assert summary.deleted == 1
    assert set(remote_objects(s3, bucket.uuid)) == {
        "data/new.txt",
        "data2/keep.txt",
        "datafile",
        "other/keep.txt",
    }


@both_engines
def test_remote_none_scope_is_the_whole_bucket(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="stray/file", Body=b"x")
    src = make_tree(tmp_path / "src", {"kept.txt": b"k"})
    bucket.sync_directory(src)
    assert set(remote_objects(s3, bucket.uuid)) == {"kept.txt"}


@both_engines
def test_sha1_is_stored_in_metadata(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    import hashlib

    src = make_tree(tmp_path / "src", {"f": b"content"})
    bucket.sync_directory(src)
    head = s3.head_object(Bucket=bucket.uuid, Key="f")
    assert head["Metadata"]["qbucket-sha1"] == hashlib.sha1(b"content").hexdigest()


@both_engines
def test_identical_contents_are_uploaded_once_and_copied(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = make_tree(
        tmp_path / "src",
        {"one": b"same" * 100, "two": b"same" * 100, "d/three": b"same" * 100, "x": b"other"},
    )
    summary = bucket.sync_directory(src)
    assert (summary.uploaded, summary.copied) == (2, 2)
    assert remote_objects(s3, bucket.uuid) == {
        "one": b"same" * 100,
        "two": b"same" * 100,
        "d/three": b"same" * 100,
        "x": b"other",
    }


@both_engines
def test_renamed_file_is_copied_server_side_not_resent(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"old-name": b"payload" * 50})
    bucket.sync_directory(src)
    (src / "old-name").rename(src / "new-name")
    summary = bucket.sync_directory(src)
    assert (summary.uploaded, summary.copied, summary.deleted) == (0, 1, 1)
    assert remote_objects(s3, bucket.uuid) == {"new-name": b"payload" * 50}


@both_engines
def test_swapped_contents_are_not_mixed_up(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a": b"A" * 10, "b": b"B" * 10})
    bucket.sync_directory(src)
    make_tree(src, {"a": b"B" * 10, "b": b"A" * 10})
    bucket.sync_directory(src)
    assert remote_objects(s3, bucket.uuid) == {"a": b"B" * 10, "b": b"A" * 10}


@both_engines
def test_symlinks_are_skipped_and_reported(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_tree(tmp_path / "src", {"real.txt": b"r"})
    outside = make_tree(tmp_path / "outside", {"secret.txt": b"s"})
    (src / "file-link").symlink_to(outside / "secret.txt")
    (src / "dir-link").symlink_to(outside, target_is_directory=True)
    bucket.sync_directory(src, verbose=True)
    assert set(remote_objects(s3, bucket.uuid)) == {"real.txt"}
    out = capsys.readouterr().out
    assert "file-link" in out and "dir-link" in out and "upload" in out


@both_engines
def test_unreadable_subdirectory_deletes_nothing(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="data/locked/x", Body=b"x")
    s3.put_object(Bucket=bucket.uuid, Key="data/extra", Body=b"x")
    src = make_tree(tmp_path / "src", {"ok.txt": b"ok", "locked/x": b"x"})
    real_scandir = os.scandir

    def failing_scandir(path: Any = ".") -> Any:
        # Root ignores permission bits, so the unreadable directory is simulated at the syscall.
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", failing_scandir)
    threads = set(threading.enumerate())
    with pytest.raises(qbucket.IncompleteScanError) as info:
        bucket.sync_directory(src, remote="data")
    assert "locked" in str(info.value)
    # The listing, started before the walk, was stopped and waited for: nothing outlives it.
    assert set(threading.enumerate()) <= threads
    assert set(remote_objects(s3, bucket.uuid)) == {"data/locked/x", "data/extra"}


@both_engines
def test_missing_directory_raises_and_deletes_nothing(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="keep", Body=b"x")
    with pytest.raises(qbucket.LocalFileNotFoundError) as info:
        bucket.sync_directory(tmp_path / "nope")
    assert isinstance(info.value, FileNotFoundError)
    assert "nope" in str(info.value)
    assert set(remote_objects(s3, bucket.uuid)) == {"keep"}


@both_engines
def test_sync_files_maps_remote_names_to_local_paths(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"x": b"ex", "y": b"why"})
    s3.put_object(Bucket=bucket.uuid, Key="out/stale", Body=b"old")
    s3.put_object(Bucket=bucket.uuid, Key="elsewhere", Body=b"kept")
    bucket.sync_files({"first.txt": str(src / "x"), "sub/second.txt": src / "y"}, remote="out")
    assert remote_objects(s3, bucket.uuid) == {
        "out/first.txt": b"ex",
        "out/sub/second.txt": b"why",
        "elsewhere": b"kept",
    }


@both_engines
def test_sync_files_missing_local_file_changes_nothing(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="keep", Body=b"x")
    with pytest.raises(qbucket.LocalFileNotFoundError) as info:
        bucket.sync_files({"a": str(tmp_path / "missing")})
    assert "missing" in str(info.value)
    assert set(remote_objects(s3, bucket.uuid)) == {"keep"}


@both_engines
def test_multipart_object_compared_through_stored_sha1(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    from qbucket import _transfer

    big = os.urandom(_transfer.SINGLE_PUT_LIMIT + 1024)
    src = make_tree(tmp_path / "src", {"big.bin": big})
    bucket.sync_directory(src)
    assert "-" in s3.head_object(Bucket=bucket.uuid, Key="big.bin")["ETag"]  # multipart ETag
    again = bucket.sync_directory(src)
    assert (again.uploaded, again.unchanged) == (0, 1)
    changed = bytearray(big)
    changed[100] ^= 0xFF
    (src / "big.bin").write_bytes(bytes(changed))
    third = bucket.sync_directory(src)
    assert third.uploaded == 1
    assert s3.get_object(Bucket=bucket.uuid, Key="big.bin")["Body"].read() == bytes(changed)


@both_engines
@pytest.mark.parametrize("signed", [True, False], ids=["signed-body", "unsigned-body"])
def test_uploads_land_with_signed_and_unsigned_bodies(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed: bool
) -> None:
    # Loopback endpoints send UNSIGNED-PAYLOAD; a plain-HTTP endpoint elsewhere signs each
    # body's SHA-256. SeaweedFS must take both, for single PUTs and for multipart parts.
    from qbucket import _transfer, _transport

    monkeypatch.setattr(_transport, "signs_payload", lambda endpoint: signed)
    big = os.urandom(_transfer.SINGLE_PUT_LIMIT + 1024)
    src = make_tree(tmp_path / "src", {"big.bin": big, "small.txt": b"small"})
    assert bucket.sync_directory(src).uploaded == 2
    store = bucket._transport.store(bucket.uuid)
    assert store.config["unsigned_payload"] == ("false" if signed else "true")
    assert s3.get_object(Bucket=bucket.uuid, Key="big.bin")["Body"].read() == big
    assert s3.get_object(Bucket=bucket.uuid, Key="small.txt")["Body"].read() == b"small"


@both_engines
def test_object_from_another_tool_without_md5_etag_or_sha1_is_reuploaded(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    # A multipart upload by another tool: neither an MD5 ETag nor a stored sha1 to compare.
    upload = s3.create_multipart_upload(Bucket=bucket.uuid, Key="f")
    part = s3.upload_part(
        Bucket=bucket.uuid, Key="f", UploadId=upload["UploadId"], PartNumber=1, Body=b"old-data"
    )
    s3.complete_multipart_upload(
        Bucket=bucket.uuid,
        Key="f",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    src = make_tree(tmp_path / "src", {"f": b"new-data"})
    summary = bucket.sync_directory(src)
    assert summary.uploaded == 1
    assert remote_objects(s3, bucket.uuid) == {"f": b"new-data"}


@both_engines
def test_verbose_prints_operations(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="gone", Body=b"x")
    src = make_tree(tmp_path / "src", {"n": b"n", "m": b"n"})
    bucket.sync_directory(src, verbose=True)
    out = capsys.readouterr().out
    assert f"upload {src / 'm'} -> s3://{bucket.uuid}/m" in out
    assert f"copy s3://{bucket.uuid}/m -> n" in out
    assert f"delete s3://{bucket.uuid}/gone" in out


@both_engines
def test_dry_run_changes_nothing(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="gone", Body=b"x")
    src = make_tree(tmp_path / "src", {"n": b"n"})
    summary = bucket.sync_directory(src, dry_run=True)
    assert (summary.uploaded, summary.deleted) == (1, 1)  # what would be done
    plan = bucket.plan_sync_directory(src)
    assert [u.key for u in plan.uploads] == ["n"] and plan.deletes == ["gone"]
    assert set(remote_objects(s3, bucket.uuid)) == {"gone"}


@both_engines
def test_cached_digest_does_not_hide_a_rewrite_with_restored_mtime(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"f.txt": b"version-1", "g.txt": b"stable"})
    day_ago = (os.stat(src / "f.txt").st_mtime_ns - 86_400 * 10**9,) * 2
    for name in ("f.txt", "g.txt"):  # old enough for their digests to be cached
        os.utime(src / name, ns=day_ago)
    bucket.sync_directory(src)
    assert bucket.sync_directory(src).unchanged == 2  # served from the cache now
    (src / "f.txt").write_bytes(b"version-2")
    os.utime(src / "f.txt", ns=day_ago)  # size and mtime as cached: only the ctime moved
    summary = bucket.sync_directory(src)
    assert (summary.uploaded, summary.unchanged) == (1, 1)
    assert remote_objects(s3, bucket.uuid) == {"f.txt": b"version-2", "g.txt": b"stable"}


@both_engines
def test_sync_files_refuses_two_names_for_one_key(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"x": b"one", "y": b"two"})
    with pytest.raises(qbucket.InvalidKeyError) as info:
        bucket.sync_files({"a": str(src / "x"), "/a": str(src / "y")})
    assert "a" in str(info.value)
    assert remote_objects(s3, bucket.uuid) == {}


NO_OP_SYNC = """
import json, sys, qbucket
endpoint, access, secret, bucket, tree = sys.argv[1:]
with qbucket.Connection(endpoint, access, secret) as conn:
    summary = qbucket.Bucket(conn, bucket, create=False).sync_directory(tree)
heavy = ("asyncio", "obstore", "boto3", "qbucket._pull", "qbucket._download", "platformdirs")
loaded = [name for name in (*heavy, "tomllib") if name in sys.modules]
print(json.dumps({"unchanged": summary.unchanged, "uploaded": summary.uploaded, "loaded": loaded}))
"""


def test_sync_with_nothing_to_do_imports_no_transfer_machinery(
    s3_server: Any, bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    # A no-op resync is start-up bound: it plans on plain threads and never imports obstore
    # (nor asyncio or boto3), which a sync that sends something needs, nor the download side,
    # nor platformdirs (the XDG dirs are found without it on Linux), nor tomllib when there is
    # no config file. A first sync of a few files sends them on plain threads too: obstore,
    # but no asyncio. The tree is a day old, so that the digest cache settles it (files
    # modified in the last seconds are read again, and a file to read starts the transfers).
    src = make_tree(tmp_path / "src", {f"d{i % 3}/f{i}": b"%d" % i for i in range(30)})
    day_ago = time.time_ns() - 86_400 * 10**9
    for path in src.rglob("*"):
        os.utime(path, ns=(day_ago, day_ago))
    argv = [sys.executable, "-c", NO_OP_SYNC, s3_server.endpoint, s3_server.access_key]
    argv += [s3_server.secret_key, bucket.uuid, str(src)]
    env = {key: value for key, value in os.environ.items() if key != "QBUCKET_HOME"}
    env |= {f"XDG_{kind}_HOME": str(tmp_path / kind) for kind in ("CONFIG", "CACHE", "DATA")}

    def run() -> dict[str, Any]:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=True, env=env
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    first = run()
    assert first["uploaded"] == 30 and first["loaded"] == ["obstore"]
    assert (tmp_path / "CACHE" / "qbucket" / "digests.sqlite").is_file()
    second = run()
    assert second == {"unchanged": 30, "uploaded": 0, "loaded": []}
    (tmp_path / "CONFIG" / "qbucket").mkdir(parents=True)
    (tmp_path / "CONFIG" / "qbucket" / "config.toml").write_text('region = "us-east-1"\n')
    assert run()["loaded"] == ["tomllib"]  # the config file is read: it is found there


def test_a_sync_with_files_to_send_starts_its_transfers_during_its_scan(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # obstore and the bucket's store start beside the walk and the listing once a file to
    # read shows up, not the transfer loop: small files go out on plain threads. A sync with
    # nothing to send, or a dry run, starts nothing.
    from qbucket._transport import Transport

    events: list[str] = []
    start, run = Transport.start, Transport.run

    def recording_start(self: Transport, name: str, *, loop: bool = True) -> None:
        events.append(f"start {name} loop={loop}")
        start(self, name, loop=loop)

    def recording_run(self: Transport, coro: Any) -> Any:
        events.append("run")
        return run(self, coro)

    monkeypatch.setattr(Transport, "start", recording_start)
    monkeypatch.setattr(Transport, "run", recording_run)
    src = make_tree(tmp_path / "src", TREE)
    day_ago = time.time_ns() - 86_400 * 10**9
    for path in src.rglob("*"):  # old enough for their digests to be cached
        os.utime(path, ns=(day_ago, day_ago))
    assert bucket.sync_directory(src, dry_run=True).uploaded == len(TREE)  # read, not sent
    assert events == []
    (src / "new.txt").write_bytes(b"new")  # the one file the digest cache does not know
    os.utime(src / "new.txt", ns=(day_ago, day_ago))
    assert bucket.sync_directory(src).uploaded == len(TREE) + 1
    assert events == [f"start {bucket.uuid} loop=False"]
    assert not bucket._transport.loop_started
    events.clear()
    assert bucket.sync_directory(src).unchanged == len(TREE) + 1
    assert events == []


def test_files_sent_in_parts_go_on_the_loop_beside_the_small_ones_on_threads(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qbucket import _transfer
    from qbucket._transport import Transport

    monkeypatch.setattr(_transfer, "SINGLE_PUT_LIMIT", 6 << 20)
    on_loop: list[str] = []
    real_put_file = _transfer.put_file

    async def recorded_put_file(transport: Any, bucket_: str, key: str, *rest: Any) -> Any:
        on_loop.append(key)
        return await real_put_file(transport, bucket_, key, *rest)

    monkeypatch.setattr(_transfer, "put_file", recorded_put_file)
    big = os.urandom(7 << 20)
    files = {"big.bin": big, "copy-of-big.bin": big, "a.txt": b"a", "sub/b.txt": b"b" * 5000}
    src = make_tree(tmp_path / "src", files)
    s3.put_object(Bucket=bucket.uuid, Key="extra", Body=b"x")
    summary = bucket.sync_directory(src)
    assert on_loop == ["big.bin"]  # in parts, on the loop; the rest on threads
    assert (summary.uploaded, summary.copied, summary.deleted) == (3, 1, 1)
    assert remote_objects(s3, bucket.uuid) == files
    assert isinstance(bucket._transport, Transport) and bucket._transport.loop_started


def test_transport_start_brings_up_the_loop_that_later_transfers_use(
    s3_server: Any, bucket: qbucket.Bucket, s3: Any
) -> None:
    from qbucket._transport import Transport

    transport = Transport(
        s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1"
    )
    try:
        transport.start(bucket.uuid, loop=False)
        deadline = time.monotonic() + 30
        while bucket.uuid not in transport._stores and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bucket.uuid in transport._stores and not transport.loop_started  # the store only
        transport.start(bucket.uuid)
        deadline = time.monotonic() + 30
        while transport._loop is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert transport._loop is not None  # started without any request being made
        transport.start(bucket.uuid)  # a second call is a no-op

        async def put() -> None:
            from obstore import put_async

            await put_async(transport.store(bucket.uuid), "k", b"started")

        transport.run(put())
    finally:
        transport.close()
    assert remote_objects(s3, bucket.uuid) == {"k": b"started"}


def test_closing_a_transport_while_it_starts_leaves_no_thread(s3_server: Any) -> None:
    from qbucket._transport import Transport

    before = set(threading.enumerate())
    transport = Transport(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "r")
    transport.start("any-bucket")
    transport.close()
    assert {thread.name for thread in set(threading.enumerate()) - before} == set()


def test_a_second_start_while_the_first_runs_starts_nothing(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # close() joins the start it knows of: a second one running beside it could leave a loop.
    from qbucket._transport import Transport

    release = threading.Event()
    ensure_loop = Transport._ensure_loop

    def slow_ensure_loop(self: Transport) -> Any:
        release.wait(30)
        return ensure_loop(self)

    monkeypatch.setattr(Transport, "_ensure_loop", slow_ensure_loop)
    before = set(threading.enumerate())
    transport = Transport(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "r")
    transport.start("any-bucket")
    transport.start("other-bucket")
    starting = [t for t in set(threading.enumerate()) - before if t.name == "qbucket-start"]
    release.set()
    transport.close()
    assert len(starting) == 1
    assert {thread.name for thread in set(threading.enumerate()) - before} == set()
