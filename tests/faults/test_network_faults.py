"""Network and server faults between qbucket and SeaweedFS (issue 6, cases 1-3): transient faults
are retried and the operation succeeds; persistent ones end in a clear error, in bounded time,
with no partial file under a final name."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket import _listing, _ranged, _transfer, _transport
from qbucket._server import ServerInfo

from .proxy import FaultProxy, Rule

# Short timeouts, so that a server that never answers costs seconds, not minutes.
STALL_S = 2


@pytest.fixture
def proxy(s3_server: ServerInfo) -> Iterator[FaultProxy]:
    port = int(s3_server.endpoint.rsplit(":", 1)[1])
    with FaultProxy(port) as running:
        yield running


@pytest.fixture
def proxied(
    proxy: FaultProxy,
    s3_server: ServerInfo,
    bucket: qbucket.Bucket,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[qbucket.Bucket]:
    """The test's bucket, seen through the proxy."""
    monkeypatch.setattr(_transport, "READ_STALL_TIMEOUT_S", STALL_S)
    monkeypatch.setattr(_listing, "TIMEOUT_S", STALL_S)
    conn = qbucket.Connection(proxy.endpoint, s3_server.access_key, s3_server.secret_key)
    yield qbucket.Bucket(conn, bucket.uuid, create=False)
    conn.close()


def temp_leftovers(root: Path) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names if ".qbucket-part-" in name]


TRANSIENT = [
    Rule("reset"),
    Rule("status", status=503),
    Rule("status", status=500),
    Rule("status", status=400),  # RequestTimeout
    Rule("cut_head"),
]
IDS = ["reset", "503-slowdown", "500", "request-timeout", "cut-headers"]


def _twice(rule: Rule, method: str, target: str = "") -> Rule:
    return Rule(rule.kind, method=method, target=target, times=2, status=rule.status)


@pytest.mark.parametrize("fault", TRANSIENT, ids=IDS)
def test_upload_retries_transient_faults(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path, fault: Rule
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"payload" * 100)
    proxy.add(_twice(fault, "PUT", "/f.bin"))
    proxied.add_file(str(path), "f.bin")
    proxied.flush()
    assert proxy.fired() == 2
    body = s3.get_object(Bucket=proxied.uuid, Key="f.bin")["Body"].read()
    assert body == b"payload" * 100


@pytest.mark.parametrize("fault", TRANSIENT, ids=IDS)
def test_download_retries_transient_faults(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path, fault: Rule
) -> None:
    s3.put_object(Bucket=proxied.uuid, Key="g.bin", Body=b"data" * 1000)
    proxy.add(_twice(fault, "GET", "/g.bin"))
    target = tmp_path / "g.bin"
    proxied.get_file("g.bin", str(target))
    assert proxy.fired() == 2
    assert target.read_bytes() == b"data" * 1000


@pytest.mark.parametrize("fault", TRANSIENT, ids=IDS)
def test_listing_retries_transient_faults(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, fault: Rule
) -> None:
    s3.put_object(Bucket=proxied.uuid, Key="a", Body=b"1")
    proxy.add(_twice(fault, "GET", "list-type=2"))
    assert [summary.key for summary in proxied.list_files()] == ["a"]
    assert proxy.fired() == 2


def test_sync_retries_transient_faults_on_every_kind_of_request(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(30):
        (tree / f"f{i:02d}").write_bytes(f"content {i}".encode() * 10)
    s3.put_object(Bucket=proxied.uuid, Key="extra", Body=b"to delete")
    proxy.add(Rule("status", method="PUT", times=3, status=503))
    proxy.add(Rule("reset", method="PUT", times=3))
    proxy.add(Rule("status", method="GET", target="list-type=2", times=1, status=500))
    proxy.add(Rule("reset", method="POST", target="delete", times=1))
    proxied.sync_directory(str(tree))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=proxied.uuid).get("Contents", [])}
    assert keys == {f"f{i:02d}" for i in range(30)}
    assert proxy.fired() == 8


def test_persistent_503_is_a_clear_error_after_the_retries(
    proxied: qbucket.Bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    proxy.add(Rule("status", method="PUT", times=None, status=503))
    started = time.monotonic()
    proxied.add_file(str(path), "f.bin")
    with pytest.raises(qbucket.BatchError) as caught:
        proxied.flush()
    (failure,) = caught.value.failures
    assert isinstance(failure, qbucket.QBucketError)
    assert failure.key == "f.bin"
    assert "f.bin" in str(failure) and proxied.uuid in str(failure)
    assert proxy.fired() > 1  # retried before giving up
    assert time.monotonic() - started < 90


def test_persistent_503_on_download_and_listing(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=proxied.uuid, Key="g", Body=b"1")
    proxy.add(Rule("status", method="GET", times=None, status=503))
    with pytest.raises(qbucket.QBucketError) as listing:
        proxied.list_files()
    assert proxied.uuid in str(listing.value)
    with pytest.raises(qbucket.QBucketError) as download:
        proxied.get_file("g", str(tmp_path / "g"))
    assert "g" in str(download.value)
    assert not (tmp_path / "g").exists()
    assert temp_leftovers(tmp_path) == []


# -- 2. a download cut in the middle of its body ------------------------------------------------


@pytest.mark.parametrize("size", [300_000, 12 << 20], ids=["small", "streamed"])
def test_download_cut_mid_body_is_retried_and_complete(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    s3.put_object(Bucket=proxied.uuid, Key="cut.bin", Body=data)
    proxy.add(Rule("cut_body", method="GET", target="/cut.bin", times=1, after=size // 3))
    target = tmp_path / "cut.bin"
    proxied.get_file("cut.bin", str(target))
    assert proxy.fired("cut_body") == 1
    assert target.read_bytes() == data
    assert temp_leftovers(tmp_path) == []


def test_download_always_cut_leaves_no_file(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=proxied.uuid, Key="cut.bin", Body=b"z" * 100_000)
    (tmp_path / "out").mkdir()
    old = tmp_path / "out" / "cut.bin"
    old.write_bytes(b"previous version")
    proxy.add(Rule("cut_body", method="GET", target="/cut.bin", times=None, after=5000))
    with pytest.raises(qbucket.QBucketError) as caught:
        proxied.get_all_files(str(tmp_path / "out"))
    assert "cut.bin" in str(caught.value) or any(
        "cut.bin" in str(f) for f in getattr(caught.value, "failures", [])
    )
    assert old.read_bytes() == b"previous version"  # never replaced by a partial file
    assert temp_leftovers(tmp_path) == []


def _multipart_object(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> bytes:
    """A 12 MiB object stored in parts (no MD5 ETag), which downloads fetch in 2 MiB ranges."""
    monkeypatch.setattr(_transfer, "SINGLE_PUT_LIMIT", 6 << 20)
    monkeypatch.setattr(_ranged, "PARALLEL_THRESHOLD", 6 << 20)
    monkeypatch.setattr(_ranged, "PART", 2 << 20)
    data = os.urandom(12 << 20)
    (tmp_path / "src.bin").write_bytes(data)
    bucket.add_file(str(tmp_path / "src.bin"), "ranged.bin")
    bucket.flush()
    return data


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_ranged_download_cut_once_is_retried_and_complete(
    proxied: qbucket.Bucket,
    proxy: FaultProxy,
    bucket: qbucket.Bucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _multipart_object(bucket, tmp_path, monkeypatch)
    proxy.add(Rule("cut_body", method="GET", target="/ranged.bin", times=1, after=300_000))
    out = tmp_path / "out"
    proxied.get_all_files(str(out))
    assert proxy.fired("cut_body") == 1
    assert (out / "ranged.bin").read_bytes() == data
    assert temp_leftovers(out) == []


def test_ranged_download_always_cut_leaves_no_file_and_no_descriptor(
    proxied: qbucket.Bucket,
    proxy: FaultProxy,
    bucket: qbucket.Bucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _multipart_object(bucket, tmp_path, monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (out / "ranged.bin").write_bytes(b"previous version")
    # The connection's own descriptors (the transfer loop's among them: a listing does not
    # start it) are open before the count.
    proxied.list_files()
    proxied._transport.run(asyncio.sleep(0))
    before = _open_descriptors()
    proxy.add(Rule("cut_body", method="GET", target="/ranged.bin", times=None, after=300_000))
    with pytest.raises(qbucket.BatchError) as caught:
        proxied.get_all_files(str(out))
    assert caught.value.keys == ["ranged.bin"]
    assert (out / "ranged.bin").read_bytes() == b"previous version"
    assert temp_leftovers(out) == []
    # The ranges still running when the first one failed stop at their next chunk, and the
    # last one out closes the temporary file's descriptor.
    deadline = time.monotonic() + 10
    while _open_descriptors() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_descriptors() <= before


# -- 3. a server that never answers ---------------------------------------------------------------


def test_server_that_hangs_once_is_retried(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=proxied.uuid, Key="h", Body=b"hello")
    proxy.add(Rule("hang", method="GET", target="list-type=2", times=1))
    proxy.add(Rule("hang", method="GET", target="/h", times=1))
    assert [s.key for s in proxied.list_files()] == ["h"]
    proxied.get_file("h", str(tmp_path / "h"))
    assert (tmp_path / "h").read_bytes() == b"hello"
    assert proxy.fired("hang") == 2


def test_server_that_never_answers_is_a_clear_error_not_a_hang(
    proxied: qbucket.Bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.add(Rule("hang", times=None))
    started = time.monotonic()
    with pytest.raises(qbucket.BucketStorageUnavailableException) as caught:
        proxied.list_files()
    assert proxied.uuid in str(caught.value)
    assert time.monotonic() - started < 120


def test_sync_with_one_upload_failing_for_good_deletes_nothing(
    proxied: qbucket.Bucket, proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("a", "b", "doomed"):
        (tree / name).write_bytes(name.encode() * 10)
    s3.put_object(Bucket=proxied.uuid, Key="extra", Body=b"must survive a failed sync")
    proxy.add(Rule("status", method="PUT", target="/doomed", times=None, status=503))
    with pytest.raises(qbucket.BatchError) as caught:
        proxied.sync_directory(str(tree))
    assert caught.value.keys == ["doomed"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=proxied.uuid).get("Contents", [])}
    assert keys == {"a", "b", "extra"}  # the others sent, the extra kept
