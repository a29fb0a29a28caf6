"""The server killed in the middle of a sync and of background uploads (issue 6, case 4): the call
raises, nothing under the prefix is deleted, every failed upload is reported, and the next sync
after a restart finishes the job."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket import _transport
from qbucket._server import EmbeddedServer, ServerInfo

from ..integration.helpers import make_tree, s3_client

FILES = 2000


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A server of this test's own (the session's must survive), killed and restarted."""
    server = EmbeddedServer(tmp_path_factory.mktemp("killed"), auto_create_bucket=False)
    yield server
    with contextlib.suppress(Exception):
        server.stop()


def _client(info: ServerInfo) -> Any:
    return s3_client(info.endpoint, info.access_key, info.secret_key)


def _keys(s3: Any, bucket: str) -> set[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return {
        o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])
    }


def _kill_when(s3: Any, bucket: str, info: ServerInfo, at_least: int) -> threading.Thread:
    """SIGKILL the server once ``at_least`` objects are in ``bucket`` (polled)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if s3.list_objects_v2(Bucket=bucket, MaxKeys=1000).get("KeyCount", 0) >= at_least:
                    break
            time.sleep(0.05)
        os.kill(info.pid, signal.SIGKILL)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_server_killed_mid_sync_then_restarted(
    own_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transport, "RETRY_WINDOW_S", 5)  # a dead server: fail in seconds
    info = own_server.ensure_running(timeout=120)
    s3 = _client(info)
    s3.create_bucket(Bucket="victim")
    s3.put_object(Bucket="victim", Key="run/extra-1", Body=b"an extra a full sync deletes")
    tree = make_tree(
        tmp_path / "tree", {f"d{i % 20:02d}/f{i:04d}": f"file {i}".encode() for i in range(FILES)}
    )
    killer = _kill_when(s3, "victim", info, at_least=200)
    conn = qbucket.Connection(info.endpoint, info.access_key, info.secret_key)
    with pytest.raises(qbucket.QBucketError):
        qbucket.Bucket(conn, "victim", create=False).sync_directory(str(tree), remote="run")
    killer.join()
    conn.close()

    info = own_server.ensure_running(timeout=120)  # same data directory, maybe new ports
    s3 = _client(info)
    keys = _keys(s3, "victim")
    assert "run/extra-1" in keys  # the failed sync deleted nothing
    assert len(keys) < FILES + 1  # it was indeed cut short

    with qbucket.Connection(info.endpoint, info.access_key, info.secret_key) as conn:
        summary = qbucket.Bucket(conn, "victim", create=False).sync_directory(
            str(tree), remote="run"
        )
    assert summary.deleted == 1
    assert summary.uploaded + summary.unchanged == FILES
    remote = _keys(s3, "victim")
    assert remote == {f"run/d{i % 20:02d}/f{i:04d}" for i in range(FILES)}
    some = s3.get_object(Bucket="victim", Key="run/d07/f1987")["Body"].read()
    assert some == b"file 1987"


def test_server_killed_under_background_uploads_flush_lists_every_failure(
    own_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transport, "RETRY_WINDOW_S", 5)
    info = own_server.ensure_running(timeout=120)
    s3 = _client(info)
    s3.create_bucket(Bucket="background")
    files = make_tree(tmp_path / "bg", {f"f{i:04d}": b"x" * 100 for i in range(600)})
    killer = _kill_when(s3, "background", info, at_least=50)
    conn = qbucket.Connection(info.endpoint, info.access_key, info.secret_key)
    bucket = qbucket.Bucket(conn, "background", create=False)
    for i in range(600):
        bucket.add_file(str(files / f"f{i:04d}"), f"f{i:04d}")
    with pytest.raises(qbucket.BatchError) as caught:
        bucket.flush()
    killer.join()
    failed = set(caught.value.keys)
    assert failed, "no upload failed: the server was killed too late"

    info = own_server.ensure_running(timeout=120)
    landed = _keys(_client(info), "background")
    # Every key is either on the server or named by flush(): no upload is silently lost.
    assert landed | failed == {f"f{i:04d}" for i in range(600)}
    with contextlib.suppress(qbucket.QBucketError):
        conn.close()
