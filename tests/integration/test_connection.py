"""Connection against a real SeaweedFS server: settings, buckets, clients, secrets, dead servers."""

from __future__ import annotations

import contextlib
import gc
import logging
import secrets
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket import _transfer
from qbucket._server import ServerInfo

from .helpers import bucket_exists, drop_bucket, make_tree, remote_objects, unique_name


def _free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _full_text(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback (causes included) of an error."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


@pytest.fixture
def names(s3: Any) -> Iterator[list[str]]:
    """Bucket names for the test to use; each is dropped afterwards."""
    used: list[str] = []
    yield used
    for name in used:
        drop_bucket(s3, name)


def _round_trip(conn: qbucket.Connection, name: str, tmp_path: Path) -> None:
    """Create a bucket, upload, list and download through ``conn``."""
    bucket = conn.create_bucket(name)
    source = tmp_path / "in.txt"
    source.write_bytes(b"round trip")
    bucket.add_file(str(source), "dir/in.txt")
    bucket.flush()
    assert [s.key for s in bucket.list_files()] == ["dir/in.txt"]
    out = bucket.get_file("dir/in.txt", tmp_path / "out.txt")
    assert Path(out).read_bytes() == b"round trip"
    assert name in [b.name for b in conn.buckets()]


# -- where the settings come from ---------------------------------------------------------------


def test_explicit_arguments(
    s3_server: ServerInfo, names: list[str], tmp_path: Path, s3: Any
) -> None:
    conn = qbucket.Connection(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    assert not conn.embedded
    assert conn.storage_url == s3_server.endpoint
    assert dict(conn.settings.sources) == {
        "storage_url": "argument",
        "access_key": "argument",
        "secret_key": "argument",
        "region": "default",
    }
    names.append(unique_name("args"))
    _round_trip(conn, names[0], tmp_path)
    assert remote_objects(s3, names[0]) == {"dir/in.txt": b"round trip"}
    conn.close()


def test_qbucket_environment_variables(
    s3_server: ServerInfo, names: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QBUCKET_STORAGE_URL", s3_server.endpoint)
    monkeypatch.setenv("QBUCKET_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("QBUCKET_SECRET_KEY", s3_server.secret_key)
    with qbucket.Connection() as conn:
        assert not conn.embedded
        assert conn.settings.storage_url == s3_server.endpoint
        assert dict(conn.settings.sources) == {
            "storage_url": "env QBUCKET_STORAGE_URL",
            "access_key": "env QBUCKET_ACCESS_KEY",
            "secret_key": "env QBUCKET_SECRET_KEY",
            "region": "default",
        }
        names.append(unique_name("qenv"))
        _round_trip(conn, names[0], tmp_path)


def test_aws_environment_variables(
    s3_server: ServerInfo, names: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with qbucket.Connection() as conn:
        assert not conn.embedded
        assert conn.settings.storage_url == s3_server.endpoint
        assert dict(conn.settings.sources) == {
            "storage_url": "env AWS_ENDPOINT_URL",
            "access_key": "env AWS_ACCESS_KEY_ID",
            "secret_key": "env AWS_SECRET_ACCESS_KEY",
            "region": "default",
        }
        names.append(unique_name("awsenv"))
        _round_trip(conn, names[0], tmp_path)


def test_toml_config_file(s3_server: ServerInfo, names: list[str], tmp_path: Path) -> None:
    config = tmp_path / "qbucket.toml"
    config.write_text(
        f'storage_url = "{s3_server.endpoint}"\n'
        f'access_key = "{s3_server.access_key}"\n'
        f'secret_key = "{s3_server.secret_key}"\n'
    )
    with qbucket.Connection(fileconf=config) as conn:
        assert not conn.embedded
        assert conn.settings.storage_url == s3_server.endpoint
        assert conn.settings.config_path == config
        label = f"config file {config}"
        assert dict(conn.settings.sources) == {
            "storage_url": label,
            "access_key": label,
            "secret_key": label,
            "region": "default",
        }
        names.append(unique_name("toml"))
        _round_trip(conn, names[0], tmp_path)


def test_toml_profile_and_mapping(
    s3_server: ServerInfo, names: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "profiles.toml"
    config.write_text(
        f'storage_url = "http://127.0.0.1:{_free_port()}"\n'
        'access_key = "top-level"\n'
        'secret_key = "top-level"\n'
        "[profiles.seaweed]\n"
        f'storage_url = "{s3_server.endpoint}"\n'
        f'access_key = "{s3_server.access_key}"\n'
        f'secret_key = "{s3_server.secret_key}"\n'
        'region = "us-east-1"\n'
    )
    with qbucket.Connection(fileconf=config, profile="seaweed") as conn:
        assert conn.settings.storage_url == s3_server.endpoint
        assert conn.settings.sources["region"] == f"config file {config}"
        names.append(unique_name("profile"))
        conn.create_bucket(names[-1])
    monkeypatch.setenv("QBUCKET_PROFILE", "seaweed")
    with qbucket.Connection(fileconf=config) as conn:
        assert names[-1] in [b.name for b in conn.buckets()]
    monkeypatch.delenv("QBUCKET_PROFILE")
    mapping = {
        "storage_url": s3_server.endpoint,
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
    }
    with qbucket.Connection(fileconf=mapping) as conn:
        assert conn.settings.sources["storage_url"] == "fileconf mapping"
        assert names[-1] in [b.name for b in conn.buckets()]


def test_each_setting_taken_from_the_first_place_that_has_it(
    s3_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    config = tmp_path / "mixed.toml"
    config.write_text(
        f'storage_url = "{dead}"\n'
        f'access_key = "{s3_server.access_key}"\n'
        'secret_key = "wrong-from-file"\n'
    )
    monkeypatch.setenv("QBUCKET_SECRET_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-from-aws-env")
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    with qbucket.Connection(s3_server.endpoint, fileconf=config) as conn:
        assert dict(conn.settings.sources) == {
            "storage_url": "argument",
            "access_key": f"config file {config}",
            "secret_key": "env QBUCKET_SECRET_KEY",
            "region": "default",
        }
        conn.buckets()  # the server accepts the mix: each setting came from the right place


# -- buckets ------------------------------------------------------------------------------------


def test_buckets_lists_bucket_objects(
    connection: qbucket.Connection, names: list[str], s3: Any
) -> None:
    names.extend([unique_name("list"), unique_name("list")])
    for name in names:
        s3.create_bucket(Bucket=name)
    listed = connection.buckets()
    assert all(isinstance(b, qbucket.Bucket) for b in listed)
    assert set(names) <= {b.name for b in listed}
    assert all(b.connection is connection for b in listed)


def test_create_bucket_creates_and_is_idempotent(
    connection: qbucket.Connection, names: list[str], s3: Any, tmp_path: Path
) -> None:
    name = unique_name("create")
    names.append(name)
    assert not bucket_exists(s3, name)
    bucket = connection.create_bucket(name)
    assert isinstance(bucket, qbucket.Bucket) and bucket.name == name
    assert bucket_exists(s3, name)
    s3.put_object(Bucket=name, Key="kept", Body=b"kept")
    again = connection.create_bucket(name)  # an existing bucket of ours: no error, no wipe
    assert again == bucket
    assert remote_objects(s3, name) == {"kept": b"kept"}


def test_retrieve_missing_bucket_raises_naming_it(connection: qbucket.Connection, s3: Any) -> None:
    name = unique_name("missing")
    with pytest.raises(qbucket.MissingBucketException) as info:
        connection.retrieve_bucket(name)
    assert isinstance(info.value, LookupError)
    assert name in str(info.value)
    assert info.value.bucket == name
    assert not bucket_exists(s3, name)


def test_retrieve_existing_bucket(
    connection: qbucket.Connection, names: list[str], s3: Any
) -> None:
    name = unique_name("exists")
    names.append(name)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    bucket = connection.retrieve_bucket(name)
    assert [s.key for s in bucket.list_files()] == ["k"]


def test_retrieve_or_create_bucket_creates(
    connection: qbucket.Connection, names: list[str], s3: Any
) -> None:
    name = unique_name("roc")
    names.append(name)
    assert not bucket_exists(s3, name)
    bucket = connection.retrieve_or_create_bucket(name)
    assert bucket.name == name
    assert bucket_exists(s3, name)
    assert connection.retrieve_or_create_bucket(name) == bucket


@pytest.mark.parametrize("bad_name", ["ab", "Upper", "a_b"])
def test_invalid_bucket_names_fail_before_any_request(bad_name: str) -> None:
    # The endpoint is a listening socket that nobody serves: any request would show up in its
    # accept queue (and would then hang or time out instead of failing at once).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        conn = qbucket.Connection(f"http://127.0.0.1:{port}", "access", "secret")
        calls: list[Callable[[], object]] = [
            lambda: conn.create_bucket(bad_name),
            lambda: conn.retrieve_bucket(bad_name),
            lambda: conn.retrieve_or_create_bucket(bad_name),
            lambda: qbucket.Bucket(conn, bad_name, create=False),
            lambda: qbucket.Bucket(conn, bad_name),
        ]
        for call in calls:
            with pytest.raises(qbucket.InvalidBucketNameError) as info:
                call()
            assert isinstance(info.value, ValueError)
            assert bad_name in str(info.value)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
        conn.close()


# -- the boto3 escape hatches -------------------------------------------------------------------


def _assert_client_config(client: Any, endpoint: str) -> None:
    config = client.meta.config
    assert client.meta.endpoint_url == endpoint
    assert config.s3["addressing_style"] == "path"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


def test_s3client_escape_hatch(
    connection: qbucket.Connection, s3_server: ServerInfo, names: list[str], s3: Any
) -> None:
    name = unique_name("client")
    names.append(name)
    connection.create_bucket(name)
    client = connection.s3client
    _assert_client_config(client, s3_server.endpoint)
    assert name in [b["Name"] for b in client.list_buckets()["Buckets"]]
    client.put_object(Bucket=name, Key="via/client", Body=b"from the client")
    assert client.get_object(Bucket=name, Key="via/client")["Body"].read() == b"from the client"
    assert remote_objects(s3, name) == {"via/client": b"from the client"}
    # and qbucket sees what the escape hatch wrote
    assert [s.key for s in connection.retrieve_bucket(name).list_files()] == ["via/client"]


def test_s3resource_escape_hatch(
    connection: qbucket.Connection, s3_server: ServerInfo, names: list[str], s3: Any
) -> None:
    name = unique_name("resource")
    names.append(name)
    connection.create_bucket(name)
    resource = connection.s3resource
    _assert_client_config(resource.meta.client, s3_server.endpoint)
    assert name in [b.name for b in resource.buckets.all()]
    resource.Bucket(name).put_object(Key="via/resource", Body=b"from the resource")
    body = resource.Object(name, "via/resource").get()["Body"].read()
    assert body == b"from the resource"
    assert remote_objects(s3, name) == {"via/resource": b"from the resource"}


# -- context manager ----------------------------------------------------------------------------


def test_context_manager_flushes_background_uploads(
    s3_server: ServerInfo, names: list[str], s3: Any, tmp_path: Path
) -> None:
    name = unique_name("ctx")
    names.append(name)
    files = {f"f{i:03}.bin": secrets.token_bytes(2048) for i in range(60)}
    make_tree(tmp_path / "src", files)
    with qbucket.Connection(s3_server.endpoint, s3_server.access_key, s3_server.secret_key) as conn:
        first = conn.create_bucket(name)
        for relative in list(files)[:30]:
            first.add_file(str(tmp_path / "src" / relative), relative)
        second = conn.retrieve_bucket(name)  # another Bucket object on the same connection
        for relative in list(files)[30:]:
            second.add_file(str(tmp_path / "src" / relative), relative)
        # no flush: leaving the block must do it
    assert remote_objects(s3, name) == files


def _connect(server: ServerInfo) -> qbucket.Connection:
    return qbucket.Connection(server.endpoint, server.access_key, server.secret_key)


def _random_files(count: int, root: Path, **extra: bytes) -> dict[str, bytes]:
    """``count`` files of 32 KiB written below ``root`` (with ``extra`` ones); returns the random
    ones, name -> content."""
    files = {f"f{i:03}.bin": secrets.token_bytes(32 * 1024) for i in range(count)}
    make_tree(root, {**files, **extra})
    return files


def test_close_waits_for_each_of_two_equal_bucket_objects(
    s3_server: ServerInfo, names: list[str], s3: Any, tmp_path: Path
) -> None:
    # Two Bucket objects for one bucket compare equal; each still has its own uploads to wait for.
    name = unique_name("twin")
    names.append(name)
    files = _random_files(200, tmp_path / "src")
    with _connect(s3_server) as conn:
        first = conn.create_bucket(name)
        second = conn.retrieve_bucket(name)
        assert first == second
        for relative in files:  # all through the second object; the first has nothing queued
            second.add_file(str(tmp_path / "src" / relative), relative)
    assert remote_objects(s3, name) == files


def test_close_waits_for_uploads_of_bucket_objects_already_dropped(
    s3_server: ServerInfo, names: list[str], s3: Any, tmp_path: Path
) -> None:
    name = unique_name("dropped")
    names.append(name)
    files = _random_files(200, tmp_path / "src")
    with _connect(s3_server) as conn:
        conn.create_bucket(name)
        for relative in files:  # a new Bucket object per file, dropped at once
            conn.retrieve_bucket(name).add_file(str(tmp_path / "src" / relative), relative)
        gc.collect()
    assert remote_objects(s3, name) == files


def test_close_waits_for_every_bucket_when_uploads_of_some_fail(
    s3_server: ServerInfo,
    names: list[str],
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_put_file = _transfer.put_file

    async def failing_for_boom(transport: Any, bucket: str, key: str, path: str) -> Any:
        if key.endswith("boom"):
            raise qbucket.TransferError(f"injected failure of {key}", bucket=bucket, key=key)
        return await real_put_file(transport, bucket, key, path)

    monkeypatch.setattr(_transfer, "put_file", failing_for_boom)
    files = _random_files(100, tmp_path / "src", boom=b"never sent")
    buckets = [unique_name("one"), unique_name("two")]
    names.extend(buckets)
    with pytest.raises(qbucket.BatchError) as caught, _connect(s3_server) as conn:
        for name in buckets:  # each queue fails first, then has everything else to send
            bucket = conn.create_bucket(name)
            for relative in ["boom", *files]:
                bucket.add_file(str(tmp_path / "src" / relative), relative)
    assert sorted(f.bucket for f in caught.value.failures) == sorted(buckets)
    assert caught.value.keys == ["boom", "boom"]
    for name in buckets:
        assert remote_objects(s3, name) == files


# -- secrets ------------------------------------------------------------------------------------


@pytest.fixture
def wrong_secret() -> str:
    return "WrongSecret" + secrets.token_hex(16)


def test_secret_not_in_reprs(
    s3_server: ServerInfo, connection: qbucket.Connection, names: list[str]
) -> None:
    name = unique_name("repr")
    names.append(name)
    bucket = connection.create_bucket(name)
    secret = s3_server.secret_key
    for text in (
        repr(connection),
        str(connection),
        repr(bucket),
        str(bucket),
        repr(connection.settings),
        str(connection.settings),
        repr(connection.transport),
    ):
        assert secret not in text
    assert s3_server.endpoint in repr(connection)
    assert name in repr(bucket)


def test_wrong_secret_errors_never_show_it(
    s3_server: ServerInfo,
    names: list[str],
    s3: Any,
    tmp_path: Path,
    wrong_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = unique_name("auth")
    names.append(name)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")
    caplog.set_level(logging.DEBUG, logger="qbucket")

    conn = qbucket.Connection(s3_server.endpoint, s3_server.access_key, wrong_secret)
    bucket = qbucket.Bucket(conn, name, create=False)
    assert wrong_secret not in repr(conn)
    assert wrong_secret not in repr(bucket)
    assert wrong_secret not in repr(conn.settings)

    def add_and_flush() -> None:
        bucket.add_file(str(src / "a.txt"), "a.txt")
        bucket.flush()

    operations: dict[str, Callable[[], object]] = {
        "list_files": bucket.list_files,
        "add_file+flush": add_and_flush,
        "get_file": lambda: bucket.get_file("k", tmp_path / "out"),
        "sync_directory": lambda: bucket.sync_directory(src),
        "create_bucket": lambda: conn.create_bucket(unique_name("auth-new")),
        "buckets": conn.buckets,
    }
    for label, operation in operations.items():
        with pytest.raises(qbucket.UnauthorizedException) as info:
            operation()
        error = info.value
        assert isinstance(error, PermissionError), label
        assert type(error).__module__.startswith("qbucket"), label
        assert wrong_secret not in _full_text(error), label

    assert caplog.records, "DEBUG logging captured nothing"
    assert wrong_secret not in caplog.text
    for record in caplog.records:
        assert wrong_secret not in record.getMessage()
        assert wrong_secret not in repr(record.args)
    # nothing was written with the wrong key
    assert remote_objects(s3, name) == {"k": b"v"}
    assert not (tmp_path / "out").exists()
    with contextlib.suppress(qbucket.QBucketError):
        conn.close()


def test_wrong_access_key_is_unauthorized(s3_server: ServerInfo, bucket: qbucket.Bucket) -> None:
    conn = qbucket.Connection(s3_server.endpoint, "NoSuchAccessKey", s3_server.secret_key)
    for operation in (qbucket.Bucket(conn, bucket.name, create=False).list_files, conn.buckets):
        with pytest.raises(qbucket.UnauthorizedException) as info:
            operation()
        assert s3_server.secret_key not in _full_text(info.value)
    conn.close()


# -- a dead server ------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_dead_server_raises_storage_unavailable(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"
    name = unique_name("dead")
    conn = qbucket.Connection(endpoint, "access", "secret")
    bucket = qbucket.Bucket(conn, name, create=False)
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    destination = tmp_path / "out" / "k.txt"
    operations: dict[str, Callable[[], object]] = {
        "list_files": bucket.list_files,
        "get_file": lambda: bucket.get_file("k.txt", destination),
        "sync_directory": lambda: bucket.sync_directory(src),
        "buckets": conn.buckets,
    }
    for label, operation in operations.items():
        with pytest.raises(qbucket.BucketStorageUnavailableException) as info:
            operation()
        error = info.value
        assert isinstance(error, ConnectionError), label
        assert type(error).__module__.startswith("qbucket"), label
        message = str(error)
        assert name in message or endpoint in message, (label, message)
    assert not destination.exists()
    with contextlib.suppress(qbucket.QBucketError):
        conn.close()


# -- inherited AWS_* variables ------------------------------------------------------------------


def test_inherited_session_token_is_ignored(
    s3_server: ServerInfo,
    names: list[str],
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "bogus")
    name = unique_name("token")
    names.append(name)
    with qbucket.Connection(s3_server.endpoint, s3_server.access_key, s3_server.secret_key) as conn:
        _round_trip(conn, name, tmp_path)  # obstore (objects) and boto3 (buckets) paths
        src = make_tree(tmp_path / "src", {"s.txt": b"synced"})
        summary = conn.retrieve_bucket(name).sync_directory(src, remote="sync")
        assert summary.uploaded == 1
        assert conn.s3client.list_objects_v2(Bucket=name)["KeyCount"] == 2
    assert remote_objects(s3, name) == {"dir/in.txt": b"round trip", "sync/s.txt": b"synced"}
