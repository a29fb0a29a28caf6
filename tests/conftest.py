"""Shared fixtures: every test runs with a private QBUCKET_HOME and no inherited S3 settings;
tests that need a server get a real SeaweedFS on free loopback ports.

One server per test session, started through qbucket's own EmbeddedServer with SeaweedFS's stock
behaviour (buckets auto-created on PUT), so the tests also prove that qbucket tells a missing bucket
apart where the server would not. It starts only when a test asks for it (unit tests never do).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket import _sync
from qbucket._server import EmbeddedServer, ServerInfo

from .integration.helpers import drop_bucket, s3_client, unique_name

_INHERITED_PREFIXES = ("AWS_", "QBUCKET_")


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """No test sees the user's config, data dir or S3 variables."""
    for name in list(os.environ):
        if name.startswith(_INHERITED_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("qbucket-home")
    monkeypatch.setenv("QBUCKET_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    server = EmbeddedServer(tmp_path_factory.mktemp("seaweedfs"), auto_create_bucket=True)
    info = server.ensure_running(timeout=120)
    yield info
    server.stop()


@pytest.fixture
def connection(s3_server: ServerInfo) -> Iterator[qbucket.Connection]:
    conn = qbucket.Connection(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    yield conn
    with contextlib.suppress(qbucket.QBucketError):
        conn.close()


@pytest.fixture
def s3(s3_server: ServerInfo) -> Any:
    """A plain boto3 client, to check what landed on the server independently of qbucket."""
    return s3_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)


@pytest.fixture
def bucket_name() -> str:
    return unique_name()


@pytest.fixture
def bucket(connection: qbucket.Connection, bucket_name: str, s3: Any) -> Iterator[qbucket.Bucket]:
    """A fresh bucket, dropped (with boto3) after the test."""
    b = qbucket.Bucket(connection, bucket_name, create=True)
    yield b
    with contextlib.suppress(qbucket.QBucketError):
        b.flush()
    drop_bucket(s3, bucket_name)


@pytest.fixture(params=["threads", "loop"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each sync's uploads and copies sent on plain threads, as those of small files are, or
    on the transfer loop, as files sent in parts are (see qbucket._sync.on_threads)."""
    if request.param == "loop":
        monkeypatch.setattr(_sync, "SYNC_THREADS", 0)
    return str(request.param)
