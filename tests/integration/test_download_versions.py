"""A download started from a listing gets the listed version of each object, or an error for
that key: never the bytes of a newer version under the listed name, never a partial file."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import obstore
import pytest

import qbucket
from qbucket import _download, _small_downloads
from qbucket._download import download, download_jobs
from qbucket._file_writer import FileWriter
from qbucket._progress import ProgressSink
from qbucket._server import ServerInfo

from .helpers import drop_bucket, unique_name

# What replaces an object of 4096 x "A" between its listing and its download.
replacements = pytest.mark.parametrize(
    "replacement", [b"B" * 4096, b"B" * 100, b"B" * 9000], ids=["same-size", "shorter", "longer"]
)


@replacements
def test_object_replaced_after_listing_is_not_written(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, replacement: bytes
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="k", Body=b"A" * 4096)
    (listed,) = bucket.list_files()
    s3.put_object(Bucket=bucket.uuid, Key="k", Body=replacement)
    destination = tmp_path / "k"
    transport = bucket._transport
    with pytest.raises(qbucket.TransferError) as caught:
        transport.run(
            download(transport, bucket.uuid, "k", destination, ProgressSink(), listed=listed)
        )
    assert "k" in str(caught.value)
    assert not destination.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left either


def test_listed_object_unchanged_downloads_with_its_listed_time(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket.uuid, Key="d/k", Body=b"content")
    (listed,) = bucket.list_files()
    transport = bucket._transport
    destination = tmp_path / "k"
    transport.run(
        download(transport, bucket.uuid, "d/k", destination, ProgressSink(), listed=listed)
    )
    assert destination.read_bytes() == b"content"
    assert destination.stat().st_mtime == listed.last_modified.timestamp()


@pytest.mark.parametrize("threads", [True, False], ids=["threads", "loop"])
@replacements
def test_batch_download_fails_only_the_object_replaced_after_listing(
    bucket: qbucket.Bucket,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    replacement: bytes,
    threads: bool,
) -> None:
    # The batch paths of small objects (one ranged GET checked by MD5, on threads of their own
    # or on the loop and written by the writer threads) fall back to the If-Match GET, which
    # names what happened.
    if not threads:
        monkeypatch.setattr(_small_downloads, "THREADS", 0)
    s3.put_object(Bucket=bucket.uuid, Key="k", Body=b"A" * 4096)
    s3.put_object(Bucket=bucket.uuid, Key="other", Body=b"other")
    listed = {summary.key: summary for summary in bucket.list_files()}
    s3.put_object(Bucket=bucket.uuid, Key="k", Body=replacement)
    transport = bucket._transport
    jobs = [(listed["k"], tmp_path / "k"), (listed["other"], tmp_path / "other")]
    done, failures = transport.run(
        download_jobs(transport, bucket.uuid, jobs, tmp_path, ProgressSink())
    )
    assert [summary.key for summary, _ in done] == ["other"]
    (failure,) = failures
    assert failure.key == "k" and "k" in str(failure)
    assert sorted(os.listdir(tmp_path)) == ["other"]  # no file, no temporary file for k
    assert (tmp_path / "other").read_bytes() == b"other"
    assert (tmp_path / "other").stat().st_mtime == listed["other"].last_modified.timestamp()


def test_request_slots_are_free_again_before_the_files_are_written(
    s3_server: ServerInfo, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two request slots, eight small objects, and no file may be written before all eight GETs
    # were answered: that finishes only if a slot is given back once the bytes are in memory.
    monkeypatch.setattr(_small_downloads, "THREADS", 0)  # the loop's path
    count = 8
    all_answered = threading.Event()
    answered = 0
    real_get_range_async = obstore.get_range_async

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal answered
        data = await real_get_range_async(*args, **kwargs)
        answered += 1
        if answered == count:
            all_answered.set()
        return data

    real_write_new = _download._write_new

    def write_after_every_answer(*args: Any) -> None:
        assert all_answered.wait(30), "a write waited for GETs that could not start"
        real_write_new(*args)

    monkeypatch.setattr(obstore, "get_range_async", counted)
    monkeypatch.setattr(_download, "_write_new", write_after_every_answer)
    name = unique_name()
    with qbucket.Connection(
        s3_server.endpoint, s3_server.access_key, s3_server.secret_key, concurrency=2
    ) as connection:
        bucket = qbucket.Bucket(connection, name, create=True)
        try:
            objects = {f"d{n % 3}/f{n}": os.urandom(1000 + n) for n in range(count)}
            for key, data in objects.items():
                s3.put_object(Bucket=name, Key=key, Body=data)
            bucket.get_all_files(str(tmp_path / "out"))
        finally:
            drop_bucket(s3, name)
    for key, data in objects.items():
        assert (tmp_path / "out" / key).read_bytes() == data


def test_bytes_waiting_for_the_writers_stay_within_the_budget(
    bucket: qbucket.Bucket, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 300_000
    monkeypatch.setattr(_download, "UNWRITTEN_BUDGET", budget)
    monkeypatch.setattr(_small_downloads, "THREADS", 0)  # the loop's path
    most = 0
    real_reserve = FileWriter.reserve

    async def reserve(self: FileWriter, nbytes: int) -> None:
        nonlocal most
        await real_reserve(self, nbytes)
        most = max(most, self._reserved)

    monkeypatch.setattr(FileWriter, "reserve", reserve)
    objects = {f"f{n}": os.urandom(100_000) for n in range(12)}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket.uuid, Key=key, Body=data)
    bucket.get_all_files(str(tmp_path))
    assert 100_000 <= most <= budget
    for key, data in objects.items():
        assert (tmp_path / key).read_bytes() == data
