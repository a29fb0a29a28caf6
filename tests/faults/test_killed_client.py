"""qbucket itself SIGKILLed mid-download and mid-upload (issue 6, case 6): no file or object under
its final name is truncated, leftover temporaries are ignored by the next runs, and the next
sync finishes the job."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import qbucket
from qbucket._scan import is_download_temporary
from qbucket._server import ServerInfo

from ..integration.helpers import make_tree, remote_objects

DOWNLOAD_ALL = """
import sys, qbucket
endpoint, access, secret, bucket, out = sys.argv[1:]
with qbucket.Connection(endpoint, access, secret, concurrency=4) as conn:
    qbucket.Bucket(conn, bucket, create=False).get_all_files(out)
"""

SYNC_UP = """
import sys, qbucket
endpoint, access, secret, bucket, tree = sys.argv[1:]
with qbucket.Connection(endpoint, access, secret) as conn:
    qbucket.Bucket(conn, bucket, create=False).sync_directory(tree)
"""


def _start(script: str, server: ServerInfo, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            server.endpoint,
            server.access_key,
            server.secret_key,
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_when(process: subprocess.Popen[bytes], ready: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not ready():
        time.sleep(0.01)
    assert process.poll() is None, "the work ended before it could be killed: make it bigger"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _final_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not is_download_temporary(path.name)
    }


def test_killed_mid_download(
    s3_server: ServerInfo, bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    # 12 MiB objects are streamed to their temporaries (not written in one go), so the kill
    # leaves some behind, as a real interruption would.
    objects = {f"d{i % 4}/f{i:03d}": os.urandom(12 << 20) for i in range(16)}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=data)
    out = tmp_path / "out"
    process = _start(DOWNLOAD_ALL, s3_server, bucket.uuid, str(out))

    def some_written() -> bool:  # and some in flight, so that the kill leaves temporaries
        names = [p.name for p in out.rglob("*") if p.is_file()] if out.exists() else []
        temporaries = sum(is_download_temporary(name) for name in names)
        return len(names) - temporaries >= 3 and temporaries >= 2

    _kill_when(process, some_written)

    got = _final_files(out)
    assert 0 < len(got) < len(objects)
    leftovers = [p for p in out.rglob("*") if is_download_temporary(p.name)]
    assert leftovers, "the kill left no temporary file: the test proves nothing"
    for name, data in got.items():
        assert data == objects[name], f"{name} is under its final name but incomplete"

    # The next run finishes; leftover temporaries are neither files of the tree nor uploaded.
    bucket.sync_to_directory(str(out))
    assert _final_files(out) == objects
    bucket.sync_directory(str(out), remote="mirror")
    mirrored = [s.key for s in bucket.directory("mirror/")]
    assert sorted(mirrored) == sorted(f"mirror/{key}" for key in objects)


def test_killed_mid_upload(
    s3_server: ServerInfo, bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    files = {f"d{i % 20:02d}/f{i:04d}": os.urandom(2048) for i in range(2000)}
    tree = make_tree(tmp_path / "tree", files)

    def some_uploaded() -> bool:
        return int(s3.list_objects_v2(Bucket=bucket.uuid).get("KeyCount", 0)) >= 100

    process = _start(SYNC_UP, s3_server, bucket.uuid, str(tree))
    _kill_when(process, some_uploaded)

    listing = {
        o["Key"]: o["ETag"].strip('"')
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.uuid)
        for o in page.get("Contents", [])
    }
    assert 0 < len(listing) < len(files)
    for key, etag in listing.items():  # whatever landed is whole
        assert etag == hashlib.md5(files[key]).hexdigest(), key

    summary = bucket.sync_directory(str(tree))
    assert summary.uploaded + summary.unchanged == len(files)
    assert remote_objects(s3, bucket.uuid) == files
