"""Command-line arguments (qbucket._cli_args, qbucket._cli_parser): no server needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qbucket._cli_args import UsageError, parse_remote, sync_direction
from qbucket._cli_parser import build_parser


def test_parse_remote_forms() -> None:
    assert (parse_remote("bkt").bucket, parse_remote("bkt").rest) == ("bkt", "")
    remote = parse_remote("s3://bkt/a/b.txt")
    assert (remote.bucket, remote.key(), remote.url) == ("bkt", "a/b.txt", "s3://bkt/a/b.txt")
    assert parse_remote("bkt/dir/").names_a_directory
    assert parse_remote("bkt/dir").prefix() == "dir/"
    assert parse_remote("bkt").prefix() == ""
    assert not parse_remote("bkt/file").names_a_directory


@pytest.mark.parametrize("text", ["", "/x", "s3://", "Upper/x", "ab/x", "bad_name"])
def test_parse_remote_refuses_bad_buckets(text: str) -> None:
    with pytest.raises(UsageError):
        parse_remote(text)


def test_keys_that_cannot_be_keys_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="names no object"):
        parse_remote("bkt").key()
    with pytest.raises(UsageError):
        parse_remote("bkt/a/../b").key()
    with pytest.raises(UsageError):
        parse_remote("bkt/a/../b").prefix()


def test_sync_direction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkdir("out")
    assert sync_direction("out", "results") == "up"
    assert sync_direction("results", "copy") == "down"
    assert sync_direction("s3://out", "out") == "down"  # s3:// wins over a local name
    assert sync_direction("out", "s3://results") == "up"
    os.mkdir("copy")
    assert sync_direction("results/run", "copy") == "down"
    with pytest.raises(UsageError, match="exist locally"):
        sync_direction("out", "copy")  # both local: refused, not guessed
    with pytest.raises(UsageError, match="two buckets"):
        sync_direction("s3://a", "s3://b")
    # A missing local directory is named as such, not taken for a bucket to download from.
    with pytest.raises(UsageError, match="'/no/such/dir' does not exist locally"):
        sync_direction("/no/such/dir", "results")


def test_filters_keep_command_line_order_and_global_options_go_anywhere() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["-v", "sync", "a", "bkt", "--include", "*.py", "--exclude", "*", "--json", "-j", "3"]
    )
    assert args.rules == [("include", "*.py"), ("exclude", "*")]
    assert (args.verbose, args.json, args.jobs, args.delete) == (True, True, 3, None)
    assert parser.parse_args(["sync", "a", "b", "--no-delete"]).delete is False
    assert parser.parse_args(["sync", "a", "b"]).rules == []
