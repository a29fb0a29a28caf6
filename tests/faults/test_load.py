"""Load (issue 6, case 17): 16 threads sharing one Connection and 4 processes syncing different
prefixes of one bucket at once, 10,000 files in all: every object correct, no deadlock, no file
descriptor or thread left behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import qbucket
from qbucket._server import ServerInfo

from ..integration.helpers import make_tree

THREADS, PER_THREAD = 16, 250  # 4000 files through one Connection
PROCESSES, PER_PROCESS = 4, 1500  # 6000 files from four interpreters

SYNC_ONE_PREFIX = """
import sys, qbucket
endpoint, access, secret, bucket, tree, prefix = sys.argv[1:]
with qbucket.Connection(endpoint, access, secret) as conn:
    summary = qbucket.Bucket(conn, bucket, create=False).sync_directory(tree, remote=prefix)
print(summary.uploaded)
"""


def _open_fds() -> dict[int, str]:
    found = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return found


def _listing(s3: Any, bucket: str) -> dict[str, tuple[int, str]]:
    paginator = s3.get_paginator("list_objects_v2")
    return {
        o["Key"]: (o["Size"], o["ETag"].strip('"'))
        for page in paginator.paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }


def test_threads_and_processes_at_once(
    s3_server: ServerInfo, bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    expected: dict[str, bytes] = {}
    thread_trees = []
    for t in range(THREADS):
        files = {f"f{i:03d}": f"thread {t} file {i}".encode() for i in range(PER_THREAD)}
        thread_trees.append(make_tree(tmp_path / f"t{t}", files))
        expected.update({f"threads/t{t}/{name}": data for name, data in files.items()})
    process_trees = []
    for p in range(PROCESSES):
        files = {
            f"d{i % 10}/f{i:04d}": f"process {p} file {i}".encode() for i in range(PER_PROCESS)
        }
        process_trees.append(make_tree(tmp_path / f"p{p}", files))
        expected.update({f"procs/p{p}/{name}": data for name, data in files.items()})
    assert len(expected) == 10_000

    fds_before, threads_before = _open_fds(), threading.active_count()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SYNC_ONE_PREFIX,
                s3_server.endpoint,
                s3_server.access_key,
                s3_server.secret_key,
                bucket.uuid,
                str(process_trees[p]),
                f"procs/p{p}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(PROCESSES)
    ]

    conn = qbucket.Connection(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)

    def one_thread(t: int) -> int:
        # Each thread its own Bucket object on the shared Connection; mixes sync, background
        # uploads and reads.
        mine = qbucket.Bucket(conn, bucket.uuid, create=False)
        summary = mine.sync_directory(str(thread_trees[t]), remote=f"threads/t{t}")
        mine.add_file(str(thread_trees[t] / "f000"), f"threads/t{t}/f000")
        mine.flush()
        assert len(mine.directory(f"threads/t{t}/")) == PER_THREAD
        copy = tmp_path / f"copy{t}"
        mine.get_file(f"threads/t{t}/f001", str(copy))
        assert copy.read_bytes() == f"thread {t} file 1".encode()
        return summary.uploaded

    with ThreadPoolExecutor(THREADS) as pool:
        uploaded = list(pool.map(one_thread, range(THREADS), timeout=600))
    assert uploaded == [PER_THREAD] * THREADS

    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        assert out.strip() == str(PER_PROCESS)

    conn.close()
    # obstore's pooled connections close on its runtime's threads just after the store is
    # dropped: give them a moment. What stays is that runtime's own epoll/eventfd (3, once per
    # process, whatever the number of connections and threads; none if an earlier test made
    # them). Wait for the sockets too: with the runtime made earlier, one socket still closing
    # is already within the count of 3.
    deadline = time.monotonic() + 5
    while True:
        left = {fd: target for fd, target in _open_fds().items() if fd not in fds_before}
        sockets = [target for target in left.values() if target.startswith("socket:")]
        if (len(left) <= 3 and not sockets) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(left) <= 3, left
    assert not any(target.startswith("socket:") for target in left.values()), left
    assert threading.active_count() <= threads_before, [t.name for t in threading.enumerate()]

    listing = _listing(s3, bucket.uuid)
    assert set(listing) == set(expected)
    for key, data in expected.items():  # every object's size and MD5, from one listing
        assert listing[key] == (len(data), hashlib.md5(data).hexdigest()), key


def test_closed_connection_leaves_no_thread(
    s3_server: ServerInfo, bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "tree", {f"f{i}": b"x" * i for i in range(50)})
    before = {thread.ident for thread in threading.enumerate()}
    with qbucket.Connection(s3_server.endpoint, s3_server.access_key, s3_server.secret_key) as conn:
        mine = qbucket.Bucket(conn, bucket.uuid, create=False)
        mine.sync_directory(str(tree))  # the loop thread and its executor's workers
        mine.get_all_files(str(tmp_path / "out"))
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert left == []
