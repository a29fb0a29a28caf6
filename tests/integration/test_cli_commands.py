"""The ``qbucket`` commands against a real SeaweedFS: ls, mb, rb, put, get, cp, rm, the global
options, exit codes, secrets and the progress bar.

Most runs go through ``main(argv)`` in-process (fast); the ones about the process itself
(``python -m qbucket``, tracebacks, what a terminal sees) run in a subprocess. Every run checks
that no secret and no traceback was printed (see cli_runner).
"""

from __future__ import annotations

import hashlib
import io
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import qbucket
from qbucket._server import ServerInfo

from .cli_runner import Runner, in_process, server_env, subprocess_runner
from .helpers import bucket_exists, drop_bucket, make_tree, remote_objects, unique_name

COMMANDS = ["ls", "mb", "rb", "put", "get", "cp", "rm", "sync", "server", "config"]


@pytest.fixture
def run_process(s3_server: ServerInfo, tmp_path: Path) -> Runner:
    env = {**server_env(s3_server), "QBUCKET_HOME": str(tmp_path / "home")}
    return subprocess_runner(env, s3_server.secret_key)


@pytest.fixture
def name(s3: Any) -> Any:
    """A bucket name, with the bucket (if a test made it) dropped afterwards."""
    chosen = unique_name("cli")
    yield chosen
    drop_bucket(s3, chosen)


@pytest.fixture
def filled(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name)
    for key, body in {
        "a.txt": b"alpha",
        "dir/b.txt": b"bravo!",
        "dir/sub/c.txt": b"charlie",
        "dir2/d.txt": b"delta",
    }.items():
        s3.put_object(Bucket=name, Key=key, Body=body)
    return name


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- help and usage -------------------------------------------------------------------------------


def test_every_command_has_help_with_an_example(run: Runner) -> None:
    top = run("--help")
    assert top.code == 0
    for command in COMMANDS:
        assert command in top.out
        shown = run(command, "--help")
        assert shown.code == 0, command
        assert "example" in shown.out and f"qbucket {command}" in shown.out, command
    assert "the FIRST that matches decides" in " ".join(run("sync", "--help").out.split())


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "Bad_Name"],
        ["get", "bucket-name/key", "local", "one-too-many"],
        ["rm", "bucket-name/"],
        ["cp", "bucket-one/x", "bucket-two/y"],
        ["put", "only-one-arg"],
        ["mb", "bucket-name/with-key"],
        ["sync", "s3://bucket-one/a", "s3://bucket-two/b"],
        ["sync", "--max-delete", "-1", "a", "bucket-name"],
        ["sync", "--exclude", "", "a", "bucket-name"],
        ["ls", "--no-such-option"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2_and_do_nothing(run: Runner, args: list[str], s3: Any) -> None:
    before = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    ran = run(*args)
    assert ran.code == 2, ran.err
    assert "error" in ran.err
    assert ran.out == ""
    assert {b["Name"] for b in s3.list_buckets().get("Buckets", [])} == before


# -- ls, mb, rb ---------------------------------------------------------------------------------


def test_mb_ls_rb(run: Runner, s3: Any, name: str) -> None:
    made = run("mb", name)
    assert made.code == 0 and "created" in made.out
    assert bucket_exists(s3, name)
    assert run("mb", name, "--json").json() == {"bucket": name, "created": False}
    assert name in run("ls").out.split()
    assert name in run("ls", "--json").json()["buckets"]

    s3.put_object(Bucket=name, Key="k", Body=b"x")
    refused = run("rb", name)
    assert refused.code == 1
    assert "not empty" in refused.err and "--force" in refused.err
    assert remote_objects(s3, name) == {"k": b"x"}
    removed = run("rb", name, "--force", "--json")
    assert removed.code == 0
    assert removed.json() == {"bucket": name, "removed": True, "objects_deleted": 1}
    assert not bucket_exists(s3, name)

    missing = run("ls", name)
    assert missing.code == 1
    assert "does not exist" in missing.err and f"qbucket mb {name}" in missing.err


def test_ls_one_level_with_size_time_and_etag(run: Runner, filled: str) -> None:
    ran = run("ls", filled)
    assert ran.code == 0
    lines = ran.out.splitlines()
    assert [line.split()[-1] for line in lines] == ["dir/", "dir2/", "a.txt"]
    assert lines[0].split() == ["PRE", "dir/"]
    date, time, size, etag, key = lines[2].split()
    assert (size, etag, key) == ("5", md5(b"alpha"), "a.txt")
    assert len(date) == 10 and len(time) == 8

    below = run("ls", f"{filled}/dir/").out.splitlines()
    assert [line.split()[-1] for line in below] == ["sub/", "b.txt"]  # names below the prefix


def test_ls_json_recursive_and_one_level(run: Runner, filled: str) -> None:
    everything = run("ls", filled, "-r", "--json").json()
    assert everything["recursive"] is True and everything["prefixes"] == []
    objects = {o["key"]: o for o in everything["objects"]}
    assert sorted(objects) == ["a.txt", "dir/b.txt", "dir/sub/c.txt", "dir2/d.txt"]
    assert objects["dir/b.txt"]["size"] == 6
    assert objects["dir/b.txt"]["etag"] == md5(b"bravo!")
    assert objects["dir/b.txt"]["last_modified"].endswith("+00:00")

    level = run("ls", f"{filled}/dir/", "--json").json()
    assert level["prefix"] == "dir/"
    assert level["prefixes"] == ["dir/sub/"]
    assert [o["key"] for o in level["objects"]] == ["dir/b.txt"]
    # a plain prefix, as in `aws s3 ls`: "dir" covers dir/ and dir2/
    assert run("ls", f"{filled}/dir", "--json").json()["prefixes"] == ["dir/", "dir2/"]


# -- put, get, cp, rm ---------------------------------------------------------------------------


def test_put_a_file_a_tree_and_several(run: Runner, s3: Any, name: str, tmp_path: Path) -> None:
    s3.create_bucket(Bucket=name)
    tree = make_tree(tmp_path / "tree", {"a.txt": b"a", "sub/b.txt": b"bb"})
    (tmp_path / "one.txt").write_bytes(b"one")

    single = run("put", str(tmp_path / "one.txt"), f"{name}/docs/renamed.txt", "--json")
    assert single.code == 0, single.err
    doc = single.json()
    assert (doc["command"], doc["uploaded"], doc["bytes"], doc["ok"]) == ("put", 1, 3, True)
    assert run("put", str(tree), f"{name}/t", "-v").code == 0
    several = run("put", str(tmp_path / "one.txt"), str(tree), f"s3://{name}/many/")
    assert several.code == 0 and "uploaded 3" in several.out
    assert remote_objects(s3, name) == {
        "docs/renamed.txt": b"one",
        "t/a.txt": b"a",
        "t/sub/b.txt": b"bb",
        "many/one.txt": b"one",
        "many/a.txt": b"a",
        "many/sub/b.txt": b"bb",
    }


def test_put_failures_exit_1(run: Runner, s3: Any, name: str, tmp_path: Path) -> None:
    missing = run("put", str(tmp_path / "nope.txt"), f"{name}/x")
    assert missing.code == 1 and "nope.txt" in missing.err
    (tmp_path / "f").write_bytes(b"f")
    no_bucket = run("put", str(tmp_path / "f"), f"{name}/x")
    assert no_bucket.code == 1 and "does not exist" in no_bucket.err
    assert not bucket_exists(s3, name)  # put never creates a bucket behind your back


def test_get_one_object_and_a_prefix(
    run: Runner, filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    one = run("get", f"{filled}/dir/b.txt")
    assert one.code == 0, one.err
    assert (tmp_path / "b.txt").read_bytes() == b"bravo!"
    assert "downloaded 1" in one.out
    renamed = run("get", f"{filled}/a.txt", "copies/alpha.txt", "--json").json()
    assert (tmp_path / "copies" / "alpha.txt").read_bytes() == b"alpha"
    assert (renamed["downloaded"], renamed["bytes"]) == (1, 5)

    tree = run("get", "-r", f"{filled}/dir", "out", "--json")
    assert tree.code == 0, tree.err
    assert tree.json()["downloaded"] == 2
    assert (tmp_path / "out" / "b.txt").read_bytes() == b"bravo!"  # keys below the prefix
    assert (tmp_path / "out" / "sub" / "c.txt").read_bytes() == b"charlie"
    whole = run("get", filled, "all")  # a bucket alone: everything
    assert whole.code == 0 and (tmp_path / "all" / "dir2" / "d.txt").read_bytes() == b"delta"

    missing = run("get", f"{filled}/dir")  # a prefix without -r
    assert missing.code == 1 and "get -r" in missing.err


def test_cp_and_rm(run: Runner, s3: Any, filled: str) -> None:
    assert run("cp", f"{filled}/a.txt", f"{filled}/copy/a2.txt").code == 0
    assert run("cp", f"{filled}/a.txt", f"{filled}/keep/").code == 0  # keeps its name
    objects = remote_objects(s3, filled)
    assert objects["copy/a2.txt"] == objects["keep/a.txt"] == b"alpha"
    assert run("cp", f"{filled}/none.txt", f"{filled}/x").code == 1

    some_missing = run("rm", f"{filled}/copy/a2.txt", f"{filled}/no-such-key", "--json")
    assert some_missing.code == 1
    assert some_missing.err.count("qbucket: failed:") == 1 and "no-such-key" in some_missing.err
    assert some_missing.json()["deleted"] == [f"s3://{filled}/copy/a2.txt"]
    assert run("rm", "-r", f"{filled}/dir").code == 0  # dir/ only, never dir2/
    assert sorted(remote_objects(s3, filled)) == ["a.txt", "dir2/d.txt", "keep/a.txt"]


# -- settings, secrets, errors, progress ---------------------------------------------------------


def test_endpoint_and_profile_options(
    s3_server: ServerInfo, capsys: pytest.CaptureFixture[str], filled: str, tmp_path: Path
) -> None:
    # No settings in the environment: --profile reads the config file of $QBUCKET_HOME...
    home = Path(os.environ["QBUCKET_HOME"])
    (home / "config.toml").write_text(
        "[profiles.lab]\n"
        f'storage_url = "{s3_server.endpoint}"\n'
        f'access_key = "{s3_server.access_key}"\n'
        f'secret_key = "{s3_server.secret_key}"\n'
    )
    run = in_process(capsys, s3_server.secret_key)
    assert filled in run("--profile", "lab", "ls").out
    assert filled in run("ls", "--profile", "lab").out  # global options go anywhere
    # ...and --endpoint wins over the profile's URL.
    wrong = run("ls", "--profile", "lab", "--endpoint", "http://127.0.0.1:9")
    assert wrong.code == 1 and "127.0.0.1:9" in wrong.err
    config = run("config", "--profile", "lab")
    assert config.code == 0 and "****" in config.out


def test_no_secret_no_traceback_and_debug(run_process: Runner, filled: str, tmp_path: Path) -> None:
    # Every run checks stdout and stderr for the secret (cli_runner.check_output).
    listed = run_process("ls", filled, "-r", "-v")
    assert listed.code == 0 and "dir/sub/c.txt" in listed.out
    failed = run_process("ls", "no-such-bucket-here")
    assert failed.code == 1
    assert failed.err.startswith("qbucket: error:") and len(failed.err.splitlines()) == 1
    debug = run_process("--debug", "ls", "no-such-bucket-here", traceback=True)
    assert debug.code == 1 and "Traceback" in debug.err


def _pty_run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes]:
    """Run qbucket with stderr on a terminal; returns (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QBUCKET_"))}
    with subprocess.Popen(
        [sys.executable, "-m", "qbucket", *args],
        env={**clean, **env, "TERM": "xterm"},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    ) as process:
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        code = process.wait(timeout=60)
    os.close(master)
    return code, seen


def test_progress_bar_only_on_a_terminal(
    run_process: Runner, s3_server: ServerInfo, filled: str, tmp_path: Path
) -> None:
    (tmp_path / "data.bin").write_bytes(os.urandom(1 << 20))
    piped = run_process("put", str(tmp_path / "data.bin"), f"{filled}/data.bin")
    assert piped.code == 0
    assert piped.err == ""  # no bar, no escape sequence when stderr is not a terminal

    env = {**server_env(s3_server), "QBUCKET_HOME": str(tmp_path / "home")}
    code, terminal = _pty_run(["get", f"{filled}/data.bin", "one.bin"], env, tmp_path)
    assert code == 0
    assert b"\x1b[" in terminal and b"MB" in terminal  # the bar, drawn with rich
    code, quiet = _pty_run(["get", "-q", f"{filled}/data.bin", "two.bin"], env, tmp_path)
    assert code == 0 and quiet == b""


def test_output_into_a_closed_pipe_stops_quietly(
    s3_server: ServerInfo, bucket: qbucket.Bucket, tmp_path: Path
) -> None:
    # `qbucket ls -r B | head -1`: the reader leaves early; no traceback, no error line.
    # ~90 KB of listing: more than a pipe holds, so the writer does hit the closed pipe.
    for i in range(300):
        bucket.add_file(io.BytesIO(b"x"), f"k{i:04d}-" + "x" * 240)
    bucket.flush()
    env = {**os.environ, **server_env(s3_server), "QBUCKET_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "qbucket", "ls", "-r", bucket.uuid]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert b"k0000" in first
    assert err == ""
    assert code == 141
