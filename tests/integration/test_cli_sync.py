"""``qbucket sync`` in both directions against a real SeaweedFS: dry runs change nothing,
--max-delete aborts before any change, filters, --delete/--no-delete, and exit codes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from qbucket._server import ServerInfo

from .cli_runner import Runner, server_env, subprocess_runner
from .helpers import drop_bucket, make_tree, remote_objects, unique_name

TREE = {"a.txt": b"alpha", "sub/b.txt": b"bravo", "sub/deep/c.txt": b"charlie"}


@pytest.fixture
def name(s3: Any) -> Any:
    chosen = unique_name("sync")
    s3.create_bucket(Bucket=chosen)
    yield chosen
    drop_bucket(s3, chosen)


def files_below(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink()
    }


# -- upload direction -----------------------------------------------------------------------------


def test_upload_dry_run_changes_nothing_then_sync_mirrors(
    run: Runner, s3: Any, name: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    s3.put_object(Bucket=name, Key="data/extra.txt", Body=b"extra")
    s3.put_object(Bucket=name, Key="data2/other.txt", Body=b"out of scope")
    before = remote_objects(s3, name)

    dry = run("sync", str(src), f"{name}/data", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    doc = dry.json()
    assert (doc["dry_run"], doc["direction"], doc["uploaded"], doc["deleted"]) == (
        True,
        "upload",
        3,
        1,
    )
    assert sorted(op["key"] for op in doc["plan"]["upload"]) == [f"data/{k}" for k in sorted(TREE)]
    assert doc["plan"]["delete"] == [{"key": "data/extra.txt", "path": None}]
    assert remote_objects(s3, name) == before  # nothing changed on the server

    done = run("sync", str(src), f"{name}/data", "--json", "-j", "2")
    assert done.code == 0, done.err
    doc = done.json()
    assert (doc["uploaded"], doc["deleted"], doc["dry_run"], doc["plan"]) == (3, 1, False, None)
    assert doc["bytes"] == sum(map(len, TREE.values())) and doc["ok"] is True
    assert set(doc) >= {"seconds", "bytes_per_second", "failures", "copied", "unchanged"}
    assert remote_objects(s3, name) == {
        **{f"data/{k}": v for k, v in TREE.items()},
        "data2/other.txt": b"out of scope",
    }


def test_upload_changes_text_plan_verbose_and_summary(
    s3_server: ServerInfo, s3: Any, name: str, tmp_path: Path
) -> None:
    run = subprocess_runner(server_env(s3_server), s3_server.secret_key)  # the real command
    src = make_tree(tmp_path / "src", TREE)
    assert run("sync", str(src), name).code == 0
    (src / "a.txt").write_bytes(b"ALPHA")  # same size
    (src / "sub" / "b.txt").unlink()
    (src / "new.txt").write_bytes(b"new")
    before = remote_objects(s3, name)

    dry = run("sync", "--dry-run", str(src), f"s3://{name}")
    assert dry.code == 0, dry.err
    assert f"upload {src / 'a.txt'} -> s3://{name}/a.txt" in dry.out
    assert f"upload {src / 'new.txt'} -> s3://{name}/new.txt" in dry.out
    assert f"delete s3://{name}/sub/b.txt" in dry.out
    assert "dry run, nothing changed; would have uploaded 2" in dry.out
    assert remote_objects(s3, name) == before

    done = run("sync", "-v", str(src), name)
    assert done.code == 0, done.err
    assert f"delete s3://{name}/sub/b.txt" in done.err  # -v: each operation, on stderr
    assert "uploaded 2, copied 0, deleted 1, skipped 1 (1 unchanged, 0 excluded)" in done.out
    assert " B/s)" in done.out  # throughput
    again = run("sync", str(src), name)
    assert "uploaded 0, copied 0, deleted 0, skipped 3 (3 unchanged" in again.out
    quiet = run("sync", "-q", str(src), name)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")


def test_upload_max_delete_aborts_before_any_change(
    run: Runner, s3: Any, name: str, tmp_path: Path
) -> None:
    for key in ("x1", "x2", "x3"):
        s3.put_object(Bucket=name, Key=key, Body=b"old")
    src = make_tree(tmp_path / "src", {"new.txt": b"new"})
    before = remote_objects(s3, name)

    refused = run("sync", str(src), name, "--max-delete", "2")
    assert refused.code == 1
    assert "would delete 3" in refused.err and "nothing was changed" in refused.err
    assert remote_objects(s3, name) == before  # not even the upload happened
    dry = run("sync", str(src), name, "--max-delete", "2", "--dry-run", "--json")
    assert dry.code == 1 and dry.json()["ok"] is False
    assert "would delete 3" in dry.json()["failures"][0]["error"]
    assert run("sync", str(src), name, "--max-delete", "3").code == 0
    assert remote_objects(s3, name) == {"new.txt": b"new"}


def test_upload_no_delete_and_filters(run: Runner, s3: Any, name: str, tmp_path: Path) -> None:
    src = make_tree(
        tmp_path / "src",
        {"keep.log": b"k", "drop.log": b"d", "cache/blob": b"c", "main.py": b"m"},
    )
    s3.put_object(Bucket=name, Key="old.log", Body=b"remote, excluded")
    s3.put_object(Bucket=name, Key="stale.txt", Body=b"remote extra")
    rules = ["--include", "keep.log", "--exclude", "*.log", "--exclude", "cache/"]

    kept = run("sync", str(src), name, "--no-delete", *rules, "--json")
    assert kept.code == 0, kept.err
    assert (kept.json()["uploaded"], kept.json()["deleted"]) == (2, 0)
    assert sorted(remote_objects(s3, name)) == ["keep.log", "main.py", "old.log", "stale.txt"]

    mirrored = run("sync", str(src), name, *rules, "--json").json()
    assert (mirrored["deleted"], mirrored["unchanged"]) == (1, 2)
    # the excluded old.log is protected from the delete; stale.txt is not
    assert sorted(remote_objects(s3, name)) == ["keep.log", "main.py", "old.log"]


# -- download direction --------------------------------------------------------------------------


def test_download_new_changed_same_size_and_delete(
    run: Runner, s3: Any, name: str, tmp_path: Path
) -> None:
    for key, body in TREE.items():
        s3.put_object(Bucket=name, Key=f"p/{key}", Body=body)
    dst = tmp_path / "dst"
    dry = run("sync", f"{name}/p", str(dst), "--dry-run", "--json")
    assert dry.code == 0 and len(dry.json()["plan"]["download"]) == 3
    assert not dst.exists()  # a dry run creates nothing, not even the directory
    first = run("sync", f"{name}/p", str(dst), "--json")
    assert first.code == 0, first.err
    assert first.json()["downloaded"] == 3 and first.json()["direction"] == "download"
    assert files_below(dst) == TREE

    s3.put_object(Bucket=name, Key="p/a.txt", Body=b"ALPHA")  # changed, same size
    s3.put_object(Bucket=name, Key="p/new.txt", Body=b"new")
    (dst / "sub" / "deep" / "c.txt").unlink()  # missing locally: fetched again
    make_tree(dst, {"extra.txt": b"local only", "old/x.txt": b"local only"})
    second = run("sync", f"{name}/p", str(dst), "--json").json()
    assert (second["downloaded"], second["unchanged"], second["deleted"]) == (3, 1, 0)
    expected = {**TREE, "a.txt": b"ALPHA", "new.txt": b"new"}
    assert files_below(dst) == {**expected, "extra.txt": b"local only", "old/x.txt": b"local only"}

    dry = run("sync", f"{name}/p", str(dst), "--delete", "--dry-run")
    assert dry.code == 0
    assert f"delete {dst / 'extra.txt'}" in dry.out and "would have downloaded 0" in dry.out
    assert run("sync", f"{name}/p", str(dst), "--delete", "--max-delete", "1").code == 1
    assert (dst / "extra.txt").exists() and (dst / "old" / "x.txt").exists()

    third = run("sync", f"{name}/p", str(dst), "--delete", "-v")
    assert third.code == 0, third.err
    assert files_below(dst) == expected
    assert not (dst / "old").exists()  # emptied by the deletes, so removed
    assert f"delete {dst / 'extra.txt'}" in third.err
    assert "downloaded 0, deleted 2, skipped 4 (4 unchanged" in third.out


def test_download_never_writes_outside_the_directory(
    run: Runner, s3: Any, name: str, tmp_path: Path
) -> None:
    for key in ("sub/x", "filelink", "p/.../z", "p/..x", "ok"):
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    s3.put_object(Bucket=name, Key="marker/", Body=b"")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim"
    victim.write_bytes(b"untouched")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "sub").symlink_to(elsewhere, target_is_directory=True)
    (dst / "filelink").symlink_to(victim)

    ran = run("sync", name, str(dst))
    assert ran.code == 1
    assert "sub/x" in ran.err and "outside" in ran.err
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim"]
    assert victim.read_bytes() == b"untouched"
    assert (dst / "filelink").read_bytes() == b"filelink" and not (dst / "filelink").is_symlink()
    assert (dst / "p" / "..." / "z").read_bytes() == b"p/.../z"
    assert (dst / "p" / "..x").read_bytes() == b"p/..x"
    assert (dst / "ok").read_bytes() == b"ok"
    assert not (dst / "marker").exists()


def test_download_failures_one_line_each_and_json(
    run: Runner, s3: Any, name: str, tmp_path: Path
) -> None:
    s3.put_object(Bucket=name, Key="blocked", Body=b"cannot land")
    s3.put_object(Bucket=name, Key="fine.txt", Body=b"fine")
    s3.put_object(Bucket=name, Key="skip.tmp", Body=b"excluded")
    dst = make_tree(tmp_path / "dst", {"blocked/inside.txt": b"a directory in the way"})
    (dst / "local.tmp").write_bytes(b"excluded, so never deleted")

    ran = run("sync", name, str(dst), "--delete", "--exclude", "*.tmp", "--json")
    assert ran.code == 1
    failed = [line for line in ran.err.splitlines() if line.startswith("qbucket: failed:")]
    assert len(failed) == 1 and "blocked" in failed[0]
    doc = ran.json()
    assert doc["ok"] is False and doc["failed"] == 1
    assert doc["failures"][0]["key"] == "blocked" and doc["failures"][0]["error"]
    assert doc["downloaded"] is None  # unknown: the sync did not complete
    assert (dst / "fine.txt").read_bytes() == b"fine"  # the others were downloaded
    assert (dst / "blocked" / "inside.txt").exists()  # and with a failure, nothing deleted
    assert not (dst / "skip.tmp").exists() and (dst / "local.tmp").exists()
    os.remove(dst / "blocked" / "inside.txt")
    os.rmdir(dst / "blocked")
    assert run("sync", name, str(dst), "--delete", "--exclude", "*.tmp").code == 0
    assert files_below(dst) == {
        "blocked": b"cannot land",
        "fine.txt": b"fine",
        "local.tmp": b"excluded, so never deleted",
    }
