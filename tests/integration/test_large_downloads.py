"""Large objects come down in parallel ranges on plain threads (qbucket._ranged): beside the
small ones of the same batch, in a sync, with progress reported one call at a time, and without
starting the event loop when the batch holds nothing else."""

from __future__ import annotations

import itertools
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
from qbucket import _ranged, _splice, _transfer
from qbucket._server import ServerInfo


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects above 6 MiB are "large", in ranges of 2 MiB; uploads above 6 MiB go in parts."""
    monkeypatch.setattr(_ranged, "PARALLEL_THRESHOLD", 6 << 20)
    monkeypatch.setattr(_ranged, "PART", 2 << 20)
    monkeypatch.setattr(_transfer, "SINGLE_PUT_LIMIT", 6 << 20)


def _counting_ranges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    asked: list[tuple[str, int]] = []
    real_open = _ranged.RangeClient.open

    def counted(self: Any, bucket: str, key: str, start: int, end: int, e_tag: str) -> Any:
        asked.append((key, start))
        return real_open(self, bucket, key, start, end, e_tag)

    monkeypatch.setattr(_ranged.RangeClient, "open", counted)
    return asked


def test_sync_to_directory_fetches_large_objects_in_ranges_beside_small_ones(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    large, small = os.urandom((9 << 20) + 3), b"small content"
    (tmp_path / "large.bin").write_bytes(large)
    (tmp_path / "small.txt").write_bytes(small)
    bucket.add_file(str(tmp_path / "large.bin"), "data/large.bin")
    bucket.add_file(str(tmp_path / "small.txt"), "data/small.txt")
    bucket.flush()
    asked = _counting_ranges(monkeypatch)
    lines: list[str] = []

    out = tmp_path / "out"
    summary = bucket.sync_to_directory(str(out), "data", verbose=lines.append)

    assert summary.downloaded == 2
    assert (out / "large.bin").read_bytes() == large
    assert (out / "small.txt").read_bytes() == small
    assert sorted(asked) == [("data/large.bin", start) for start in range(0, len(large), 2 << 20)]
    assert any("data/large.bin" in line for line in lines)  # reported like any other download
    assert sorted(os.listdir(out)) == ["large.bin", "small.txt"]  # no temporary left
    again = bucket.sync_to_directory(str(out), "data")
    assert again.downloaded == 0


def test_a_range_cut_off_midway_is_asked_again_from_where_it_stopped(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    monkeypatch.setattr(_ranged, "SPLICE", False)  # bodies read into the buffer, as over TLS
    data = os.urandom(8 << 20)
    (tmp_path / "big.bin").write_bytes(data)
    bucket.add_file(str(tmp_path / "big.bin"), "big.bin")
    bucket.flush()
    real_open = _ranged.RangeClient.open
    asked: list[int] = []

    class CutAfterOneBuffer:  # the connection drops once the first buffer has been read
        def __init__(self, answer: Any) -> None:
            self._answer, self._reads = answer, 0

        def getheader(self, name: str, default: str | None = None) -> str | None:
            return self._answer.getheader(name, default)  # type: ignore[no-any-return]

        def readinto(self, view: memoryview) -> int:
            self._reads += 1
            if self._reads > 1:
                raise ConnectionResetError(104, "Connection reset by peer")
            return self._answer.readinto(view)  # type: ignore[no-any-return]

    def cutting(self: Any, bucket_: str, key: str, start: int, end: int, e_tag: str) -> Any:
        asked.append(start)
        connection, answer = real_open(self, bucket_, key, start, end, e_tag)
        first_time = asked.count(start) == 1
        return connection, CutAfterOneBuffer(answer) if start == 2 << 20 and first_time else answer

    monkeypatch.setattr(_ranged.RangeClient, "open", cutting)
    bucket.get_all_files(str(tmp_path / "out"))

    assert sorted(asked) == sorted([0, 2 << 20, (2 << 20) + _ranged.BUFFER, 4 << 20, 6 << 20])
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert os.listdir(tmp_path / "out") == ["big.bin"]


def test_a_spliced_range_cut_off_midway_is_asked_again_from_where_it_stopped(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    data = os.urandom(8 << 20)
    (tmp_path / "big.bin").write_bytes(data)
    bucket.add_file(str(tmp_path / "big.bin"), "big.bin")
    bucket.flush()
    asked = _counting_ranges(monkeypatch)
    real_receive = _splice.SocketToFile.receive
    receipts = itertools.count()
    cut: list[int] = []

    def cut_once(self: Any, sock: Any, most: int) -> int:
        # The third piece spliced from any range: that range has written some of its bytes.
        if next(receipts) == 2:
            cut.append(1)
            raise ConnectionResetError(104, "Connection reset by peer")
        return real_receive(self, sock, most)

    monkeypatch.setattr(_splice.SocketToFile, "receive", cut_once)
    bucket.get_all_files(str(tmp_path / "out"))

    assert cut, "no connection was cut: the test proves nothing"
    starts = [start for _, start in asked]
    assert sorted(start for start in starts if start % (2 << 20) == 0) == [
        0,
        2 << 20,
        4 << 20,
        6 << 20,
    ]
    (resumed,) = [start for start in starts if start % (2 << 20)]  # asked again, mid-range
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert os.listdir(tmp_path / "out") == ["big.bin"]
    assert resumed > 0


def test_progress_of_parallel_ranges_reaches_the_callback_one_call_at_a_time(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    monkeypatch.setattr(_ranged, "PROGRESS_STEP", 256 << 10)  # many reports, from 4 ranges
    data = os.urandom(12 << 20)
    (tmp_path / "big.bin").write_bytes(data)
    bucket.add_file(str(tmp_path / "big.bin"), "big.bin")
    bucket.flush()
    inside = threading.Lock()
    overlapped: list[int] = []
    calls: list[tuple[int, int]] = []

    def callback(read: int, total: int, name: str) -> None:
        if not inside.acquire(blocking=False):
            overlapped.append(read)
            return
        try:
            calls.append((read, total))
            time.sleep(0.001)  # widens the window another thread's report would fall into
        finally:
            inside.release()

    bucket.get_all_files(str(tmp_path / "out"), progress=callback)

    assert overlapped == []
    assert len(calls) > 10
    assert calls[-1] == (len(data), len(data))
    assert all(read < total for read, total in calls[:-1])
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


LARGE_ONLY = """
import json, sys, qbucket
from qbucket import _ranged
_ranged.PARALLEL_THRESHOLD, _ranged.PART = 6 << 20, 2 << 20
endpoint, access, secret, bucket, out = sys.argv[1:]
with qbucket.Connection(endpoint, access, secret) as conn:
    written = qbucket.Bucket(conn, bucket, create=False).get_all_files(out)
loaded = [name for name in ("asyncio", "obstore") if name in sys.modules]
print(json.dumps({"written": len(written), "loaded": loaded}))
"""


def test_download_of_large_objects_only_starts_no_event_loop(
    s3_server: ServerInfo, bucket: qbucket.Bucket, tmp_path: Path, small_ranges: None
) -> None:
    # Short downloads are start-up bound: asyncio's import and obstore's load are ~60 ms that
    # a batch of large objects does not need.
    contents = {f"big{i}.bin": os.urandom((7 << 20) + i) for i in range(3)}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
        bucket.add_file(str(tmp_path / name), name)
    bucket.flush()
    out = tmp_path / "out"
    argv = [sys.executable, "-c", LARGE_ONLY, s3_server.endpoint, s3_server.access_key]
    argv += [s3_server.secret_key, bucket.uuid, str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == {"written": 3, "loaded": []}
    for name, data in contents.items():
        assert (out / name).read_bytes() == data


def test_an_interrupted_batch_stops_every_large_file_and_installs_none(
    bucket: qbucket.Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    # Ctrl-C (here: a KeyboardInterrupt from the progress callback) while two large files come
    # down at once: the other one stops at its next chunk instead of running to its end, and
    # neither appears under its name.
    monkeypatch.setattr(_ranged, "PROGRESS_STEP", 256 << 10)
    monkeypatch.setattr(_ranged, "BUFFER", 64 << 10)
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(os.urandom(16 << 20))
        bucket.add_file(str(tmp_path / name), name)
    bucket.flush()
    reports: dict[str, int] = {"a.bin": 0, "b.bin": 0}

    def callback(read: int, total: int, name: str) -> None:
        reports[name] += 1
        if name == "a.bin" and 0 < read < total:
            raise KeyboardInterrupt
        time.sleep(0.02)  # b.bin is slow: without the stop it would still have most to go

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        bucket.get_all_files(str(out), progress=callback)
    assert os.listdir(out) == []  # no file under its name, no temporary left
    assert reports["b.bin"] < (16 << 20) // (256 << 10)  # b.bin stopped early
