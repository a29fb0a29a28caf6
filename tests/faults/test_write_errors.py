"""A disk that refuses writes in the middle of a download (issue 6, case 8).

The fault is injected at the file-descriptor level without privileges: the downloading process
runs with RLIMIT_FSIZE below one object's size (and SIGXFSZ ignored), so its writes past the limit
fail with EFBIG as they would with ENOSPC. The object gets a clear error naming it, no partial
file appears, the previous file of that name is kept, and the other objects are downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import qbucket
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
