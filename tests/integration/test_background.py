"""Background uploads: add_file returns at once, reads see earlier writes, nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket._server import ServerInfo

from .helpers import bucket_exists, make_tree, remote_objects

# SeaweedFS answers KeyTooLongError to a key with a path component over 255 bytes; qbucket's own
# key check allows up to 1024 bytes in all, so such uploads fail on the server, in the background.
TOO_LONG = "n" * 300


def head_status(s3: Any, bucket: str, key: str) -> int:
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"])
    except s3.exceptions.ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def test_add_file_returns_before_the_upload_completes(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    data = os.urandom(24 * 1024 * 1024)  # multipart: the object appears only when complete
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    head_status(s3, bucket.uuid, "warm-up")  # the boto3 client's first request is slow
    bucket.add_file(path, "big.bin")
    assert head_status(s3, bucket.uuid, "big.bin") == 404
    bucket.flush()
    head = s3.head_object(Bucket=bucket.uuid, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert s3.get_object(Bucket=bucket.uuid, Key="big.bin")["Body"].read() == data


def _check_list(bucket: qbucket.Bucket, s3: Any, tmp: Path, data: bytes) -> None:
    assert "w/k" in {s.key for s in bucket.list_files()}
    assert "w/k" in {s.key for s in bucket.directory("w/")}


def _check_get(bucket: qbucket.Bucket, s3: Any, tmp: Path, data: bytes) -> None:
    assert Path(bucket.get_file("w/k", tmp / "got")).read_bytes() == data


def _check_contains(bucket: qbucket.Bucket, s3: Any, tmp: Path, data: bytes) -> None:
    assert "w/k" in bucket


def _check_copy(bucket: qbucket.Bucket, s3: Any, tmp: Path, data: bytes) -> None:
    bucket.copy_file("w/k", "w/copy")
    assert s3.get_object(Bucket=bucket.uuid, Key="w/copy")["Body"].read() == data


def _check_delete(bucket: qbucket.Bucket, s3: Any, tmp: Path, data: bytes) -> None:
    bucket.delete_file("w/k")
    bucket.flush()
    assert "w/k" not in remote_objects(s3, bucket.uuid)


def _check_sync(bucket: qbucket.Bucket, s3: Any, tmp: Path, data: bytes) -> None:
    # The sync of scope "w" must see w/k (and delete it), not race with its upload.
    src = make_tree(tmp / "sync-src", {"only.txt": b"only"})
    bucket.sync_directory(src, remote="w")
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == {"w/only.txt": b"only"}


READS: dict[str, Callable[[qbucket.Bucket, Any, Path, bytes], None]] = {
    "list_files": _check_list,
    "get_file": _check_get,
    "contains": _check_contains,
    "copy_file": _check_copy,
    "delete_file": _check_delete,
    "sync_directory": _check_sync,
}


@pytest.mark.parametrize("operation", sorted(READS))
def test_reads_see_earlier_writes_without_flush(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, operation: str
) -> None:
    data = os.urandom(6 * 1024 * 1024)
    path = tmp_path / "f"
    path.write_bytes(data)
    bucket.add_file(path, "w/k")
    READS[operation](bucket, s3, tmp_path, data)


def test_reads_see_writes_of_file_objects_without_flush(
    bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "f"
    path.write_bytes(data)
    with open(path, "rb") as stream:
        bucket.add_file(stream, "streamed")
    assert Path(bucket.get_file("streamed", tmp_path / "back")).read_bytes() == data


def test_delete_waits_for_earlier_uploads(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i}": os.urandom(200_000) for i in range(20)})
    bucket.add_directory(src, "pending")
    bucket.delete()
    assert not bucket_exists(s3, bucket.uuid)
    bucket.flush()
    assert not bucket_exists(s3, bucket.uuid)  # no upload landed late, re-creating it


def test_last_write_of_a_key_wins(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    expected = {}
    for round_ in range(20):
        first = tmp_path / f"first-{round_}"
        second = tmp_path / f"second-{round_}"
        # The first write is the slower one: an unordered queue would let it land last.
        first.write_bytes(os.urandom(512 * 1024))
        second.write_bytes(b"second %d" % round_)
        bucket.add_file(first, f"pair/{round_}")
        bucket.add_file(second, f"pair/{round_}")
        expected[f"pair/{round_}"] = b"second %d" % round_
    bucket.flush()
    assert remote_objects(s3, bucket.uuid) == expected


def test_last_of_many_writes_of_one_key_wins(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    for round_ in range(20):
        path = tmp_path / f"v{round_}"
        path.write_bytes(os.urandom((20 - round_) * 50_000) + b"version %d" % round_)
        remote = ("one/key", "/one//key", "one//key")[round_ % 3]  # spellings of one key
        if round_ % 2:
            with open(path, "rb") as stream:
                bucket.add_file(stream, remote)
        else:
            bucket.add_file(path, remote)
    bucket.flush()
    objects = remote_objects(s3, bucket.uuid)
    assert set(objects) == {"one/key"}
    assert objects["one/key"] == (tmp_path / "v19").read_bytes()


def test_leaving_with_block_flushes(bucket: qbucket.Bucket, s3: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i}": os.urandom(100_000) for i in range(30)})
    with bucket as entered:
        assert entered is bucket
        for i in range(30):
            bucket.add_file(src / f"f{i}", f"with/f{i}")
    objects = remote_objects(s3, bucket.uuid)
    assert objects == {f"with/f{i}": (src / f"f{i}").read_bytes() for i in range(30)}


def test_leaving_with_block_raises_upload_failures(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(qbucket.BatchError) as info, bucket:
        bucket.add_file(path, f"bad/{TOO_LONG}")
        bucket.add_file(path, "good")
    assert info.value.keys == [f"bad/{TOO_LONG}"]
    assert remote_objects(s3, bucket.uuid) == {"good": b"x"}


def test_flush_raises_one_batch_error_listing_every_failed_key(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    bad = [f"bad/{i}-{TOO_LONG}" for i in range(4)]
    good = [f"good/{i}" for i in range(6)]
    for i in range(6):
        bucket.add_file(path, good[i])
        if i < len(bad):
            bucket.add_file(path, bad[i])
    with pytest.raises(qbucket.BatchError) as info:
        bucket.flush()
    error = info.value
    assert sorted(error.keys) == sorted(bad)
    assert len(error.failures) == len(bad)
    assert all(isinstance(f, qbucket.QBucketError) for f in error.failures)
    assert all(f.bucket == bucket.uuid for f in error.failures)
    message = str(error)
    for key in bad:
        assert key in message
    assert remote_objects(s3, bucket.uuid) == dict.fromkeys(good, b"payload")
    bucket.flush()  # reported once: a second flush is clean
    bucket.update(flush=True)


def test_update_flush_reports_background_failures(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    bucket.add_file(path, f"x/{TOO_LONG}")
    with pytest.raises(qbucket.BatchError) as info:
        bucket.update(flush=True)
    assert info.value.keys == [f"x/{TOO_LONG}"]
    bucket.update(flush=True)


def _run_python(script: str, server: ServerInfo, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        QBUCKET_STORAGE_URL=server.endpoint,
        QBUCKET_ACCESS_KEY=server.access_key,
        QBUCKET_SECRET_KEY=server.secret_key,
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_interpreter_exit_flushes_pending_uploads(
    bucket: qbucket.Bucket, s3: Any, s3_server: ServerInfo, tmp_path: Path
) -> None:
    src = make_tree(
        tmp_path / "src", {f"f{i:02}": os.urandom(64 * 1024) + b"%d" % i for i in range(50)}
    )
    script = """
        import os, sys
        import qbucket

        bucket = qbucket.Bucket(qbucket.Connection(), sys.argv[1], create=False)
        for i in range(50):
            bucket.add_file(os.path.join(sys.argv[2], f"f{i:02}"), f"exit/f{i:02}")
        # no flush, no close: the interpreter exits with the uploads queued
        """
    result = _run_python(script, s3_server, bucket.uuid, str(src))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = {f"exit/f{i:02}": (src / f"f{i:02}").read_bytes() for i in range(50)}
    assert remote_objects(s3, bucket.uuid) == expected


def test_interpreter_exit_flushes_unreferenced_buckets_and_reports_failures(
    bucket: qbucket.Bucket, s3: Any, s3_server: ServerInfo, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:02}": os.urandom(128 * 1024) for i in range(20)})
    script = f"""
        import gc, os, sys
        import qbucket

        def work():
            connection = qbucket.Connection()
            for i in range(20):
                b = qbucket.Bucket(connection, sys.argv[1], create=False)
                b.add_file(os.path.join(sys.argv[2], f"f{{i:02}}"), f"gone/f{{i:02}}")
            b.add_file(os.path.join(sys.argv[2], "f00"), "bad/{TOO_LONG}")

        work()  # every Bucket and the Connection are now unreferenced
        gc.collect()
        """
    result = _run_python(script, s3_server, bucket.uuid, str(src))
    assert result.returncode == 0, result.stderr
    assert f"bad/{TOO_LONG}" in result.stderr
    expected = {f"gone/f{i:02}": (src / f"f{i:02}").read_bytes() for i in range(20)}
    assert remote_objects(s3, bucket.uuid) == expected


def test_reads_do_not_swallow_failures_reported_later_by_flush(
    bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    bucket.add_file(path, f"y/{TOO_LONG}")
    assert bucket.list_files() == []  # waits for the upload, which failed
    with pytest.raises(qbucket.BatchError) as info:
        bucket.flush()
    assert info.value.keys == [f"y/{TOO_LONG}"]
