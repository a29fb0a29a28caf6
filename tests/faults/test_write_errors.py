"""A disk that refuses writes in the middle of a download (issue 6, case 8).

The fault is injected at the file-descriptor level without privileges: the downloading process
runs with RLIMIT_FSIZE below one object's size (and SIGXFSZ ignored), so its writes past the limit
fail with EFBIG as they would with ENOSPC. The object gets a clear error naming it, no partial
file appears, the previous file of that name is kept, and the other objects are downloaded.
ENOSPC and EIO themselves are raised in-process where the bytes meet the descriptor."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket import _ranged
from qbucket._scan import is_download_temporary
from qbucket._server import ServerInfo

LIMITED_DOWNLOAD = """
import json, resource, signal, sys, qbucket
endpoint, access, secret, bucket, out, limit = sys.argv[1:]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
try:
    with qbucket.Connection(endpoint, access, secret) as conn:
        qbucket.Bucket(conn, bucket, create=False).get_all_files(out)
except qbucket.BatchError as exc:
    print(json.dumps([[f.key, f.path, str(f)] for f in exc.failures]))
    sys.exit(1)
"""


def test_write_error_mid_download_names_the_object_and_spares_the_rest(
    s3_server: ServerInfo, bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    objects = {
        "a/small-1": os.urandom(100_000),
        "big": os.urandom(3 << 20),
        "b/small-2": os.urandom(100_000),
        "huge": os.urandom(20 << 20),  # the streamed path, not read whole
    }
    for key, data in objects.items():
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "big").write_bytes(b"the previous big")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LIMITED_DOWNLOAD,
            s3_server.endpoint,
            s3_server.access_key,
            s3_server.secret_key,
            bucket.uuid,
            str(out),
            str(1 << 20),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    failures = {key: (path, message) for key, path, message in json.loads(done.stdout)}
    assert set(failures) == {"big", "huge"}
    for key, (path, message) in failures.items():
        assert path == str(out / key)
        assert key in message and "too large" in message.lower()
    assert (out / "big").read_bytes() == b"the previous big"  # not replaced by a partial file
    assert not (out / "huge").exists()
    assert (out / "a" / "small-1").read_bytes() == objects["a/small-1"]
    assert (out / "b" / "small-2").read_bytes() == objects["b/small-2"]
    leftovers = [p.name for p in out.rglob("*") if is_download_temporary(p.name)]
    assert leftovers == []


def test_enospc_and_eio_at_the_descriptor_fail_only_their_object(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other two errnos of case 8, injected where the bytes meet the file: os.pwrite fails
    # with ENOSPC (disk full) for a small object, with EIO for a range of a large one.
    monkeypatch.setattr(_ranged, "PARALLEL_THRESHOLD", 6 << 20)
    monkeypatch.setattr(_ranged, "PART", 2 << 20)
    objects = {"ok": os.urandom(50_000), "full": os.urandom(50_000), "broken": os.urandom(9 << 20)}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "full").write_bytes(b"the previous full")
    real_pwrite = os.pwrite
    injected: list[str] = []

    def target_of(fd: int) -> str:
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return ""

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if ".full.qbucket-part-" in target_of(fd):
            injected.append("ENOSPC")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if ".broken.qbucket-part-" in target_of(fd):
            injected.append("EIO")
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(qbucket.BatchError) as caught:
        bucket.get_all_files(out)
    monkeypatch.setattr(os, "pwrite", real_pwrite)

    assert {"ENOSPC", "EIO"} <= set(injected), "a fault was not injected: the test proves nothing"
    messages = {failure.key: str(failure) for failure in caught.value.failures}
    assert set(messages) == {"full", "broken"}
    assert "full" in messages["full"] and "no space" in messages["full"].lower()
    assert "broken" in messages["broken"] and "input/output" in messages["broken"].lower()
    assert (out / "full").read_bytes() == b"the previous full"  # no partial file under the name
    assert not (out / "broken").exists()
    assert (out / "ok").read_bytes() == objects["ok"]
    assert [p.name for p in out.iterdir() if is_download_temporary(p.name)] == []
